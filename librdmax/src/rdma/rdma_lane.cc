#include "rdma/rdma_lane.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/rc_qp.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::rdmax {
namespace {

// A lane carries one READ at a time; the CQ and send queue are sized for
// it and a flush.
constexpr int kLaneCqEntries = 4;
constexpr uint32_t kLaneSendWr = 2;
// Receive side of the parameters: a lane carries no SENDs, but the values
// must pass DecodeRdmaParams.
constexpr uint32_t kLaneRecvDepth = 1;
constexpr uint32_t kLaneRecvBytes = 64;

}  // namespace

absl::StatusOr<std::shared_ptr<RdmaLane>> RdmaLane::Create(
    const OpenedDevice& device, ibv_pd* pd, NodeId peer) {
  std::shared_ptr<RdmaLane> lane(new RdmaLane(peer));
  ibv_context* ctx = device.context.get();
  SSIHV_ASSIGN_OR_RETURN(lane->channel_,
                         sys::CreateCompChannel(ctx, /*nonblocking=*/false));
  SSIHV_ASSIGN_OR_RETURN(
      lane->cq_, sys::CreateCq(ctx, kLaneCqEntries, lane->channel_.get()));
  SSIHV_ASSIGN_OR_RETURN(
      lane->qp_, CreateRcQp(pd, lane->cq_.get(), lane->cq_.get(), kLaneSendWr,
                            kLaneRecvDepth));
  SSIHV_RETURN_IF_ERROR(InitRcQp(lane->qp_.get(), device, 0));
  lane->psn_ = RandomPsn();
  return lane;
}

RdmaParamsPayload RdmaLane::LocalParams(const OpenedDevice& device,
                                        const ChosenGid& gid) const {
  return RcQpParams(device, gid, qp_.get(), psn_, kLaneRecvDepth,
                    kLaneRecvBytes);
}

absl::Status RdmaLane::Connect(const OpenedDevice& device, const ChosenGid& gid,
                               const RdmaParamsPayload& responder) {
  return ConnectRcQp(qp_.get(), device, gid, psn_, responder, peer_);
}

void RdmaLane::Shutdown() {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  sys::ModifyQp(qp_.get(), &attr, IBV_QP_STATE, "->ERR").IgnoreError();
}

int RdmaLane::AwaitCompletion(bool spin, absl::Time deadline, ibv_wc* wc) {
  for (uint32_t spins = 0;; ++spins) {
    int n = sys::PollCq(cq_.get(), 1, wc);
    if (n != 0) return n > 0 ? 1 : -1;
    if (spin) {
      if ((spins & 4095) == 4095 && absl::Now() >= deadline) return 0;
      __builtin_ia32_pause();
      continue;
    }
    if (!armed_) {
      // Arm, then poll once more: a completion that arrived before the arm
      // raises no event.
      if (!sys::ReqNotifyCq(cq_.get()).ok()) return -1;
      armed_ = true;
      continue;
    }
    ibv_cq* cq = sys::GetCqEvent(channel_.get());  // sleeps
    if (cq == nullptr) {
      if (errno == EINTR) continue;
      return -1;
    }
    sys::AckCqEvents(cq, 1);
    armed_ = false;
  }
}

RdmaLane::Outcome RdmaLane::Read(uint64_t local_addr, uint32_t lkey,
                                 uint32_t length, uint64_t remote_addr,
                                 uint32_t rkey, bool spin, absl::Time deadline,
                                 absl::Status* result) {
  ibv_sge sge{local_addr, length, lkey};
  ibv_send_wr wr{};
  wr.wr_id = 1;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_READ;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = remote_addr;
  wr.wr.rdma.rkey = rkey;
  if (int err = sys::PostSend(qp_.get(), &wr); err != 0) {
    base::Log(base::LogLevel::kDebug, "rdmax: fetch lane to node ", peer_,
              ": ibv_post_send READ: ", std::strerror(err));
    return Outcome::kBroken;
  }
  ibv_wc wc{};
  int got = AwaitCompletion(spin, deadline, &wc);
  if (got == 0) {
    // Flush the READ so that it cannot land in the buffer later.
    Shutdown();
    AwaitCompletion(true, absl::InfiniteFuture(), &wc);
    *result = absl::DeadlineExceededError(absl::StrCat(
        "Fetch node=", peer_, ": no completion on its fetch lane in time"));
    return Outcome::kTimedOut;
  }
  if (got < 0) {
    // A CQ we cannot poll or wait on: stop using the lane. The READ may
    // still be posted: flush it and wait for it before giving dst back.
    Shutdown();
    AwaitCompletion(true, absl::InfiniteFuture(), &wc);
    return Outcome::kBroken;
  }
  if (wc.status != IBV_WC_SUCCESS) {
    base::Log(wc.status == IBV_WC_WR_FLUSH_ERR ? base::LogLevel::kDebug
                                               : base::LogLevel::kWarning,
              "rdmax: RDMA READ on the fetch lane to node ", peer_, ": ",
              sys::WcStatusName(wc.status));
    return Outcome::kBroken;
  }
  *result = absl::OkStatus();
  return Outcome::kDone;
}

absl::StatusOr<LaneResponder> CreateLaneResponder(
    const OpenedDevice& device, const ChosenGid& gid, ibv_pd* pd,
    ibv_cq* send_cq, ibv_cq* recv_cq, const RdmaParamsPayload& fetcher,
    NodeId peer) {
  LaneResponder r;
  SSIHV_ASSIGN_OR_RETURN(r.qp, CreateRcQp(pd, send_cq, recv_cq, 1, 1));
  SSIHV_RETURN_IF_ERROR(InitRcQp(r.qp.get(), device, IBV_ACCESS_REMOTE_READ));
  uint32_t psn = RandomPsn();
  SSIHV_RETURN_IF_ERROR(
      ConnectRcQp(r.qp.get(), device, gid, psn, fetcher, peer));
  r.params =
      RcQpParams(device, gid, r.qp.get(), psn, kLaneRecvDepth, kLaneRecvBytes);
  return r;
}

}  // namespace ssihv::rdmax
