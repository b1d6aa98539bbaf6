// The one clock of the pager's statistics.
#ifndef SSIHV_PAGER_CLOCK_H_
#define SSIHV_PAGER_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace ssihv::pager {

/// CLOCK_MONOTONIC in nanoseconds (vDSO, ~20 ns: cheap enough for every
/// fault).
inline int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_CLOCK_H_
