// BM_Floor/ib_read_4k: the least a 4 KiB RDMA READ costs on this device: a
// forked server process registers kServedPages and does nothing else (READ
// is one-sided); the client posts one signaled READ at a time and busy-polls
// its CQ, as perftest's ib_read_lat does. Raw verbs in the order of
// rdma-core's rc_pingpong; no library code. QP parameters cross a
// socketpair made before the fork.
//
// BM_Floor/ib_read_4k_event: the same READ, but the client sleeps for its
// completion the way rc_pingpong -e does (ibv_req_notify_cq, a blocking
// ibv_get_cq_event on the CQ's own completion channel, ibv_ack_cq_events,
// ibv_poll_cq): the least an event-driven (non-polling) fetch can cost.
#include <infiniband/verbs.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.h"

namespace ssihv::bench {
namespace {

struct Endpoint {
  uint32_t qpn;
  uint32_t psn;
  uint16_t lid;
  uint8_t gid[16];
  uint64_t addr;
  uint32_t rkey;
};

// Everything one side needs, created in rc_pingpong's order.
struct Side {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_mr* mr = nullptr;
  ibv_comp_channel* channel = nullptr;  // event floor only
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  ibv_port_attr port{};
  int gid_index = 0;
  uint8_t gid[16] = {};
  std::string error;

  ~Side() {
    if (qp) ibv_destroy_qp(qp);
    if (cq) ibv_destroy_cq(cq);
    if (channel) ibv_destroy_comp_channel(channel);
    if (mr) ibv_dereg_mr(mr);
    if (pd) ibv_dealloc_pd(pd);
    if (ctx) ibv_close_device(ctx);
  }

  bool Open(void* buf, size_t len, bool events = false) {
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

  Endpoint Local(void* buf) const {
    Endpoint e{};
    e.qpn = qp->qp_num;
    e.psn = 0x1234;
    e.lid = port.lid;
    std::memcpy(e.gid, gid, 16);
    e.addr = reinterpret_cast<uint64_t>(buf);
    e.rkey = mr->rkey;
    return e;
  }

  bool Connect(const Endpoint& remote) {
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
};

int Serve(int sock, int ready_fd, int stop_fd) {
  size_t size = kServedPages * kPage;
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  FillPattern(mem, size);
  Side side;
  if (!side.Open(mem, size)) return 1;
  // Ready as soon as the verbs objects exist: the parent exchanges QP
  // parameters after ServerProcess::Start returns, and waits for "RTS".
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) return 3;
  Endpoint local = side.Local(mem), remote;
  if (write(sock, &local, sizeof(local)) != sizeof(local) ||
      read(sock, &remote, sizeof(remote)) != sizeof(remote) ||
      !side.Connect(remote) || write(sock, &one, 1) != 1) {
    return 2;
  }
  char byte;
  [[maybe_unused]] ssize_t n = read(stop_fd, &byte, 1);
  return 0;
}

// Waits for one completion: spinning on the CQ, or (events) sleeping on the
// completion channel. 1 = got it, else an error for SkipWithError.
int AwaitCompletion(Side& side, bool events, ibv_wc* wc) {
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

void BM_FloorIbRead4k(benchmark::State& state, bool events) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  {
    // Probe first so a machine without RDMA skips with a clear reason.
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (list) ibv_free_device_list(list);
    if (n == 0) {
      state.SkipWithError("no RDMA device (ibv_get_device_list is empty)");
      return;
    }
  }
  ServerProcess server;
  if (!server.Start([&](int ready, int stop) {
        close(sv[0]);
        return Serve(sv[1], ready, stop);
      })) {
    state.SkipWithError("server process failed (verbs setup)");
    return;
  }
  close(sv[1]);
  std::vector<uint8_t> page(kPage);
  Side side;
  Endpoint remote;
  if (!side.Open(page.data(), kPage, events) ||
      read(sv[0], &remote, sizeof(remote)) != sizeof(remote)) {
    state.SkipWithError(side.error.empty() ? "exchange failed"
                                           : side.error.c_str());
    return;
  }
  Endpoint local = side.Local(page.data());
  char rts;
  if (write(sv[0], &local, sizeof(local)) != sizeof(local) ||
      !side.Connect(remote) || read(sv[0], &rts, 1) != 1) {
    state.SkipWithError(side.error.empty() ? "server QP did not come up"
                                           : side.error.c_str());
    return;
  }
  std::vector<int64_t> ns;
  ns.reserve(1 << 20);
  uint64_t next = 0;
  for (auto _ : state) {
    uint64_t offset = (next++ % kServedPages) * kPage;
    ibv_sge sge{reinterpret_cast<uint64_t>(page.data()), kPage, side.mr->lkey};
    ibv_send_wr wr{};
    wr.wr_id = next;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_RDMA_READ;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr.rdma.remote_addr = remote.addr + offset;
    wr.wr.rdma.rkey = remote.rkey;
    ibv_send_wr* bad = nullptr;
    const int64_t t0 = NowNs();
    if (ibv_post_send(side.qp, &wr, &bad) != 0) {
      state.SkipWithError("ibv_post_send failed");
      break;
    }
    ibv_wc wc{};
    int got = AwaitCompletion(side, events, &wc);
    ns.push_back(NowNs() - t0);
    if (got < 0 || wc.status != IBV_WC_SUCCESS) {
      state.SkipWithError(ibv_wc_status_str(wc.status));
      break;
    }
    if (page[4095] != PatternAt(offset + 4095)) {
      state.SkipWithError("wrong bytes");
      break;
    }
  }
  close(sv[0]);
  SetPercentiles(state, ns);
  state.SetBytesProcessed(state.iterations() * kPage);
}

}  // namespace

void RegisterIbFloor() {
  benchmark::RegisterBenchmark("BM_Floor/ib_read_4k", BM_FloorIbRead4k, false)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_Floor/ib_read_4k_event", BM_FloorIbRead4k,
                               true)
      ->UseRealTime();
}

}  // namespace ssihv::bench
