#include "ssihv/cluster/layout.h"

#include <catch2/catch.hpp>

using namespace ssihv::cluster;

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

ClusterConfig Config(std::initializer_list<std::pair<uint32_t, uint64_t>> nodes) {
  ClusterConfig c;
  uint32_t id = 0;
  for (auto [vcpus, mib] : nodes) c.nodes.push_back({id++, vcpus, mib, "", ""});
  return c;
}

}  // namespace

TEST_CASE("nodes are laid out in id order from GPA 0") {
  GuestLayout l(Config({{2, 1024}, {2, 1024}}));
  REQUIRE(l.ranges().size() == 2);
  CHECK(l.ranges()[0].gpa == 0);
  CHECK(l.ranges()[1].gpa == 1 * kGiB);
  CHECK(l.ranges()[1].node == 1);
  CHECK(l.max_gpa() == 2 * kGiB);
  CHECK(*l.HomeOf(1 * kGiB - 1) == 0);
  CHECK(*l.HomeOf(1 * kGiB) == 1);
  CHECK_FALSE(l.HomeOf(2 * kGiB).has_value());
}

TEST_CASE("a node straddling 3 GiB is split around the MMIO hole") {
  GuestLayout l(Config({{1, 2048}, {1, 2048}}));
  auto r1 = l.RangesOfNode(1);
  REQUIRE(r1.size() == 2);
  CHECK(r1[0].gpa == 2 * kGiB);
  CHECK(r1[0].size == 1 * kGiB);
  CHECK(r1[1].gpa == 4 * kGiB);
  CHECK(r1[1].size == 1 * kGiB);
  CHECK(r1[1].ram_offset == 3 * kGiB);
  CHECK(l.max_gpa() == 5 * kGiB);
  CHECK_FALSE(l.HomeOf(3 * kGiB).has_value());
  CHECK_FALSE(l.HomeOf(4 * kGiB - 1).has_value());
  CHECK(*l.HomeOf(4 * kGiB) == 1);
  CHECK(l.RangeOf(3 * kGiB + 5) == nullptr);
}

TEST_CASE("a node starting above the hole is shifted by 1 GiB") {
  GuestLayout l(Config({{1, 3072}, {1, 2}}));
  auto r1 = l.RangesOfNode(1);
  REQUIRE(r1.size() == 1);
  CHECK(r1[0].gpa == 4 * kGiB);
  CHECK(r1[0].size == 2 * kMiB);
}

TEST_CASE("RAM offsets and GPAs convert both ways") {
  CHECK(GuestLayout::RamOffsetToGpa(3 * kGiB - 4096) == 3 * kGiB - 4096);
  CHECK(GuestLayout::RamOffsetToGpa(3 * kGiB) == 4 * kGiB);
  CHECK(*GuestLayout::GpaToRamOffset(4 * kGiB + 8) == 3 * kGiB + 8);
  CHECK_FALSE(GuestLayout::GpaToRamOffset(3 * kGiB + 8).has_value());
}

TEST_CASE("vCPUs are numbered globally in node order, memory-only nodes skipped") {
  GuestLayout l(Config({{2, 2}, {0, 2}, {3, 2}}));
  CHECK(l.total_vcpus() == 5);
  CHECK(l.FirstVcpuOfNode(2) == 2);
  CHECK(l.NodeOfVcpu(0) == 0);
  CHECK(l.NodeOfVcpu(1) == 0);
  CHECK(l.NodeOfVcpu(2) == 2);
  CHECK(l.NodeOfVcpu(4) == 2);
}
