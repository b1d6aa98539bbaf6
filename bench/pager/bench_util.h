// Helpers shared by the pager benchmarks.
#ifndef SSIHV_BENCH_PAGER_BENCH_UTIL_H_
#define SSIHV_BENCH_PAGER_BENCH_UTIL_H_

#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ssihv::bench {

inline constexpr uint64_t kPage = 4096;
/// Pages touched before a benchmark discards its region and starts over:
/// bounds the memory a long run populates (256 MiB).
inline constexpr uint64_t kWindowPages = 65536;

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// One write per page: the first touch of guest RAM is usually a write (the
/// guest kernel zeroing or filling it).
inline void Touch(uint8_t* page) {
  *reinterpret_cast<volatile uint64_t*>(page) = 1;
}

/// Sets the fixed counters p50_us and p99_us (per-iteration wall time of
/// the faulting thread, measured around the access).
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

}  // namespace ssihv::bench

#endif  // SSIHV_BENCH_PAGER_BENCH_UTIL_H_
