// Read refresh in the DSM node (docs/PAGER.md, "Read refresh"): a page one
// node writes at every tick and another reads after each write comes back
// to the reader right after the write, held until the read takes it; the
// read then sees the write without a remote miss; a page whose refreshed
// copies go unread stops being refreshed; with the option off nothing is
// refreshed. Every read checks the value of the write before it.
#include <catch2/catch.hpp>
#include <cstdint>

#include "dsm_cluster.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::Cluster;

// A refresh takes the page from its writer as soon as the writer's hold is
// over. The writing thread here must have stored by then, or its store
// faults again, takes the page back and wastes the refreshed copy (the
// grant hold's interrupted writer, docs/PAGER.md): on a busy 2-CPU host a
// woken thread can wait longer than the default 20 us to run, so these
// tests hold every grant 5 ms (and turn read refresh on: it is off by
// default).
void LongHolds(int, DsmOptions& o) {
  o.read_refresh = true;
  o.grant_hold = absl::Milliseconds(5);
  o.max_grant_hold = o.grant_hold;
}

// One tick: `writer` writes `value` into the page at `gpa`, then node 1
// reads it back (`read`: or not). When the page is hot at node 1, the
// refresh the write's invalidation asked for is waited for (held there)
// before the read, as a guest's next tick finds it.
void Tick(Cluster& c, int writer, uint64_t gpa, uint64_t value, bool read) {
  *c.At(writer, gpa) = value;
  if (c.DsmStat(1, "read_refresh_pages_hot") == 1) {
    REQUIRE(testing::WaitFor(
        [&] { return c.DsmStat(1, "read_ahead_markers_held") == 1; }));
  }
  if (read) REQUIRE(*c.At(1, gpa) == value);
}

// Node 0 (the home) writes a page at every tick, node 1 reads it after
// each write: after the first few remote misses the page is hot, and every
// later read takes the refreshed copy locally.
void TickAndRead(Cluster& c, int writer, uint64_t ticks) {
  const uint64_t gpa = c.HomeBase(0) + 5 * kPageSize;
  for (uint64_t t = 1; t <= ticks; ++t) {
    INFO("tick " << t);
    Tick(c, writer, gpa, t, /*read=*/true);
  }
  CHECK(c.DsmStat(1, "read_refresh_pages_hot") == 1);
  // The misses before the page was hot: its first and kFirstNeed more, and
  // a few more when the fault thread that counts a miss ran only after the
  // next tick's write (a busy host).
  const uint64_t misses = c.Faults(1, FaultKind::kRemoteRead);
  CHECK(misses <= 10);
  CHECK(c.DsmStat(1, "read_refresh_used") + misses + 1 >= ticks);
  // A writer that did not run for a whole hold after its fault was served
  // (a loaded 2-CPU host, CI's -j2) stores after the refresh and wastes
  // it: rare, never the rule.
  CHECK(c.DsmStat(1, "read_refresh_wasted") <= 2);
  CHECK(c.errors == 0);
}

TEST_CASE("A page its home writes at every tick is refreshed for its reader") {
  Cluster c(2, 1, LongHolds);
  TickAndRead(c, 0, 40);
  CHECK(c.DsmStat(1, "read_refresh_requests") >= 30);
}

TEST_CASE("A page a third node writes at every tick is refreshed (3 nodes)") {
  // The refresh goes to the home, which forwards it to the writer once the
  // writer's hold is over.
  Cluster c(3, 1, LongHolds);
  TickAndRead(c, 2, 40);
  const uint64_t gpa = c.HomeBase(0) + 5 * kPageSize;
  CHECK(*c.At(0, gpa) == 40);
  CHECK(*c.At(2, gpa) == 40);
}

TEST_CASE("A refreshed page nobody reads stops being refreshed") {
  Cluster c(2, 1, LongHolds);
  TickAndRead(c, 0, 20);
  const uint64_t gpa = c.HomeBase(0) + 5 * kPageSize;
  // Node 1 stops reading: each refreshed copy is invalidated unread by the
  // next write; the second such write cools the page.
  uint64_t t = 100;
  const uint64_t wasted_reading = c.DsmStat(1, "read_refresh_wasted");
  while (c.DsmStat(1, "read_refresh_pages_hot") == 1) {
    REQUIRE(c.DsmStat(1, "read_refresh_wasted") - wasted_reading < 3);
    Tick(c, 0, gpa, ++t, /*read=*/false);
  }
  CHECK(c.DsmStat(1, "read_refresh_wasted") - wasted_reading == 2);
  CHECK(c.DsmStat(1, "read_refresh_cooled") == 1);
  // Node 1 has handled the last invalidation (and asked nothing) once it
  // got a later answer from node 0 on the same channel: a read of another
  // page of node 0's.
  const uint64_t requests = c.DsmStat(1, "read_refresh_requests");
  *c.At(0, gpa) = ++t;
  CHECK(*c.At(1, gpa + kPageSize) == 0);
  CHECK(c.DsmStat(1, "read_refresh_requests") == requests);
  CHECK(*c.At(1, gpa) == t);
  CHECK(c.errors == 0);
}

TEST_CASE("Without read refresh every read after a write is a remote miss") {
  Cluster c(2, 1, [](int, DsmOptions& o) { o.read_refresh = false; });
  const uint64_t gpa = c.HomeBase(0) + 5 * kPageSize;
  constexpr uint64_t kTicks = 20;
  for (uint64_t t = 1; t <= kTicks; ++t) {
    *c.At(0, gpa) = t;
    REQUIRE(*c.At(1, gpa) == t);
  }
  REQUIRE(testing::WaitFor(
      [&] { return c.Faults(1, FaultKind::kRemoteRead) == kTicks; }));
  CHECK(c.DsmStat(1, "read_refresh_requests") == 0);
  CHECK(c.errors == 0);
}

}  // namespace
}  // namespace ssihv::pager
