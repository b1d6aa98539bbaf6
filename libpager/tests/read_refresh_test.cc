// Read refresh's policy (dsm/read_refresh.h): when a page becomes hot, what
// a used or wasted refresh does, the table's bound.
#include "dsm/read_refresh.h"

#include <catch2/catch.hpp>
#include <cstdint>

namespace ssihv::pager::dsm {
namespace {

constexpr int64_t kMillis = 1'000'000;

bool Inv(ReadRefresh& r, uint64_t page, int64_t now) {
  int64_t delay = -1;
  const bool ask = r.OnInvalidated(page, now, &delay);
  if (ask) {
    CHECK(delay >= ReadRefresh::kMinDelayNs);
    CHECK(delay <= ReadRefresh::kMaxDelayNs);
  }
  return ask;
}

// One write elsewhere (the invalidation) and a read miss `gap` later.
void MissAfterWrite(ReadRefresh& r, uint64_t page, int64_t& now, int64_t gap) {
  now += 4 * kMillis;
  REQUIRE_FALSE(Inv(r, page, now));
  now += gap;
  r.OnRemoteRead(page, now);
}

// The page's first miss and kFirstNeed misses each soon after a write.
void MakeHot(ReadRefresh& r, uint64_t page, int64_t& now) {
  r.OnRemoteRead(page, now);
  for (uint32_t i = 0; i < ReadRefresh::kFirstNeed; ++i) {
    MissAfterWrite(r, page, now, kMillis);
  }
}

TEST_CASE("ReadRefresh: a page read soon after each write becomes hot") {
  ReadRefresh r(true);
  int64_t now = kMillis;
  r.OnRemoteRead(7, now);
  for (uint32_t i = 0; i + 1 < ReadRefresh::kFirstNeed; ++i) {
    MissAfterWrite(r, 7, now, kMillis);
  }
  CHECK(r.stats().hot == 0);
  MissAfterWrite(r, 7, now, kMillis);
  CHECK(r.stats().hot == 1);
  now += 4 * kMillis;
  CHECK(Inv(r, 7, now));  // ask for it again
  CHECK(r.Outstanding(7));
  CHECK_FALSE(r.Outstanding(8));
  CHECK_FALSE(Inv(r, 7, now));  // one refresh at a time
  CHECK(r.stats().requested == 1);
}

TEST_CASE("ReadRefresh: the refresh waits a quarter of the writer's period") {
  ReadRefresh r(true);
  int64_t now = kMillis;
  MakeHot(r, 7, now);  // invalidations 5 ms apart (4 ms + the read's 1 ms)
  int64_t delay = 0;
  now += 4 * kMillis;
  REQUIRE(r.OnInvalidated(7, now, &delay));
  CHECK(delay == 5 * kMillis / 4);
  r.OnMapped(7, true);
  now += 100 * kMillis;  // a slow writer: the bound
  REQUIRE(r.OnInvalidated(7, now, &delay));
  CHECK(delay == ReadRefresh::kMaxDelayNs);
  r.OnMapped(7, true);
  now += kMillis / 10;  // a fast one: the floor
  REQUIRE(r.OnInvalidated(7, now, &delay));
  CHECK(delay == ReadRefresh::kMinDelayNs);
}

TEST_CASE("ReadRefresh: reads long after the write do not make it hot") {
  ReadRefresh r(true);
  int64_t now = kMillis;
  r.OnRemoteRead(7, now);
  for (int i = 0; i < 10; ++i) {
    MissAfterWrite(r, 7, now, ReadRefresh::kWindowNs + kMillis);
  }
  CHECK(r.stats().hot == 0);
  // A miss with no invalidation before it (the page was never held, or
  // was dropped otherwise) breaks the streak too.
  ReadRefresh s(true);
  now = kMillis;
  s.OnRemoteRead(9, now);
  for (int i = 0; i < 10; ++i) {
    MissAfterWrite(s, 9, now, kMillis);
    s.OnRemoteRead(9, now + kMillis);
  }
  CHECK(s.stats().hot == 0);
  // A page never missed here is not tracked: nothing to refresh.
  CHECK_FALSE(Inv(s, 100, now));
}

TEST_CASE("ReadRefresh: used refreshes keep a page hot, wasted ones cool it") {
  ReadRefresh r(true);
  int64_t now = kMillis;
  MakeHot(r, 7, now);
  // The next tick's write: page 7 is asked for again.
  auto refresh = [&] {
    now += 4 * kMillis;
    REQUIRE(Inv(r, 7, now));
  };
  for (int i = 0; i < 5; ++i) {
    refresh();
    r.OnMapped(7, /*waited=*/true);  // a read took it
  }
  CHECK(r.stats().used == 5);
  // One wasted refresh, then a used one: still hot (two in a row cool).
  refresh();
  r.OnWasted(7);
  refresh();
  r.OnMapped(7, true);
  refresh();
  r.OnWasted(7);
  refresh();
  r.OnWasted(7);
  CHECK(r.stats().wasted == 3);
  CHECK(r.stats().cooled == 1);
  CHECK(r.stats().hot == 0);
  CHECK_FALSE(Inv(r, 7, now + 4 * kMillis));
  // Hot again only after twice the streak.
  now += 8 * kMillis;
  for (uint32_t i = 0; i < 2 * ReadRefresh::kFirstNeed - 1; ++i) {
    MissAfterWrite(r, 7, now, kMillis);
  }
  CHECK(r.stats().hot == 0);
  MissAfterWrite(r, 7, now, kMillis);
  CHECK(r.stats().hot == 1);
}

TEST_CASE("ReadRefresh: a refresh mapped unread or not sent gives no verdict") {
  ReadRefresh r(true);
  int64_t now = kMillis;
  MakeHot(r, 7, now);
  for (int i = 0; i < 4; ++i) {
    now += 4 * kMillis;
    REQUIRE(Inv(r, 7, now));
    if (i % 2 == 0) {
      r.OnMapped(7, /*waited=*/false);
    } else {
      r.OnSettled(7);
    }
    CHECK_FALSE(r.Outstanding(7));
  }
  CHECK(r.stats().hot == 1);
  CHECK(r.stats().used == 0);
  CHECK(r.stats().wasted == 0);
  // Verdicts for a page with nothing outstanding change nothing.
  r.OnWasted(7);
  r.OnWasted(7);
  CHECK(r.stats().hot == 1);
}

TEST_CASE("ReadRefresh: the table is bounded, outstanding pages stay") {
  ReadRefresh r(true, /*capacity=*/4);
  int64_t now = kMillis;
  MakeHot(r, 1, now);
  now += 4 * kMillis;
  REQUIRE(Inv(r, 1, now));
  for (uint64_t p = 10; p < 20; ++p) r.OnRemoteRead(p, now += kMillis);
  CHECK(r.Outstanding(1));  // not evicted while its answer is on its way
  r.OnMapped(1, true);
  for (uint64_t p = 20; p < 30; ++p) r.OnRemoteRead(p, now += kMillis);
  CHECK_FALSE(Inv(r, 1, now));  // evicted since
  CHECK(r.stats().hot == 0);
}

TEST_CASE("ReadRefresh: off never refreshes") {
  ReadRefresh r(false);
  int64_t now = kMillis;
  r.OnRemoteRead(7, now);
  for (int i = 0; i < 10; ++i) {
    now += 4 * kMillis;
    CHECK_FALSE(Inv(r, 7, now));
    r.OnRemoteRead(7, now + kMillis);
  }
  CHECK(r.stats().hot == 0);
  CHECK_FALSE(r.Outstanding(7));
}

}  // namespace
}  // namespace ssihv::pager::dsm
