// Background downgrade's policy (dsm/downgrade.h): which pages qualify,
// the evidence a page needs before it is scheduled, what a useful or wasted
// downgrade does, and that a later schedule supersedes an earlier one.
#include "dsm/downgrade.h"

#include <catch2/catch.hpp>
#include <cstdint>

namespace ssihv::pager::dsm {
namespace {

constexpr int64_t kIdle = 1'000'000;  // 1 ms
constexpr directory::PageId kFirst = 100;

// One round of the pattern: the home writes `page` at `now` (an upgrade),
// and a remote read comes `gap` later (the home downgrades it for the
// reader). Returns the scheduled time of the upgrade (0: none).
int64_t WriteThenRead(BackgroundDowngrade& d, directory::PageId page,
                      int64_t& now, int64_t gap) {
  const int64_t due = d.OnWritable(page, now);
  now += gap;
  d.OnReadDowngrade(page, now);
  return due;
}

// A page with the evidence it needs: read once (a candidate), then
// kEvidenceNeeded times the delay after the home's write.
void MakeEvident(BackgroundDowngrade& d, directory::PageId page, int64_t& now) {
  d.OnReadDowngrade(page, now);
  for (int i = 0; i < BackgroundDowngrade::kEvidenceNeeded; ++i) {
    REQUIRE(WriteThenRead(d, page, now, 2 * kIdle) == 0);
  }
}

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

TEST_CASE("BackgroundDowngrade: only pages read long enough after writes") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  int64_t now = 0;
  CHECK(d.OnWritable(kFirst + 1, now) == 0);  // never read elsewhere
  d.OnReadDowngrade(kFirst + 1, now);         // a candidate now
  // Reads that come sooner than the delay after the write are no evidence.
  for (int i = 0; i < 5; ++i) {
    CHECK(WriteThenRead(d, kFirst + 1, now, kIdle / 2) == 0);
  }
  // Two that come later are.
  CHECK(WriteThenRead(d, kFirst + 1, now, kIdle) == 0);
  CHECK(WriteThenRead(d, kFirst + 1, now, 3 * kIdle) == 0);
  CHECK(d.OnWritable(kFirst + 1, now) == now + kIdle);
  // Not homed here: ignored.
  int64_t t = 0;
  MakeEvident(d, kFirst + 10, t);
  CHECK(d.OnWritable(kFirst + 10, t) == 0);
  MakeEvident(d, kFirst - 1, t);
  CHECK(d.OnWritable(kFirst - 1, t) == 0);
}

TEST_CASE("BackgroundDowngrade: off schedules nothing") {
  BackgroundDowngrade d(kFirst, 10, 0);
  CHECK_FALSE(d.enabled());
  int64_t now = 0;
  MakeEvident(d, kFirst, now);
  CHECK(d.OnWritable(kFirst, now) == 0);
}

TEST_CASE("BackgroundDowngrade: a wasted downgrade needs new evidence") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  const directory::PageId p = kFirst + 3;
  int64_t now = 0;
  MakeEvident(d, p, now);
  CHECK(WriteAndDowngrade(d, p, now) == kIdle);
  // The home's next write undoes it: wasted; not scheduled again until two
  // reads have come late enough after writes, now twice the delay.
  now += 100 * kIdle;
  CHECK(d.OnWritable(p, now) == 0);
  CHECK(d.wasted() == 1);
  d.OnReadDowngrade(p, now + kIdle);  // too soon for the doubled delay
  CHECK(WriteThenRead(d, p, now, 2 * kIdle) == 0);
  CHECK(WriteThenRead(d, p, now, 2 * kIdle) == 0);
  CHECK(WriteAndDowngrade(d, p, now) == 2 * kIdle);
}

TEST_CASE("BackgroundDowngrade: six wasted in a row give the page up") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  const directory::PageId p = kFirst;
  int64_t now = 0;
  for (int k = 0; k < BackgroundDowngrade::kMaxBackoff; ++k) {
    INFO("round " << k);
    for (int i = 0; i < BackgroundDowngrade::kEvidenceNeeded; ++i) {
      CHECK(WriteThenRead(d, p, now, 100 * kIdle) == 0);
    }
    if (k == 0) CHECK(WriteThenRead(d, p, now, 100 * kIdle) == 0);
    CHECK(WriteAndDowngrade(d, p, now) == (kIdle << k));
    now += 100 * kIdle;
    CHECK(d.OnWritable(p, now) == 0);  // wasted
  }
  CHECK(d.wasted() == BackgroundDowngrade::kMaxBackoff);
  // Given up: no evidence is gathered.
  CHECK(WriteThenRead(d, p, now, 1000 * kIdle) == 0);
  CHECK(WriteThenRead(d, p, now, 1000 * kIdle) == 0);
  CHECK(WriteThenRead(d, p, now, 1000 * kIdle) == 0);
  // Each read revived it one step (to 32 times the delay), then the reads
  // 1000 delays after the writes were evidence.
  CHECK(WriteAndDowngrade(d, p, now) == (kIdle << 5));
}

TEST_CASE("BackgroundDowngrade: a read served from the Shared copy counts") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  const directory::PageId p = kFirst;
  int64_t now = 0;
  MakeEvident(d, p, now);
  CHECK(WriteAndDowngrade(d, p, now) == kIdle);
  d.OnServed(p);  // useful: the read found it Shared
  CHECK(d.useful() == 1);
  CHECK(WriteAndDowngrade(d, p, now + 10 * kIdle) == kIdle);  // not wasted
  // Served again without a downgrade in between: not counted twice.
  d.OnServed(p);
  d.OnServed(p);
  CHECK(d.useful() == 2);
}

TEST_CASE("BackgroundDowngrade: a later write supersedes the schedule") {
  BackgroundDowngrade d(kFirst, 10, kIdle);
  const directory::PageId p = kFirst + 9;
  int64_t now = 0;
  MakeEvident(d, p, now);
  const int64_t first = d.OnWritable(p, now);
  REQUIRE(first != 0);
  // A reader downgraded it (too soon to count) and the home wrote again
  // before `first` came.
  d.OnReadDowngrade(p, now + kIdle / 4);
  const int64_t second = d.OnWritable(p, now + kIdle / 2);
  REQUIRE(second > first);
  CHECK_FALSE(d.Take(p, first));
  CHECK(d.Take(p, second));
  CHECK_FALSE(d.Take(p, second));  // consumed
}

}  // namespace
}  // namespace ssihv::pager::dsm
