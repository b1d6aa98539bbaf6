// Setting up an RC queue pair, shared by a peer's main QP and its fetch
// lanes' QPs (both ends): creation, RESET->INIT, the parameters the other
// end needs, and INIT->RTR->RTS against the other end's parameters, with
// the attributes of rdma-core's rc_pingpong (docs/TRANSPORT.md, "RDMA");
// and what both ends of a lane use to post and wait: one signaled SEND or
// one RECV from a registered buffer, and a CQ of the lane's own.
#ifndef SSIHV_RDMAX_RDMA_RC_QP_H_
#define SSIHV_RDMAX_RDMA_RC_QP_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rdma/device.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"
#include "sys/verbs.h"

namespace ssihv::rdmax {

/// Outstanding READs a QP asks for / grants (capped by the device).
inline constexpr uint32_t kMaxRdAtomic = 16;

/// ibv_create_qp (RC, one SGE per work request, signaled explicitly).
absl::StatusOr<sys::Qp> CreateRcQp(ibv_pd* pd, ibv_cq* send_cq, ibv_cq* recv_cq,
                                   uint32_t max_send_wr, uint32_t max_recv_wr);
/// RESET->INIT on the device's port, allowing `access` to remote peers.
absl::Status InitRcQp(ibv_qp* qp, const OpenedDevice& device, int access);
/// A random 24-bit packet sequence number.
uint32_t RandomPsn();
/// What the other end needs to connect to `qp`.
RdmaParamsPayload RcQpParams(const OpenedDevice& device, const ChosenGid& gid,
                             const ibv_qp* qp, uint32_t psn,
                             uint32_t recv_depth, uint32_t recv_bytes);
/// INIT->RTR->RTS against `remote` (whose link layer must match ours).
/// `peer` names the node in errors.
absl::Status ConnectRcQp(ibv_qp* qp, const OpenedDevice& device,
                         const ChosenGid& gid, uint32_t psn,
                         const RdmaParamsPayload& remote, NodeId peer);

/// Posts one signaled SEND of `length` bytes at `addr` (registered with
/// `lkey`); ibv_post_send's error (0: posted).
int PostOneSend(ibv_qp* qp, uint64_t wr_id, const uint8_t* addr,
                uint32_t length, uint32_t lkey);
/// Posts one RECV into `length` bytes at `addr`; ibv_post_recv's error.
int PostOneRecv(ibv_qp* qp, uint64_t wr_id, uint8_t* addr, uint32_t length,
                uint32_t lkey);

/// A CQ with a completion channel of its own, for both queues of one lane
/// QP, waited on by one thread at a time (a lane's holder, or a lane
/// server's thread): no data thread and no poller role shared.
class OwnCq {
 public:
  absl::Status Create(ibv_context* ctx, int entries);
  ibv_cq* get() const { return cq_.get(); }
  /// 1: a completion in *wc; 0: `deadline` passed; -1: an error. Polling
  /// when `spin`; else asleep on the channel, where the wait ends at the
  /// deadline only when `bounded` (else when a completion or error comes).
  int Await(bool spin, bool bounded, absl::Time deadline, ibv_wc* wc);

 private:
  bool armed_ = false;  // the CQ is armed for an event
  // The CQ is destroyed before its channel.
  sys::CompChannel channel_;
  sys::Cq cq_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_RC_QP_H_
