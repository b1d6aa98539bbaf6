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

// Node 0 (the home) writes the page, node 1 reads it: the read had to
// downgrade the home's copy, which makes the page a candidate.
uint64_t Prime(Cluster& c) {
  const uint64_t gpa = c.HomeBase(0) + 7 * kPageSize;
  *c.At(0, gpa) = 1;
  REQUIRE(*c.At(1, gpa) == 1);
  return gpa;
}

// The home writes `value`, node 1 reads it back: with a delay of 1 ns the
// read always comes later than that after the write, so each such read is
// evidence that a background downgrade would have been in time.
void WriteThenRead(Cluster& c, uint64_t gpa, uint64_t value) {
  *c.At(0, gpa) = value;
  REQUIRE(*c.At(1, gpa) == value);
}

// A delay of 1 ns (32 ns after five misses): the tests need no sleeping
// for the idle time. A downgrade still waits for the grant's hold, held
// 5 ms here: a test thread woken on a busy 2-CPU host has stored by then
// (as in the read refresh tests), so no downgrade is wasted by accident.
void Quick(int, DsmOptions& o) {
  o.background_downgrade = absl::Nanoseconds(1);
  o.grant_hold = absl::Milliseconds(5);
  o.max_grant_hold = o.grant_hold;
}

// The pager counts a fault just after waking its thread: wait for it.
bool UpgradesReach(Cluster& c, uint64_t n) {
  return testing::WaitFor(
      [&] { return c.Faults(0, FaultKind::kUpgrade) == n; });
}

TEST_CASE("An idle page its home wrote is Shared when another node reads it") {
  Cluster c(2, 1, Quick);
  const uint64_t gpa = Prime(c);
  // Two reads late enough after the home's writes: the evidence it needs.
  WriteThenRead(c, gpa, 2);
  WriteThenRead(c, gpa, 3);
  CHECK(c.DsmStat(0, "background_downgrades") == 0);
  for (uint64_t round = 1; round <= 5; ++round) {
    INFO("round " << round);
    *c.At(0, gpa) = 100 + round;  // an upgrade: takes node 1's copy
    REQUIRE(testing::WaitFor(
        [&] { return c.DsmStat(0, "background_downgrades") == round; }));
    REQUIRE(*c.At(1, gpa) == 100 + round);
    CHECK(c.DsmStat(0, "background_downgrades_useful") == round);
  }
  CHECK(c.DsmStat(0, "background_downgrades_wasted") == 0);

  // The home writes again after a downgrade, with no read between: wasted.
  *c.At(0, gpa) = 200;
  REQUIRE(testing::WaitFor(
      [&] { return c.DsmStat(0, "background_downgrades") == 6; }));
  *c.At(0, gpa) = 201;
  CHECK(c.DsmStat(0, "background_downgrades_wasted") == 1);
  CHECK(*c.At(0, gpa) == 201);
  CHECK(*c.At(1, gpa) == 201);
  CHECK(c.errors == 0);
}

TEST_CASE(
    "A page read once and then only written by its home stays "
    "writable") {
  Cluster c(2, 1, Quick);
  const uint64_t gpa = Prime(c);
  REQUIRE(UpgradesReach(c, 0));
  for (uint64_t v = 2; v < 1000; ++v) *c.At(0, gpa) = v;
  // One upgrade (node 1's copy taken), then plain stores: without evidence
  // the page is never downgraded behind the home's back.
  CHECK(UpgradesReach(c, 1));
  CHECK(c.DsmStat(0, "background_downgrades") == 0);
  CHECK(*c.At(1, gpa) == 999);
  CHECK(c.errors == 0);
}

TEST_CASE("A page the home keeps writing is given up after misses in a row") {
  Cluster c(2, 1, Quick);
  const uint64_t gpa = Prime(c);
  uint64_t value = 1;
  for (uint64_t k = 1; k <= 6; ++k) {
    INFO("miss " << k);
    WriteThenRead(c, gpa, ++value);  // evidence, needed again after a miss
    WriteThenRead(c, gpa, ++value);
    *c.At(0, gpa) = ++value;  // an upgrade: scheduled
    REQUIRE(testing::WaitFor(
        [&] { return c.DsmStat(0, "background_downgrades") == k; }));
    *c.At(0, gpa) = ++value;  // the write undoes it
    CHECK(c.DsmStat(0, "background_downgrades_wasted") == k);
  }
  // Given up: the home's next upgrade schedules nothing.
  WriteThenRead(c, gpa, ++value);
  WriteThenRead(c, gpa, ++value);
  // Upgrades so far: three a miss (the second write-then-read, the
  // scheduled write and the write that undoes it; the first write of a
  // miss finds the page still writable from the miss before, but for the
  // first miss, after Prime's read), and the second write-then-read above.
  constexpr uint64_t kBefore = 1 + 6 * 3 + 1;
  REQUIRE(UpgradesReach(c, kBefore));
  for (int i = 0; i < 100; ++i) *c.At(0, gpa) = ++value;
  CHECK(UpgradesReach(c, kBefore + 1));
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
  CHECK(c.DsmStat(0, "background_downgrades") == 0);
  CHECK(c.errors == 0);
}

}  // namespace
}  // namespace ssihv::pager
