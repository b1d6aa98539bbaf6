// First-touch write runs in the DSM node (docs/PAGER.md, "First-touch write
// runs"): a node writing memory homed elsewhere that nobody has touched
// gets the following pages too, in one transaction, without a byte of page
// data on the wire or an madvise at the home; pages the home has touched
// are refused and then served one by one; the data stays coherent.
#include <catch2/catch.hpp>
#include <cstdint>
#include <thread>

#include "dsm_cluster.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::Cluster;
using testing::JsonU64;

uint64_t FirstTouchValue(uint64_t page) { return 0xf1f50000u + page; }

TEST_CASE("A first-touch walk of remote memory is served by write runs") {
  Cluster c(2);
  constexpr uint64_t kPages = 200;
  const uint64_t base = c.HomeBase(0);
  for (uint64_t p = 0; p < kPages; ++p) {
    *c.At(1, base + p * kPageSize) = FirstTouchValue(p);
  }
  const nlohmann::json home = c.nodes[0]->StatsJson();
  const nlohmann::json writer = c.nodes[1]->StatsJson();
  const uint64_t granted = JsonU64(home, "protocol", "write_run_pages_granted");
  // Most pages came in runs; the walk faulted far less than once a page.
  CHECK(granted >= kPages / 2);
  CHECK(JsonU64(writer, "protocol", "write_run_requests") * 4 <= granted);
  CHECK(c.Faults(1, FaultKind::kRemoteWrite) < kPages / 4);
  // Nothing but headers crossed: the pages were zeros, and the home had
  // never mapped them, so it gave them up without an madvise (single
  // grants of pristine pages too).
  CHECK(JsonU64(home, "protocol", "page_bytes_sent") == 0);
  CHECK(JsonU64(home, "dsm", "zaps") == 0);
  // Every page is one write transaction at its home and ends Modified at
  // the writer; the home reads back what was written.
  CHECK(JsonU64(home, "protocol", "write_txns") >= kPages);
  for (uint64_t p = 0; p < kPages; ++p) {
    INFO("page " << p);
    REQUIRE(*c.At(0, base + p * kPageSize) == FirstTouchValue(p));
  }
  CHECK(c.errors == 0);
}

// The home's first touch of page 300 maps its aligned block of 64 pages
// (256-319, local fault-around set to 64): those are no longer pristine
// there, and the write run that reaches into them from below is refused
// there. Each node homes 2 MiB: 512 pages.
constexpr uint64_t kStart = 5, kWalk = 512, kHomeTouch = 300;

void SmallFaultAround(int, DsmOptions& o) { o.local_fault_around_pages = 64; }

TEST_CASE("Pages their home touched are refused, then served one by one") {
  Cluster c(2, 1, SmallFaultAround);
  const uint64_t base = c.HomeBase(0);
  *c.At(0, base + kHomeTouch * kPageSize) = 7;
  // The home maps the rest of the block after its fault returned: on a busy
  // host the walk below could reach those pages first (then they are still
  // pristine, and granted: 1 failure in 3 loaded host runs).
  REQUIRE(testing::WaitFor([&] {
    return JsonU64(c.nodes[0]->StatsJson(), "pager", "filled_ahead") >= 63;
  }));
  for (uint64_t p = kStart; p < kWalk; ++p) {
    // A write, not a read first.
    *c.At(1, base + p * kPageSize) = FirstTouchValue(p);
  }
  const nlohmann::json home = c.nodes[0]->StatsJson();
  CHECK(JsonU64(home, "protocol", "write_run_pages_refused") > 0);
  CHECK(JsonU64(home, "protocol", "write_run_pages_granted") >= 256);
  CHECK(c.Faults(1, FaultKind::kRemoteWrite) < 128);
  for (uint64_t p = kStart; p < kWalk; ++p) {
    INFO("page " << p);
    REQUIRE(*c.At(1, base + p * kPageSize) == FirstTouchValue(p));
    REQUIRE(*c.At(0, base + p * kPageSize) == FirstTouchValue(p));
  }
  CHECK(c.errors == 0);
}

TEST_CASE("Two threads first-touching the same remote pages lose nothing") {
  // Node 1's threads walk the same pages from both ends: each joins pages
  // the other's write runs asked for (granted, or refused in 256-319,
  // where a joined thread must be woken to ask on its own).
  Cluster c(2, 1, SmallFaultAround);
  const uint64_t base = c.HomeBase(0);
  *c.At(0, base + kHomeTouch * kPageSize) = 1;
  std::thread other([&] {
    for (uint64_t p = kWalk; p-- > 0;) {
      __atomic_fetch_add(c.At(1, base + p * kPageSize), 2, __ATOMIC_RELAXED);
    }
  });
  for (uint64_t p = 0; p < kWalk; ++p) {
    __atomic_fetch_add(c.At(1, base + p * kPageSize), 4, __ATOMIC_RELAXED);
  }
  other.join();
  for (uint64_t p = 0; p < kWalk; ++p) {
    INFO("page " << p);
    REQUIRE(*c.At(0, base + p * kPageSize) == (p == kHomeTouch ? 7u : 6u));
  }
  CHECK(c.errors == 0);
}

TEST_CASE("Without write runs none is asked for") {
  Cluster c(2, 1, [](int, DsmOptions& o) { o.write_run_pages = 0; });
  for (uint64_t p = 0; p < 16; ++p) *c.At(1, c.HomeBase(0) + p * kPageSize) = 1;
  CHECK(JsonU64(c.nodes[1]->StatsJson(), "protocol", "write_run_requests") ==
        0);
  CHECK(c.Faults(1, FaultKind::kRemoteWrite) == 16);
  CHECK(c.errors == 0);
}

}  // namespace
}  // namespace ssihv::pager
