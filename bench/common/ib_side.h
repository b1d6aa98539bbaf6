// Raw verbs for the benchmarks' floors and bounds (no library code): one
// RC QP on the first device, created in the order of rdma-core's
// rc_pingpong, its parameters exchanged by the caller (a socketpair made
// before a fork). Used by BM_Floor/ib_read_4k* (ib_floor.cc) and
// BM_Bound/rdma_* (bench/pager/remote_bound.cc).
#ifndef SSIHV_BENCH_COMMON_IB_SIDE_H_
#define SSIHV_BENCH_COMMON_IB_SIDE_H_

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace ssihv::bench {

/// What the other side needs to connect to a QP and read its buffer.
struct IbEndpoint {
  uint32_t qpn;
  uint32_t psn;
  uint16_t lid;
  uint8_t gid[16];
  uint64_t addr;
  uint32_t rkey;
};

/// One side: device, PD, one registered buffer, a CQ (with a completion
/// channel when `events`) for both queues, and an RC QP.
struct IbSide {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_mr* mr = nullptr;
  ibv_comp_channel* channel = nullptr;  // events only
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  ibv_port_attr port{};
  int gid_index = 0;
  uint8_t gid[16] = {};
  std::string error;

  IbSide() = default;
  IbSide(const IbSide&) = delete;
  IbSide& operator=(const IbSide&) = delete;
  ~IbSide();

  /// Opens everything up to INIT; `buf` is registered for local writes and
  /// remote reads. False with `error` set.
  bool Open(void* buf, size_t len, bool events = false);
  IbEndpoint Local(void* buf) const;
  /// INIT -> RTR -> RTS against `remote`.
  bool Connect(const IbEndpoint& remote);
};

/// Waits for one completion: spinning on the CQ, or (events) sleeping on
/// the completion channel. Returns 1 when *wc holds one, -1 on an error.
int IbAwaitCompletion(IbSide& side, bool events, ibv_wc* wc);

/// True when the host has an RDMA device (benchmarks skip otherwise).
bool IbDevicePresent();

}  // namespace ssihv::bench

#endif  // SSIHV_BENCH_COMMON_IB_SIDE_H_
