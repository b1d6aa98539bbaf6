#include "rdma/rc_qp.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"
#include "sys/posix.h"

namespace ssihv::rdmax {

absl::StatusOr<sys::Qp> CreateRcQp(ibv_pd* pd, ibv_cq* send_cq, ibv_cq* recv_cq,
                                   uint32_t max_send_wr, uint32_t max_recv_wr) {
  ibv_qp_init_attr init{};
  init.send_cq = send_cq;
  init.recv_cq = recv_cq;
  init.cap.max_send_wr = max_send_wr;
  init.cap.max_recv_wr = max_recv_wr;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  return sys::CreateQp(pd, &init);
}

absl::Status InitRcQp(ibv_qp* qp, const OpenedDevice& device, int access) {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.pkey_index = 0;
  attr.port_num = device.port;
  attr.qp_access_flags = static_cast<unsigned>(access);
  return sys::ModifyQp(
      qp, &attr,
      IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS,
      "RESET->INIT");
}

uint32_t RandomPsn() {
  thread_local std::mt19937 rng(std::random_device{}());
  return std::uniform_int_distribution<uint32_t>(0, 0xFFFFFF)(rng);
}

RdmaParamsPayload RcQpParams(const OpenedDevice& d, const ChosenGid& gid,
                             const ibv_qp* qp, uint32_t psn,
                             uint32_t recv_depth, uint32_t recv_bytes) {
  RdmaParamsPayload p;
  p.qpn = qp->qp_num;
  p.psn = psn;
  p.gid = gid.gid;
  p.lid = d.port_attr.lid;
  p.mtu = static_cast<uint8_t>(d.port_attr.active_mtu);
  p.link_layer = d.port_attr.link_layer;
  p.recv_depth = recv_depth;
  p.recv_bytes = recv_bytes;
  p.max_rd_atomic = std::min<uint32_t>(
      kMaxRdAtomic, static_cast<uint32_t>(d.device_attr.max_qp_rd_atom));
  return p;
}

absl::Status ConnectRcQp(ibv_qp* qp, const OpenedDevice& d,
                         const ChosenGid& gid, uint32_t psn,
                         const RdmaParamsPayload& remote, NodeId peer) {
  if (remote.link_layer != d.port_attr.link_layer) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", peer, " is on another link layer"));
  }
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTR;
  attr.path_mtu =
      static_cast<ibv_mtu>(std::min<int>(d.port_attr.active_mtu, remote.mtu));
  attr.dest_qp_num = remote.qpn;
  attr.rq_psn = remote.psn;
  attr.max_dest_rd_atomic = static_cast<uint8_t>(std::min<uint32_t>(
      kMaxRdAtomic, static_cast<uint32_t>(d.device_attr.max_qp_rd_atom)));
  attr.min_rnr_timer = 12;  // 0.64 ms
  attr.ah_attr.port_num = d.port;
  attr.ah_attr.dlid = remote.lid;
  if (d.port_attr.link_layer == IBV_LINK_LAYER_ETHERNET) {
    // RoCE addresses by GID (a RoCE v2 GID routes as UDP/IP).
    attr.ah_attr.is_global = 1;
    std::memcpy(attr.ah_attr.grh.dgid.raw, remote.gid.data(), 16);
    attr.ah_attr.grh.sgid_index = static_cast<uint8_t>(gid.index);
    attr.ah_attr.grh.hop_limit = 64;
  }
  SSIHV_RETURN_IF_ERROR(sys::ModifyQp(
      qp, &attr,
      IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
          IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
      "INIT->RTR"));
  attr = {};
  attr.qp_state = IBV_QPS_RTS;
  attr.timeout = 14;  // 4.096 us * 2^14 = 67 ms per try
  attr.retry_cnt = 7;
  attr.rnr_retry = 7;  // credits prevent RNR; this is the backstop
  attr.sq_psn = psn;
  attr.max_rd_atomic = static_cast<uint8_t>(std::min<uint32_t>(
      {kMaxRdAtomic, remote.max_rd_atomic,
       static_cast<uint32_t>(d.device_attr.max_qp_init_rd_atom)}));
  return sys::ModifyQp(qp, &attr,
                       IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                           IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                           IBV_QP_MAX_QP_RD_ATOMIC,
                       "RTR->RTS");
}

int PostOneSend(ibv_qp* qp, uint64_t wr_id, const uint8_t* addr,
                uint32_t length, uint32_t lkey) {
  ibv_sge sge{reinterpret_cast<uint64_t>(addr), length, lkey};
  ibv_send_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  return sys::PostSend(qp, &wr);
}

int PostOneRecv(ibv_qp* qp, uint64_t wr_id, uint8_t* addr, uint32_t length,
                uint32_t lkey) {
  ibv_sge sge{reinterpret_cast<uint64_t>(addr), length, lkey};
  ibv_recv_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  return sys::PostRecv(qp, &wr);
}

absl::Status OwnCq::Create(ibv_context* ctx, int entries) {
  SSIHV_ASSIGN_OR_RETURN(channel_,
                         sys::CreateCompChannel(ctx, /*nonblocking=*/false));
  SSIHV_ASSIGN_OR_RETURN(cq_, sys::CreateCq(ctx, entries, channel_.get()));
  return absl::OkStatus();
}

int OwnCq::Await(bool spin, bool bounded, absl::Time deadline, ibv_wc* wc) {
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
    if (bounded) {
      absl::StatusOr<bool> ready =
          sys::WaitReadable(channel_.get()->fd, deadline);
      if (!ready.ok()) return -1;
      if (!*ready) return 0;
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

}  // namespace ssihv::rdmax
