// TCP fetch lanes, the fetching side (docs/TRANSPORT.md, "Fetch lanes").
//
// A lane is an extra authenticated connection to a peer that carries only
// fetch requests, lane calls (Transport::CallOnLane) and their responses,
// one at a time, and that no data
// thread watches: the thread blocked in Fetch owns it for the call, sends
// the 32-byte request with one sendmsg and receives [header | page] with
// one blocking recvmsg straight into its buffer — what a raw blocking
// socket does (BM_Floor/tcp_rtt_4k), with no epoll and no hand-off.
//
// FetchLanes is the pool of one main connection's lanes (lane_pool.h);
// they die with it (CloseAll from TcpConnection::Close), so a lane never
// outlives the incarnation of the peer whose region table the fetch was
// checked against.
#ifndef SSIHV_RDMAX_TCP_FETCH_LANE_H_
#define SSIHV_RDMAX_TCP_FETCH_LANE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lane_pool.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"
#include "transport_base.h"

namespace ssihv::rdmax {

class FetchLane {
 public:
  enum class Outcome {
    kDone,      // *result is the fetch's outcome (the peer's error, or OK)
    kBroken,    // the lane failed before an answer: fetch elsewhere
    kTimedOut,  // no answer by the deadline: the lane is closed
    kNotSent,   // (Call) the lane failed before the request left
  };

  /// `fd`: an authenticated, blocking lane socket with a short SO_RCVTIMEO
  /// (the deadline is checked between receives).
  FetchLane(base::UniqueFd fd, NodeId peer, const FrameLimits& limits,
            AtomicStats* stats);

  /// One fetch of `dst.size()` bytes at `offset` of `region` into `dst`.
  /// Only the lane's current owner calls it. When it returns, nothing more
  /// is written into `dst` (a broken or timed-out lane is shut down).
  Outcome Fetch(RegionId region, uint64_t offset, absl::Span<uint8_t> dst,
                absl::Time deadline, absl::Status* result);
  /// One lane call: `payload` as a kRequest of `type`; the response's
  /// payload lands in `response` (*length bytes). kBroken also when the
  /// response did not fit (*result says so).
  Outcome Call(MessageType type, absl::Span<const uint8_t> payload,
               absl::Span<uint8_t> response, absl::Time deadline,
               size_t* length, absl::Status* result);
  /// Any thread: wakes the owner's receive; the lane is unusable after.
  void Shutdown();
  /// Why the last kBroken outcome happened (for the caller's error).
  const std::string& broken_why() const { return broken_why_; }

 private:
  Outcome Broken(absl::string_view why, bool malformed = false);
  /// Reads the rest of an error response whose first `have` payload bytes
  /// landed at the start of `dst`.
  /// Receives [header | payload] of the response to `id` of `kind` into
  /// `hdr` and `dst` (the payload at most dst.size() bytes).
  Outcome ReceiveResponse(FrameKind kind, uint64_t id, uint8_t* hdr,
                          absl::Span<uint8_t> dst, absl::Time deadline,
                          size_t* length, absl::Status* result);
  Outcome ReadError(const FrameHeader& h, absl::Span<uint8_t> dst, size_t have,
                    absl::Time deadline, absl::Status* result);

  base::UniqueFd fd_;
  const NodeId peer_;
  const FrameLimits limits_;
  AtomicStats* const stats_;
  uint64_t next_id_ = 1;
  std::string broken_why_;
};

/// The lanes of one main connection (lane_pool.h).
using FetchLanes = LanePool<FetchLane>;

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TCP_FETCH_LANE_H_
