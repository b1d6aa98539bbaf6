// Helpers shared by the pager benchmarks (and bench/common).
#ifndef SSIHV_BENCH_PAGER_BENCH_UTIL_H_
#define SSIHV_BENCH_PAGER_BENCH_UTIL_H_

#include <cstdint>

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

}  // namespace ssihv::bench

#endif  // SSIHV_BENCH_PAGER_BENCH_UTIL_H_
