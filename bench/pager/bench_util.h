// Helpers shared by the pager benchmarks (and bench/common).
#ifndef SSIHV_BENCH_PAGER_BENCH_UTIL_H_
#define SSIHV_BENCH_PAGER_BENCH_UTIL_H_

#include <sys/mman.h>

#include <cstdint>
#include <vector>

#include "bench_common.h"

namespace ssihv::bench {

/// Pages touched before a benchmark discards its region and starts over:
/// bounds the memory a long run populates (256 MiB).
inline constexpr uint64_t kWindowPages = 65536;

/// One write per page: the first touch of guest RAM is usually a write (the
/// guest kernel zeroing or filling it).
inline void Touch(uint8_t* page) {
  *reinterpret_cast<volatile uint64_t*>(page) = 1;
}

/// A first access: a write (Touch) or a read of one word.
inline void Access(uint8_t* page, bool write) {
  if (write) {
    Touch(page);
    return;
  }
  // Into a local: DoNotOptimize on the page itself may write it back.
  uint64_t v = *reinterpret_cast<volatile uint64_t*>(page);
  benchmark::DoNotOptimize(v);
}

/// The timed loop of the first-touch benchmarks: each iteration times one
/// `access(page)` of the next page of the `pages`-page window at `mem`, the
/// window made missing again (MADV_DONTNEED, untimed) once walked through.
/// `check` gets what the access returned, after the clock stopped, and
/// returns an error to stop on, or nullptr. Returns each access's time.
template <typename AccessFn, typename Check>
std::vector<int64_t> WalkWindow(benchmark::State& state, uint8_t* mem,
                                uint64_t pages, AccessFn access, Check check) {
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t next = 0;
  for (auto _ : state) {
    if (next == pages) {
      state.PauseTiming();
      madvise(mem, pages * kPage, MADV_DONTNEED);  // missing again
      next = 0;
      state.ResumeTiming();
    }
    uint8_t* page = mem + next++ * kPage;
    const int64_t t0 = NowNs();
    const auto result = access(page);
    ns.push_back(NowNs() - t0);
    if (const char* error = check(result)) {
      state.SkipWithError(error);
      break;
    }
  }
  return ns;
}

/// WalkWindow for an access with nothing to check.
template <typename AccessFn>
std::vector<int64_t> WalkWindow(benchmark::State& state, uint8_t* mem,
                                uint64_t pages, AccessFn access) {
  return WalkWindow(
      state, mem, pages,
      [&access](uint8_t* page) {
        access(page);
        return 0;
      },
      [](int) -> const char* { return nullptr; });
}

}  // namespace ssihv::bench

#endif  // SSIHV_BENCH_PAGER_BENCH_UTIL_H_
