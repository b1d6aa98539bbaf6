// The page numbering shared by every node: pages of the flat RAM space,
// node ranges in node-id order, static homes, and GPA conversion.
#ifndef SSIHV_DIRECTORY_PAGE_SPACE_H_
#define SSIHV_DIRECTORY_PAGE_SPACE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/directory/types.h"

namespace ssihv::directory {

/// Page p lives at RAM offset p * 4096; node n's memory is the consecutive
/// page range [FirstPageOf(n), FirstPageOf(n) + PageCountOf(n)), which is
/// exactly ssihv::cluster::GuestLayout's node RAM (so StaticHomeOf(page) ==
/// GuestLayout::HomeOf(gpa)). Immutable and cheap to copy.
class PageSpace {
 public:
  /// The page space of a cluster's guest layout.
  static absl::StatusOr<PageSpace> FromLayout(
      const cluster::GuestLayout& layout);
  /// Node i homes pages_per_node[i] pages (0 allowed); for tests and the
  /// simulator. 1..64 nodes, at least one page.
  static absl::StatusOr<PageSpace> FromPageCounts(
      const std::vector<uint64_t>& pages_per_node);

  uint32_t num_nodes() const {
    return static_cast<uint32_t>(first_.size() - 1);
  }
  PageId num_pages() const { return first_.back(); }
  bool Contains(PageId page) const { return page < first_.back(); }

  PageId FirstPageOf(NodeId node) const { return first_[node]; }
  PageId PageCountOf(NodeId node) const {
    return first_[node + 1] - first_[node];
  }
  /// The node whose memory holds `page` (page must be Contains()).
  NodeId StaticHomeOf(PageId page) const;

  /// nullopt for GPAs in the MMIO hole or beyond RAM.
  std::optional<PageId> PageOfGpa(uint64_t gpa) const;
  /// First GPA of `page` (page must be Contains()).
  static uint64_t GpaOfPage(PageId page);

 private:
  explicit PageSpace(std::vector<PageId> first) : first_(std::move(first)) {}

  std::vector<PageId> first_;  // num_nodes + 1 entries, first_[0] == 0
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_PAGE_SPACE_H_
