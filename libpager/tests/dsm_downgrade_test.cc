// Background downgrade in the DSM node (docs/PAGER.md, "Background
// downgrade"): a page its home writes and another node reads a while later
// is write-protected by the home on its own once it has been left alone, so
// the read finds it Shared; a downgrade the home's next write undoes first
// is counted as wasted; with the option off nothing is downgraded. Every
// read checks the value of the write before it.
#include <catch2/catch.hpp>
#include <cstdint>

#include "dsm_cluster.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::Cluster;

constexpr uint64_t kPage = 4096;

uint64_t Stat(Cluster& c, int node, const char* key) {
  return c.nodes[node]->StatsJson()["dsm"][key].get<uint64_t>();
}

// Node 0 (the home) writes the page, node 1 reads it: the read had to
// downgrade the home's copy, which makes the page a candidate.
uint64_t Prime(Cluster& c) {
  const uint64_t gpa = c.HomeBase(0) + 7 * kPage;
  *c.At(0, gpa) = 1;
  REQUIRE(*c.At(1, gpa) == 1);
  return gpa;
}

TEST_CASE("An idle page its home wrote is Shared when another node reads it") {
  Cluster c(2, 1, [](int, DsmOptions& o) {
    o.background_downgrade = absl::Milliseconds(1);
  });
  const uint64_t gpa = Prime(c);
  for (uint64_t round = 1; round <= 5; ++round) {
    INFO("round " << round);
    *c.At(0, gpa) = 100 + round;  // an upgrade: takes node 1's copy
    REQUIRE(testing::WaitFor(
        [&] { return Stat(c, 0, "background_downgrades") == round; }));
    REQUIRE(*c.At(1, gpa) == 100 + round);
    CHECK(Stat(c, 0, "background_downgrades_useful") == round);
  }
  CHECK(Stat(c, 0, "background_downgrades_wasted") == 0);

  // The home writes again after a downgrade, with no read between: wasted,
  // and the next downgrade of the page waits twice as long.
  *c.At(0, gpa) = 200;
  REQUIRE(testing::WaitFor(
      [&] { return Stat(c, 0, "background_downgrades") == 6; }));
  *c.At(0, gpa) = 201;
  CHECK(Stat(c, 0, "background_downgrades_wasted") == 1);
  CHECK(*c.At(0, gpa) == 201);
  CHECK(*c.At(1, gpa) == 201);
  CHECK(c.errors == 0);
}

TEST_CASE("A page the home keeps writing is given up after misses in a row") {
  Cluster c(2, 1, [](int, DsmOptions& o) {
    o.background_downgrade = absl::Microseconds(200);
  });
  const uint64_t gpa = Prime(c);
  *c.At(0, gpa) = 2;  // upgrade: scheduled
  uint64_t value = 2;
  for (uint64_t k = 1; k <= 6; ++k) {
    INFO("miss " << k);
    REQUIRE(testing::WaitFor(
        [&] { return Stat(c, 0, "background_downgrades") == k; }));
    *c.At(0, gpa) = ++value;  // the write undoes it
  }
  CHECK(Stat(c, 0, "background_downgrades_wasted") == 6);
  // Given up: the page stays writable at its home.
  const uint64_t upgrades = c.Faults(0, FaultKind::kUpgrade);
  for (int i = 0; i < 100; ++i) *c.At(0, gpa) = ++value;
  CHECK(c.Faults(0, FaultKind::kUpgrade) == upgrades);
  CHECK(Stat(c, 0, "background_downgrades") == 6);
  CHECK(*c.At(1, gpa) == value);
  CHECK(c.errors == 0);
}

TEST_CASE("Without background downgrade the home keeps its page Modified") {
  Cluster c(2, 1, [](int, DsmOptions& o) {
    o.background_downgrade = absl::ZeroDuration();
  });
  const uint64_t gpa = Prime(c);
  *c.At(0, gpa) = 2;
  REQUIRE(*c.At(1, gpa) == 2);
  *c.At(0, gpa) = 3;
  REQUIRE(*c.At(1, gpa) == 3);
  CHECK(Stat(c, 0, "background_downgrades") == 0);
  CHECK(c.errors == 0);
}

}  // namespace
}  // namespace ssihv::pager
