// What every benchmark binary shares: the clock, the fixed p50_us/p99_us
// counters, forked server processes, the patterned region a floor's server
// serves, and BM_Floor/tcp_rtt_4k (one definition for every binary whose
// results are read against it: bench/transport and bench/pager).
#ifndef SSIHV_BENCH_COMMON_BENCH_COMMON_H_
#define SSIHV_BENCH_COMMON_BENCH_COMMON_H_

#include <benchmark/benchmark.h>
#include <sys/types.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace ssihv::bench {

inline constexpr uint64_t kPage = 4096;
/// Pages the server exports; fetches walk through them so that every
/// iteration reads a different page (64 MiB: beyond the last-level cache).
inline constexpr uint64_t kServedPages = 16384;

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// The byte at `offset` of the served region (the client checks it).
inline uint8_t PatternAt(uint64_t offset) {
  return static_cast<uint8_t>((offset >> 12) * 37 + (offset & 0xFFF));
}

/// Writes PatternAt's bytes into the `size` bytes at `mem` (a served region).
inline void FillPattern(uint8_t* mem, uint64_t size) {
  for (uint64_t i = 0; i < size; ++i) mem[i] = PatternAt(i);
}

/// Sets p50_us and p99_us from per-iteration wall times (each thread's
/// samples; the counters average over threads).
inline void SetPercentiles(benchmark::State& state, std::vector<int64_t>& ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(ns.size() - 1));
    return static_cast<double>(ns[i]) / 1000.0;
  };
  state.counters["p50_us"] =
      benchmark::Counter(at(0.50), benchmark::Counter::kAvgThreads);
  state.counters["p99_us"] =
      benchmark::Counter(at(0.99), benchmark::Counter::kAvgThreads);
}

/// A forked server process. `serve(ready_fd, stop_fd)` runs in the child:
/// it writes one byte to ready_fd when it serves, and returns when stop_fd
/// reaches end of file (the parent's end closed). The destructor stops and
/// reaps it.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();
  /// False if the child failed before becoming ready.
  bool Start(std::function<int(int ready_fd, int stop_fd)> serve);
  void Stop();

 private:
  pid_t pid_ = -1;
  int stop_fd_ = -1;
};

/// Registers BM_Floor/tcp_rtt_4k (tcp_floor.cc).
void RegisterTcpFloor();
/// Registers BM_Floor/tcp_rtt_16 (tcp_floor.cc): a 16-byte answer, the
/// floor of a small synchronous call.
void RegisterTcpSmallFloor();
/// Registers BM_Floor/tcp_stream (tcp_floor.cc): raw bulk transfer over
/// 127.0.0.1, the floor of a sequential remote read.
void RegisterTcpStreamFloor();
/// Registers BM_Floor/ib_read_4k and BM_Floor/ib_read_4k_event
/// (ib_floor.cc); they skip without an RDMA device.
void RegisterIbFloor();

}  // namespace ssihv::bench

#endif  // SSIHV_BENCH_COMMON_BENCH_COMMON_H_
