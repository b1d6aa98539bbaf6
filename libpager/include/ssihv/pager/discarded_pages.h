// A record of the pages a guest discarded (balloon, MADV_DONTNEED): once
// discarded, a page of an image reads as zeros, never as the image's bytes
// again. Shared by the image sources (local file and remote export); one
// record per guest.
#ifndef SSIHV_PAGER_DISCARDED_PAGES_H_
#define SSIHV_PAGER_DISCARDED_PAGES_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace ssihv::pager {

/// One bit per 4 KiB page of [base, base + size). Lock-free: OnRemove sets
/// bits on a fault thread while other fault threads test them.
class DiscardedPages {
 public:
  DiscardedPages(uint64_t base, uint64_t size);
  /// Whether the page at `gpa` (inside the range) was discarded.
  bool Contains(uint64_t gpa) const;
  /// Marks the pages of [gpa, gpa + len) that lie inside the range.
  void Add(uint64_t gpa, uint64_t len);

 private:
  uint64_t base_;
  uint64_t size_;
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_DISCARDED_PAGES_H_
