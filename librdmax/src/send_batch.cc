#include "send_batch.h"

namespace ssihv::rdmax {
namespace {

thread_local SendBatch* current_batch = nullptr;

}  // namespace

SendBatch::SendBatch(bool engaged) {
  if (current_batch == nullptr) {
    current_batch = this;
    installed_ = true;
    engaged_ = engaged;
  }
}

SendBatch::~SendBatch() {
  if (!installed_) return;
  // Uninstalled first: a flush may dispatch another connection's frames
  // (OnWritable resumes a paused reader), which must not join this batch.
  current_batch = nullptr;
  for (auto& m : held_) m->FlushHeld();
}

SendBatch* SendBatchAccess::Engaged() {
  return current_batch != nullptr && current_batch->engaged_ ? current_batch
                                                             : nullptr;
}

}  // namespace ssihv::rdmax
