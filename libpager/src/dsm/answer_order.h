// The receiving side of answers on lanes (docs/PROTOCOL.md, "Answers on
// lanes"), for one sending peer: a home numbers the answers it puts on
// lanes to this node (1, 2, ...), and every frame it sends on the pair's
// main connection says how many it had put there by then (`after`). A
// main-connection frame is handled only after every answer it follows has
// been handled here; until then it is parked, and so is everything behind
// it (the connection's order is kept). Whoever handles the answer that
// releases parked frames handles them, in order.
//
// Pure bookkeeping, thread-safe: the data thread admits frames, fault
// threads report the answers they handled and drain what they released.
// Handling an admitted or drained frame is the caller's, outside the lock;
// while a drained frame is out, new frames park behind it.
#ifndef SSIHV_PAGER_DSM_ANSWER_ORDER_H_
#define SSIHV_PAGER_DSM_ANSWER_ORDER_H_

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "absl/types/span.h"

namespace ssihv::pager::dsm {

class AnswerOrder {
 public:
  /// A main-connection frame stamped `after`: true when the caller handles
  /// it now; false when it was parked (copied).
  bool AdmitOrPark(uint64_t after, absl::Span<const uint8_t> frame);
  /// The lane answer numbered `seq` (>= 1) has been handled. False for a
  /// number already taken (a protocol error of the sender's).
  bool Taken(uint64_t seq);
  /// After Taken: the first parked frame whose answers have all been
  /// handled, for the caller to handle, which makes it the drainer;
  /// nullopt when none is ready or another thread drains (it will see it).
  std::optional<std::vector<uint8_t>> StartDrain();
  /// The drainer, after handling a frame: the next ready one, or nullopt
  /// (it no longer drains).
  std::optional<std::vector<uint8_t>> ContinueDrain();
  /// The peer died: parked frames are dropped (the protocol ignores a dead
  /// node's frames) and frames are admitted without waiting from now on.
  void SenderDead();

  /// Frames parked now, and ever.
  size_t parked() const;
  uint64_t parked_total() const;
  /// Answers handled in a row from 1 (the watermark).
  uint64_t taken() const;

 private:
  bool ReadyLocked(uint64_t after) const { return dead_ || after <= taken_; }
  std::optional<std::vector<uint8_t>> PopReadyLocked();

  mutable std::mutex mu_;
  uint64_t taken_ = 0;        // every answer 1..taken_ handled
  std::set<uint64_t> ahead_;  // handled, above taken_ + 1
  struct Parked {
    uint64_t after;
    std::vector<uint8_t> frame;
  };
  std::deque<Parked> parked_;
  bool draining_ = false;
  bool dead_ = false;
  uint64_t parked_total_ = 0;
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_ANSWER_ORDER_H_
