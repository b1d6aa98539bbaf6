// The part of a region inside the aligned block around a guest address:
// what fault-around fills (ZeroSource) and what a failed fault's release
// zero-fills with it (Resolver::Fail).
#ifndef SSIHV_PAGER_SRC_BLOCK_H_
#define SSIHV_PAGER_SRC_BLOCK_H_

#include <algorithm>
#include <cstdint>

#include "ssihv/pager/pager.h"

namespace ssihv::pager {

struct GpaRange {
  uint64_t begin;
  uint64_t end;
};

/// [begin, end): the `block`-aligned block (a power of two) holding `gpa`,
/// clipped to `r`, which holds `gpa`.
inline GpaRange BlockInRegion(const Region& r, uint64_t gpa, uint64_t block) {
  const uint64_t start = gpa & ~(block - 1);
  return {std::max(start, r.gpa), std::min(start + block, r.gpa_end())};
}

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_SRC_BLOCK_H_
