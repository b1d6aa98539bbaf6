// The backends' side of ssihv/rdmax/send_batch.h.
#ifndef SSIHV_RDMAX_SRC_SEND_BATCH_H_
#define SSIHV_RDMAX_SRC_SEND_BATCH_H_

#include <memory>

#include "ssihv/rdmax/send_batch.h"

namespace ssihv::rdmax {

class SendBatchAccess {
 public:
  /// This thread's engaged batch, or nullptr: send at once.
  static SendBatch* Engaged();
  /// A batch that holds nothing until Engage (the TCP data thread's: it
  /// engages when more received bytes follow the frame it dispatches, so a
  /// lone request's answer leaves at once, without the copy).
  static SendBatch Dormant() { return SendBatch(/*engaged=*/false); }
  static void Engage(SendBatch& b) { b.engaged_ = b.installed_; }
  /// `m` queued messages that wait for `b` to end.
  static void Hold(SendBatch& b, std::shared_ptr<SendBatch::Member> m) {
    b.held_.push_back(std::move(m));
  }
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_SRC_SEND_BATCH_H_
