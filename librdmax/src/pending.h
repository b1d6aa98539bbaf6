// The operations in flight to one peer (fetches and calls), in a fixed table
// allocated once per connection: issuing and completing an operation
// allocates nothing. An id names a slot and its generation, so a response
// for a slot that was reused is recognised as stale.
//
// Completion protocol: the completer fills the result, then publishes kDone
// with a release store and wakes the owner only if the owner announced that
// it sleeps (kSleeping): a completion seen by a spinning or reading owner
// costs no system call.
#ifndef SSIHV_RDMAX_PENDING_H_
#define SSIHV_RDMAX_PENDING_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::rdmax {

enum class OpKind : uint8_t { kFetch, kCall };

/// How a frame may wait for room in a peer's bounded send queue.
enum class SendMode {
  kNoWait,  // ResourceExhausted when there is no room
  kWait,    // wait for room until the deadline (never on the data thread)
  kReply,   // uses the room reserved when the request was received
  kForce,   // bounded by other means (room checked before, or rare control)
};

struct PendingOp {
  static constexpr uint32_t kFree = 0;
  static constexpr uint32_t kPending = 1;
  static constexpr uint32_t kSleeping = 2;  // pending, owner in FutexWait
  static constexpr uint32_t kDone = 3;
  static constexpr uint32_t kClaimed = 4;  // being completed: kDone next

  std::atomic<uint32_t> state{kFree};
  uint64_t id = 0;
  OpKind kind = OpKind::kFetch;
  bool sync = false;
  absl::Time deadline;
  // Fetch: the destination.
  uint8_t* dst = nullptr;
  uint32_t length = 0;
  uint32_t region = 0;  // for messages and RDMA region tracking
  // Sync call: where the response goes.
  absl::Span<uint8_t> response;
  size_t response_length = 0;
  // Async call completion (run on the data thread). Fetches are always
  // synchronous.
  ResponseCallback call_done;
  absl::Status status;
  // Backend scratch (RDMA: bounce buffer index, or -1).
  int32_t bounce = -1;
};

class PendingTable {
 public:
  /// `capacity` slots (at most 65535) for operations to `peer`.
  explicit PendingTable(uint32_t capacity, NodeId peer = 0);

  /// Claims a free slot (state kPending, fresh id, `deadline` set). When
  /// all are in use: nullptr if `wait_until` has passed, else waits for one
  /// until then.
  PendingOp* Acquire(OpKind kind, bool sync, absl::Time deadline,
                     absl::Time wait_until);
  /// Returns a slot (after its owner consumed the result).
  void Release(PendingOp* op);
  /// Fails every pending operation with `status`: synchronous ones are
  /// completed (their owners wake), asynchronous ones are released and
  /// their callbacks returned, to be run by the caller (data thread).
  std::vector<absl::AnyInvocable<void()>> FailAll(const absl::Status& status,
                                                  bool calls_only = false);
  /// Marks every asynchronous operation (only calls when `calls_only`)
  /// whose deadline has passed by `now` with DeadlineExceeded, which
  /// FailAll then reports for it instead of the connection's loss, and says
  /// whether there was one: the caller resets the connection. Data thread
  /// only (asynchronous completions happen there).
  bool ExpireAsync(absl::Time now, bool calls_only);
  /// The slot index of `op` (0..capacity-1).
  uint32_t IndexOf(const PendingOp* op) const {
    return static_cast<uint32_t>(op - slots_.data());
  }

  /// The pending slot for a response id, or nullptr (unknown or stale).
  PendingOp* Find(uint64_t id);

  /// Publishes the result of `op` (status already set) and wakes a
  /// sleeping owner. Only for the thread that exclusively completes it (the
  /// reader role holder).
  static void Complete(PendingOp* op);
  /// Races to complete `op` (teardown against an issuer whose request
  /// failed to go out): true for the one winner, which then sets the result
  /// and calls Publish(op, *prev).
  static bool Claim(PendingOp* op, uint32_t* prev);
  static void Publish(PendingOp* op, uint32_t prev);

  /// Waits until `op` is done or `deadline`; `spin` first polls for a while
  /// (busy-poll mode). True when done.
  static bool WaitDone(PendingOp* op, absl::Time deadline, bool spin);

  uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }
  uint32_t in_use() const;

 private:
  const NodeId peer_;
  std::vector<PendingOp> slots_;
  std::vector<uint32_t> generation_;
  mutable std::mutex mu_;
  std::condition_variable freed_;
  std::vector<uint32_t> free_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_PENDING_H_
