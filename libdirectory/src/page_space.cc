#include "ssihv/directory/page_space.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ssihv::directory {

absl::StatusOr<PageSpace> PageSpace::FromLayout(
    const cluster::GuestLayout& layout) {
  std::vector<uint64_t> counts(layout.num_nodes(), 0);
  for (const cluster::GpaRange& r : layout.ranges()) {
    if (r.node >= counts.size() || r.size % kPageSize != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("PageSpace: bad layout range at GPA ", r.gpa));
    }
    counts[r.node] += r.size / kPageSize;
  }
  // The layout places node RAM in node-id order in the flat RAM space, which
  // is exactly our page numbering; check rather than assume.
  absl::StatusOr<PageSpace> space = FromPageCounts(counts);
  if (!space.ok()) return space;
  for (const cluster::GpaRange& r : layout.ranges()) {
    if (r.ram_offset / kPageSize < space->FirstPageOf(r.node) ||
        (r.ram_offset + r.size) / kPageSize >
            space->FirstPageOf(r.node) + space->PageCountOf(r.node)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PageSpace: node ", r.node, " RAM is not in node-id order"));
    }
  }
  return space;
}

absl::StatusOr<PageSpace> PageSpace::FromPageCounts(
    const std::vector<uint64_t>& pages_per_node) {
  if (pages_per_node.empty() || pages_per_node.size() > kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrCat("PageSpace: node count ",
                                                   pages_per_node.size(),
                                                   " not in 1..", kMaxNodes));
  }
  std::vector<PageId> first{0};
  for (uint64_t n : pages_per_node) {
    // 2^52 pages = 16 EiB of RAM: nothing real comes close; keeps GPAs and
    // sums free of overflow.
    if (n > (uint64_t{1} << 52) - first.back()) {
      return absl::InvalidArgumentError("PageSpace: too many pages");
    }
    first.push_back(first.back() + n);
  }
  if (first.back() == 0) {
    return absl::InvalidArgumentError("PageSpace: no pages");
  }
  return PageSpace(std::move(first));
}

NodeId PageSpace::StaticHomeOf(PageId page) const {
  // The last node whose range starts at or below `page`; empty ranges share
  // their start with the next node, so they are never that last one.
  auto it = std::upper_bound(first_.begin(), first_.end() - 1, page);
  return static_cast<NodeId>(it - first_.begin()) - 1;
}

std::optional<PageId> PageSpace::PageOfGpa(uint64_t gpa) const {
  std::optional<uint64_t> offset = cluster::GuestLayout::GpaToRamOffset(gpa);
  if (!offset.has_value()) return std::nullopt;
  PageId page = *offset / kPageSize;
  if (!Contains(page)) return std::nullopt;
  return page;
}

uint64_t PageSpace::GpaOfPage(PageId page) {
  return cluster::GuestLayout::RamOffsetToGpa(page * kPageSize);
}

}  // namespace ssihv::directory
