#include "ib_side.h"

#include <cstring>

namespace ssihv::bench {

IbSide::~IbSide() {
  if (qp) ibv_destroy_qp(qp);
  if (cq) ibv_destroy_cq(cq);
  if (channel) ibv_destroy_comp_channel(channel);
  if (mr) ibv_dereg_mr(mr);
  if (pd) ibv_dealloc_pd(pd);
  if (ctx) ibv_close_device(ctx);
}

bool IbSide::Open(void* buf, size_t len, bool events) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr || n == 0) {
    error = "no RDMA device";
    if (list) ibv_free_device_list(list);
    return false;
  }
  ctx = ibv_open_device(list[0]);
  ibv_free_device_list(list);
  if (ctx == nullptr || ibv_query_port(ctx, 1, &port) != 0) {
    error = "ibv_open_device/ibv_query_port failed";
    return false;
  }
  // RoCE: the first RoCE v2 GID with a value (the lab's link-local one).
  gid_index = -1;
  for (int i = 0; i < 16 && i < port.gid_tbl_len; ++i) {
    ibv_gid_entry e{};
    if (ibv_query_gid_ex(ctx, 1, i, &e, 0) != 0) continue;
    bool zero = true;
    for (uint8_t b : e.gid.raw) zero &= b == 0;
    if (zero) continue;
    if (gid_index < 0 || e.gid_type == IBV_GID_TYPE_ROCE_V2) {
      gid_index = i;
      std::memcpy(gid, e.gid.raw, 16);
      if (e.gid_type == IBV_GID_TYPE_ROCE_V2) break;
    }
  }
  if (gid_index < 0) gid_index = 0;
  pd = ibv_alloc_pd(ctx);
  mr = pd ? ibv_reg_mr(pd, buf, len,
                       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ)
          : nullptr;
  if (events) channel = ibv_create_comp_channel(ctx);
  cq = ibv_create_cq(ctx, 16, nullptr, channel, 0);
  if (!pd || !mr || !cq || (events && !channel) ||
      (events && ibv_req_notify_cq(cq, 0) != 0)) {
    error = "ibv_alloc_pd/reg_mr/create_comp_channel/create_cq failed";
    return false;
  }
  ibv_qp_init_attr init{};
  init.send_cq = cq;
  init.recv_cq = cq;
  init.cap.max_send_wr = 16;
  init.cap.max_recv_wr = 1;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.qp_type = IBV_QPT_RC;
  qp = ibv_create_qp(pd, &init);
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.port_num = 1;
  attr.qp_access_flags = IBV_ACCESS_REMOTE_READ;
  if (!qp || ibv_modify_qp(qp, &attr,
                           IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
                               IBV_QP_ACCESS_FLAGS) != 0) {
    error = "ibv_create_qp/INIT failed";
    return false;
  }
  return true;
}

IbEndpoint IbSide::Local(void* buf) const {
  IbEndpoint e{};
  e.qpn = qp->qp_num;
  e.psn = 0x1234;
  e.lid = port.lid;
  std::memcpy(e.gid, gid, 16);
  e.addr = reinterpret_cast<uint64_t>(buf);
  e.rkey = mr->rkey;
  return e;
}

bool IbSide::Connect(const IbEndpoint& remote) {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTR;
  attr.path_mtu = port.active_mtu;
  attr.dest_qp_num = remote.qpn;
  attr.rq_psn = remote.psn;
  attr.max_dest_rd_atomic = 16;
  attr.min_rnr_timer = 12;
  attr.ah_attr.dlid = remote.lid;
  attr.ah_attr.port_num = 1;
  if (port.link_layer == IBV_LINK_LAYER_ETHERNET) {
    attr.ah_attr.is_global = 1;
    std::memcpy(attr.ah_attr.grh.dgid.raw, remote.gid, 16);
    attr.ah_attr.grh.sgid_index = static_cast<uint8_t>(gid_index);
    attr.ah_attr.grh.hop_limit = 64;
  }
  if (ibv_modify_qp(qp, &attr,
                    IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
                        IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                        IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) !=
      0) {
    error = "RTR failed";
    return false;
  }
  attr = {};
  attr.qp_state = IBV_QPS_RTS;
  attr.timeout = 14;
  attr.retry_cnt = 7;
  attr.rnr_retry = 7;
  attr.sq_psn = 0x1234;
  attr.max_rd_atomic = 16;
  if (ibv_modify_qp(qp, &attr,
                    IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                        IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                        IBV_QP_MAX_QP_RD_ATOMIC) != 0) {
    error = "RTS failed";
    return false;
  }
  return true;
}

// Waits for one completion: spinning on the CQ, or (events) sleeping on the
// completion channel. 1 = got it, else an error for SkipWithError.
int IbAwaitCompletion(IbSide& side, bool events, ibv_wc* wc) {
  if (!events) {
    int got;
    while ((got = ibv_poll_cq(side.cq, 1, wc)) == 0) {
    }
    return got;
  }
  for (;;) {
    int got = ibv_poll_cq(side.cq, 1, wc);
    if (got != 0) return got;
    ibv_cq* ev_cq = nullptr;
    void* ev_ctx = nullptr;
    if (ibv_get_cq_event(side.channel, &ev_cq, &ev_ctx) != 0) return -1;
    ibv_ack_cq_events(ev_cq, 1);
    // Re-arm before polling, so a completion after the poll raises an
    // event instead of being missed.
    if (ibv_req_notify_cq(side.cq, 0) != 0) return -1;
  }
}

bool IbDevicePresent() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list) ibv_free_device_list(list);
  return n > 0;
}

}  // namespace ssihv::bench
