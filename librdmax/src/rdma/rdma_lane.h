// RDMA fetch lanes (docs/TRANSPORT.md, "Fetch lanes" and "Lane calls").
//
// Fetching side (RdmaLane): a QP of its own to the peer, whose send and
// receive CQ is the lane's own, with the lane's own completion channel. The
// thread that holds the lane for a Fetch posts one READ and then sleeps on
// that channel (ibv_req_notify_cq, a blocking ibv_get_cq_event) or, with
// busy_poll, polls that CQ: it reads its own completion, with no data
// thread, no hand-off and no lock shared with other fetching threads. That
// is BM_Floor/ib_read_4k_event (BM_Floor/ib_read_4k with busy_poll). A
// lane call (Transport::CallOnLane) is the same with two work requests: a
// RECV for the answer, posted first, and a SEND of the kRequest frame, both
// from the lane's own registered buffers.
//
// Serving side (RdmaLaneServer, rdma_lane_server.h): one RC QP per lane,
// connected to the fetcher's QP and open to REMOTE_READ (the device serves
// READs, no work here), with its own CQ and a thread that sleeps on it for
// lane calls and answers each with one SEND.
//
// Set-up goes over the authenticated control connection: kRdmaLaneRequest
// carries the fetcher's QP parameters, kRdmaLaneAccept the responder's, or
// an error when the serving node refuses (beyond its fetch_lanes). Lanes of
// a peer are shut down (QP to the error state, which flushes a READ in
// flight and wakes its owner) when the peer's connection closes.
#ifndef SSIHV_RDMAX_RDMA_RDMA_LANE_H_
#define SSIHV_RDMAX_RDMA_RDMA_LANE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lane_pool.h"
#include "rdma/device.h"
#include "rdma/rc_qp.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"
#include "sys/verbs.h"

namespace ssihv::rdmax {

class RdmaLane {
 public:
  enum class Outcome {
    kDone,      // *result says how it ended (a READ: OK)
    kBroken,    // the lane failed (or was shut down): go elsewhere
    kTimedOut,  // no completion by the deadline (a READ: busy_poll only);
                // the lane is shut down, nothing lands in the caller's
                // buffer afterwards
    kNotSent,   // Call: the request could not be posted; nothing left
  };

  /// Creates the lane's completion channel, CQ and QP (INIT), and its call
  /// buffers (a request and an answer of up to `max_message_bytes` each).
  static absl::StatusOr<std::shared_ptr<RdmaLane>> Create(
      const OpenedDevice& device, ibv_pd* pd, NodeId peer,
      uint32_t max_message_bytes);

  /// What the serving node needs to connect its responder QP.
  RdmaParamsPayload LocalParams(const OpenedDevice& device,
                                const ChosenGid& gid) const;
  /// RTR and RTS against the responder's parameters.
  absl::Status Connect(const OpenedDevice& device, const ChosenGid& gid,
                       const RdmaParamsPayload& responder);

  /// One READ of `length` bytes at `remote_addr` (rkey) into `local_addr`
  /// (lkey), waited for on the lane's own CQ: sleeping, or polling when
  /// `spin`. Only the lane's current holder calls it. In event mode the
  /// wait is bounded by the RC transport's retry timeout (and Shutdown).
  Outcome Read(uint64_t local_addr, uint32_t lkey, uint32_t length,
               uint64_t remote_addr, uint32_t rkey, bool spin,
               absl::Time deadline, absl::Status* result);
  /// One lane call: `payload` (at most max_message_bytes) as a kRequest
  /// frame of `type`; the answer's payload is copied into `response` and
  /// its length into *length. kDone with *result OK, the peer's error, or
  /// OutOfRange (the answer did not fit; the lane stays usable); kTimedOut
  /// at `deadline` (*result says so); kBroken when the lane failed after
  /// the request was posted (the peer may have served it). Holder only.
  Outcome Call(MessageType type, absl::Span<const uint8_t> payload,
               absl::Span<uint8_t> response, bool spin, absl::Time deadline,
               size_t* length, absl::Status* result);
  /// Any thread: moves the QP to the error state (a READ in flight
  /// completes with a flush error; the holder wakes). Unusable after.
  void Shutdown();
  /// Why the last kBroken or kNotSent happened (holder only).
  const std::string& broken_why() const { return broken_why_; }

 private:
  RdmaLane(NodeId peer, uint32_t max_message_bytes)
      : peer_(peer), slot_bytes_(kFrameHeaderSize + max_message_bytes) {}
  /// Records why the lane failed and returns `outcome` (kBroken or
  /// kNotSent); the reason is logged at debug level.
  Outcome Failed(Outcome outcome, std::string why);
  /// Checks the answer frame in the lane's buffer and hands it over.
  Outcome TakeAnswer(uint64_t id, uint32_t bytes, absl::Span<uint8_t> response,
                     size_t* length, absl::Status* result);
  uint8_t* request_buffer() const { return call_mem_.data(); }
  uint8_t* answer_buffer() const { return call_mem_.data() + slot_bytes_; }

  const NodeId peer_;
  const size_t slot_bytes_;  // frame header + max_message_bytes
  uint32_t psn_ = 0;
  uint64_t next_call_ = 0;
  std::string broken_why_;
  // Acquisition order: destroyed QP first, then its CQ (waited on by the
  // holder only; a READ's sleep is bounded by the RC retry timeout, a
  // call's by its deadline), then the call buffers' registration and
  // memory.
  base::MappedRegion call_mem_;
  sys::Mr call_mr_;
  OwnCq cq_;
  sys::Qp qp_;
};

/// The lanes one peer connection holds for this node's fetches and calls.
using RdmaLanes = LanePool<RdmaLane>;

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_RDMA_LANE_H_
