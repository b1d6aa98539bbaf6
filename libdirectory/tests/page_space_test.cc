#include "ssihv/directory/page_space.h"

#include <catch2/catch.hpp>

#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"

namespace ssihv::directory {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

TEST_CASE("pages are numbered per node range, empty ranges allowed") {
  PageSpace s = *PageSpace::FromPageCounts({3, 0, 2, 0});
  CHECK(s.num_nodes() == 4);
  CHECK(s.num_pages() == 5);
  CHECK(s.StaticHomeOf(0) == 0);
  CHECK(s.StaticHomeOf(2) == 0);
  CHECK(s.StaticHomeOf(3) == 2);
  CHECK(s.StaticHomeOf(4) == 2);
  CHECK(s.FirstPageOf(1) == 3);
  CHECK(s.PageCountOf(1) == 0);
  CHECK(s.PageCountOf(3) == 0);
  CHECK_FALSE(s.Contains(5));
}

TEST_CASE("bad page counts are refused") {
  CHECK_FALSE(PageSpace::FromPageCounts({}).ok());
  CHECK_FALSE(PageSpace::FromPageCounts({0, 0}).ok());
  CHECK_FALSE(PageSpace::FromPageCounts(std::vector<uint64_t>(65, 1)).ok());
  CHECK_FALSE(PageSpace::FromPageCounts({uint64_t{1} << 53}).ok());
}

TEST_CASE("the page space of a layout agrees with GuestLayout::HomeOf") {
  cluster::ClusterConfig config;
  config.nodes = {
      {0, 1, 2048, "", ""}, {1, 1, 2048, "", ""}, {2, 0, 2, "", ""}};
  cluster::GuestLayout layout(config);
  PageSpace s = *PageSpace::FromLayout(layout);
  CHECK(s.num_pages() == (4 * kGiB + (2 << 20)) / kPageSize);
  CHECK(s.PageCountOf(0) == 2 * kGiB / kPageSize);
  CHECK(s.PageCountOf(2) == 512);
  // Node 1 straddles the MMIO hole: GPA 2..3 GiB and 4..5 GiB.
  for (uint64_t gpa :
       {uint64_t{0}, 2 * kGiB - 4096, 2 * kGiB, 3 * kGiB - 1, 4 * kGiB,
        5 * kGiB - 1, 5 * kGiB, 5 * kGiB + (2 << 20) - 1}) {
    INFO("gpa " << gpa);
    std::optional<PageId> p = s.PageOfGpa(gpa);
    REQUIRE(p.has_value());
    CHECK(s.StaticHomeOf(*p) == *layout.HomeOf(gpa));
    CHECK(PageSpace::GpaOfPage(*p) == gpa / kPageSize * kPageSize);
  }
  CHECK_FALSE(s.PageOfGpa(3 * kGiB).has_value());              // the hole
  CHECK_FALSE(s.PageOfGpa(5 * kGiB + (2 << 20)).has_value());  // beyond RAM
}

}  // namespace
}  // namespace ssihv::directory
