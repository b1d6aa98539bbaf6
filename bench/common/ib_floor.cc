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
#include "ib_side.h"

namespace ssihv::bench {
namespace {

int Serve(int sock, int ready_fd, int stop_fd) {
  size_t size = kServedPages * kPage;
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  FillPattern(mem, size);
  IbSide side;
  if (!side.Open(mem, size)) return 1;
  // Ready as soon as the verbs objects exist: the parent exchanges QP
  // parameters after ServerProcess::Start returns, and waits for "RTS".
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) return 3;
  IbEndpoint local = side.Local(mem), remote;
  if (write(sock, &local, sizeof(local)) != sizeof(local) ||
      read(sock, &remote, sizeof(remote)) != sizeof(remote) ||
      !side.Connect(remote) || write(sock, &one, 1) != 1) {
    return 2;
  }
  char byte;
  [[maybe_unused]] ssize_t n = read(stop_fd, &byte, 1);
  return 0;
}

void BM_FloorIbRead4k(benchmark::State& state, bool events) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  // Probe first so a machine without RDMA skips with a clear reason.
  if (!IbDevicePresent()) {
    state.SkipWithError("no RDMA device (ibv_get_device_list is empty)");
    return;
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
  IbSide side;
  IbEndpoint remote;
  if (!side.Open(page.data(), kPage, events) ||
      read(sv[0], &remote, sizeof(remote)) != sizeof(remote)) {
    state.SkipWithError(side.error.empty() ? "exchange failed"
                                           : side.error.c_str());
    return;
  }
  IbEndpoint local = side.Local(page.data());
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
    int got = IbAwaitCompletion(side, events, &wc);
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
