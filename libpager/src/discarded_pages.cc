#include "ssihv/pager/discarded_pages.h"

#include <algorithm>

#include "ssihv/pager/fault.h"

namespace ssihv::pager {

DiscardedPages::DiscardedPages(uint64_t base, uint64_t size)
    : base_(base),
      size_(size),
      bits_(std::make_unique<std::atomic<uint64_t>[]>((size / kPageSize + 63) /
                                                      64)) {}

bool DiscardedPages::Contains(uint64_t gpa) const {
  const uint64_t page = (gpa - base_) / kPageSize;
  return (bits_[page / 64].load(std::memory_order_acquire) &
          (uint64_t{1} << (page % 64))) != 0;
}

void DiscardedPages::Add(uint64_t gpa, uint64_t len) {
  const uint64_t lo = std::max(gpa, base_);
  const uint64_t hi = std::min(gpa + len, base_ + size_);
  for (uint64_t a = lo; a < hi; a += kPageSize) {
    const uint64_t page = (a - base_) / kPageSize;
    bits_[page / 64].fetch_or(uint64_t{1} << (page % 64),
                              std::memory_order_release);
  }
}

}  // namespace ssihv::pager
