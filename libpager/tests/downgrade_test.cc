// Background downgrade's policy (dsm/downgrade.h): which pages qualify,
// when they are scheduled, what a useful or wasted downgrade does, and that
// a later schedule supersedes an earlier one.
#include "dsm/downgrade.h"

#include <catch2/catch.hpp>
#include <cstdint>

namespace ssihv::pager::dsm {
namespace {

constexpr int64_t kIdle = 1'000'000;  // 1 ms
constexpr directory::PageId kFirst = 100;

// The home writes `page` at `now` and, when scheduled, downgrades it.
// Returns the delay it was scheduled with (0: not scheduled).
int64_t WriteAndDowngrade(BackgroundDowngrade& d, directory::PageId page,
                          int64_t now) {
  const int64_t due = d.OnWritable(page, now);
  if (due == 0) return 0;
  REQUIRE(d.Take(page, due));
  d.OnDowngraded(page);
  return due - now;
}

TEST_CASE("BackgroundDowngrade: only pages a remote read downgraded") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  CHECK(d.OnWritable(kFirst + 1, 0) == 0);  // never read elsewhere
  d.OnReadDowngrade(kFirst + 1);
  CHECK(d.OnWritable(kFirst + 1, 5) == 5 + kIdle);
  // Not homed here: ignored.
  d.OnReadDowngrade(kFirst + 10);
  CHECK(d.OnWritable(kFirst + 10, 0) == 0);
  d.OnReadDowngrade(kFirst - 1);
  CHECK(d.OnWritable(kFirst - 1, 0) == 0);
}

TEST_CASE("BackgroundDowngrade: off schedules nothing") {
  BackgroundDowngrade d(kFirst, 10, 0);
  CHECK_FALSE(d.enabled());
  d.OnReadDowngrade(kFirst);
  CHECK(d.OnWritable(kFirst, 0) == 0);
}

TEST_CASE("BackgroundDowngrade: wasted downgrades back off, then give up") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  const directory::PageId p = kFirst + 3;
  d.OnReadDowngrade(p);
  int64_t now = 0;
  CHECK(WriteAndDowngrade(d, p, now) == kIdle);
  // Each local write after a background downgrade, with no read between,
  // wastes it: the next waits twice as long.
  for (int k = 1; k < BackgroundDowngrade::kMaxBackoff; ++k) {
    now += 100 * kIdle;
    CHECK(WriteAndDowngrade(d, p, now) == (kIdle << k));
  }
  now += 100 * kIdle;
  CHECK(d.OnWritable(p, now) == 0);  // given up
  CHECK(d.wasted() == BackgroundDowngrade::kMaxBackoff);
  CHECK(d.downgrades() == BackgroundDowngrade::kMaxBackoff);
  // A remote read that had to downgrade it again brings it back.
  d.OnReadDowngrade(p);
  CHECK(d.OnWritable(p, now) == now + (kIdle << 5));
}

TEST_CASE("BackgroundDowngrade: a read served from the Shared copy counts") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  const directory::PageId p = kFirst;
  d.OnReadDowngrade(p);
  CHECK(WriteAndDowngrade(d, p, 0) == kIdle);
  d.OnServed(p);  // useful: the read found it Shared
  CHECK(d.useful() == 1);
  CHECK(WriteAndDowngrade(d, p, 10 * kIdle) == kIdle);  // not wasted
  CHECK(WriteAndDowngrade(d, p, 20 * kIdle) == 2 * kIdle);  // one wasted
  d.OnServed(p);
  CHECK(d.useful() == 2);
  // A useful one does not shorten the wait a wasted one set.
  CHECK(WriteAndDowngrade(d, p, 30 * kIdle) == 2 * kIdle);
  // Served again without a downgrade in between: not counted twice.
  d.OnServed(p);
  d.OnServed(p);
  CHECK(d.useful() == 3);
}

TEST_CASE("BackgroundDowngrade: a later write supersedes the schedule") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  const directory::PageId p = kFirst + 9;
  d.OnReadDowngrade(p);
  const int64_t first = d.OnWritable(p, 0);
  // A reader downgraded it and the home wrote again before `first` came.
  d.OnReadDowngrade(p);
  const int64_t second = d.OnWritable(p, kIdle / 2);
  REQUIRE(second > first);
  CHECK_FALSE(d.Take(p, first));
  CHECK(d.Take(p, second));
  CHECK_FALSE(d.Take(p, second));  // consumed
}

}  // namespace
}  // namespace ssihv::pager::dsm
