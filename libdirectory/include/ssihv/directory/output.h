// What an agent call asks its driver to do: local actions on the page's
// mapping and messages to send, in order.
#ifndef SSIHV_DIRECTORY_OUTPUT_H_
#define SSIHV_DIRECTORY_OUTPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ssihv/directory/message.h"
#include "ssihv/directory/types.h"

namespace ssihv::directory {

/// A page this node has never populated (only possible at the page's home,
/// which starts as its Modified holder) holds all zeros: kMapLocal,
/// kMakeWritable and kWriteProtect on it mean "map a zero page" (or
/// nothing), and the protocol ships it as kFlagZero, never as bytes.
enum class EffectType : uint8_t {
  /// Send `msg` to `node`. If msg.carries_page(), attach the local copy of
  /// msg.page, read at this point of the effect list (after any earlier
  /// kWriteProtect, before any later kZap). Never addressed to this node.
  kSend,
  /// Send Output::reports[index] to `node` (recovery, rare).
  kSendReport,
  /// The fault is resolved from the local copy, which is valid: map it
  /// writable (Modified) or read-only (Shared). A page that was never
  /// written since start reads as zeros.
  kMapLocal,
  /// A request for this page is in flight: park the faulting thread until a
  /// later effect completes the page (kMapReceived, kMapFetched,
  /// kMakeWritable or kPageLost), then retry the access.
  kWait,
  /// Map the page bytes of the message being handled (or an all-zero page
  /// when `zero`), read-only or `writable`. Completes waiting faults.
  kMapReceived,
  /// Fetch the page from `node`'s memory (RDMA READ, or a fetch request on
  /// TCP), then call Node::OnFetchDone(page, ok). The source copy is
  /// guaranteed not to change until this node's kDone reaches the home.
  kFetch,
  /// Map the bytes just fetched read-only. Completes waiting faults.
  kMapFetched,
  /// Upgrade in place: the local read-only copy becomes writable.
  /// Completes waiting faults.
  kMakeWritable,
  /// Remove write permission: the copy stays mapped read-only (and must stop
  /// changing before the next effect runs).
  kWriteProtect,
  /// Drop the local copy: unmap it so the next access faults.
  kZap,
  /// No valid copy of the page exists anywhere: stop the guest with an
  /// error naming the page. Completes waiting faults (with an error).
  kPageLost,
  /// The page was just handed to this node and its woken threads may not
  /// have used it yet: keep `msg` (from `node`, possibly this node) aside
  /// and pass it to Node::Resubmit once they have retried their access (in
  /// practice after a short hold, a few microseconds). A message is
  /// deferred at most once, so every grant is used at least once and faults
  /// cannot livelock. At most one message per page is deferred at a time.
  kDefer,
  /// The request in flight for this page ended without a grant (a refused
  /// page of a write run): wake the threads parked on it; they retry their
  /// access, which faults again and asks for the page on its own.
  kRetry,
};

const char* EffectTypeName(EffectType type);

struct Effect {
  EffectType type = EffectType::kSend;
  bool writable = false;  // kMapLocal, kMapReceived
  bool zero = false;      // kMapReceived: map an all-zero page; kZap: the
                          // copy was never mapped (nothing to unmap)
  NodeId node = kNoNode;  // kSend/kSendReport: destination; kFetch: source
  PageId page = 0;
  uint32_t version = 0;  // kMapReceived/kFetch/kMapFetched: page version
  uint32_t index = 0;    // kSendReport: index into Output::reports
  Message msg;           // kSend

  std::string ToString() const;
};

/// The effects of one or more agent calls, in the order they must be
/// performed. Reuse one Output per thread (Clear() keeps the capacity), so
/// steady-state calls do not allocate.
struct Output {
  std::vector<Effect> effects;
  std::vector<ReportChunk> reports;

  void Clear() {
    effects.clear();
    reports.clear();
  }
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_OUTPUT_H_
