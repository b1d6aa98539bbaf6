// RDMA fetch lanes (docs/TRANSPORT.md, "Fetch lanes").
//
// Fetching side (RdmaLane): a QP of its own to the peer, whose send and
// receive CQ is the lane's own, with the lane's own completion channel. The
// thread that holds the lane for a Fetch posts one READ and then sleeps on
// that channel (ibv_req_notify_cq, a blocking ibv_get_cq_event) or, with
// busy_poll, polls that CQ: it reads its own completion, with no data
// thread, no hand-off and no lock shared with other fetching threads. That
// is BM_Floor/ib_read_4k_event (BM_Floor/ib_read_4k with busy_poll).
//
// Serving side (CreateLaneResponder): one RC QP per lane, connected to the
// fetcher's QP and open to REMOTE_READ, on the transport's shared CQs. It
// never has a work request posted (the device serves READs), so it never
// produces a completion.
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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lane_pool.h"
#include "rdma/device.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"
#include "sys/verbs.h"

namespace ssihv::rdmax {

class RdmaLane {
 public:
  enum class Outcome {
    kDone,      // *result is OK
    kBroken,    // the lane failed (or was shut down): fetch elsewhere
    kTimedOut,  // busy_poll only: no completion by the deadline; the READ
                // was flushed, nothing lands in the buffer afterwards
  };

  /// Creates the lane's completion channel, CQ and QP (INIT).
  static absl::StatusOr<std::shared_ptr<RdmaLane>> Create(
      const OpenedDevice& device, ibv_pd* pd, NodeId peer);

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
  /// Any thread: moves the QP to the error state (a READ in flight
  /// completes with a flush error; the holder wakes). Unusable after.
  void Shutdown();

 private:
  explicit RdmaLane(NodeId peer) : peer_(peer) {}
  /// 1: a completion in *wc; 0: deadline passed (spin only); -1: error.
  int AwaitCompletion(bool spin, absl::Time deadline, ibv_wc* wc);

  const NodeId peer_;
  uint32_t psn_ = 0;
  bool armed_ = false;  // the CQ is armed for an event (holder only)
  // Acquisition order: destroyed QP first, then CQ, then channel.
  sys::CompChannel channel_;
  sys::Cq cq_;
  sys::Qp qp_;
};

/// The lanes one peer connection holds for this node's fetches.
using RdmaLanes = LanePool<RdmaLane>;

/// The serving side of a lane: a responder QP connected to `fetcher`,
/// open to REMOTE_READ, on the given (shared) CQs, and its parameters.
struct LaneResponder {
  sys::Qp qp;
  RdmaParamsPayload params;
};
absl::StatusOr<LaneResponder> CreateLaneResponder(
    const OpenedDevice& device, const ChosenGid& gid, ibv_pd* pd,
    ibv_cq* send_cq, ibv_cq* recv_cq, const RdmaParamsPayload& fetcher,
    NodeId peer);

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_RDMA_LANE_H_
