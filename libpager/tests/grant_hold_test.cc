// The adaptive grant hold of the DSM node (src/dsm/grant_hold.h): times are
// arguments, so every case is exact.
#include "dsm/grant_hold.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>

namespace ssihv::pager::dsm {
namespace {

constexpr int64_t kUs = 1000;
constexpr int64_t kMs = 1000 * kUs;

// One round: the page leaves at `t` (for another node's write, or for a
// reader) and comes back `away` later (for a write, or Shared).
void Return(GrantHold& h, uint64_t page, int64_t& t, int64_t away,
            bool taken_for_write, bool granted_write) {
  h.OnTaken(page, t, taken_for_write);
  t += away;
  h.OnGranted(page, t, granted_write);
  t += 10 * kUs;
}

// Writers fighting over the page: a write takes it, a write takes it back.
void Bounce(GrantHold& h, uint64_t page, int64_t& t, int64_t away) {
  Return(h, page, t, away, /*taken_for_write=*/true, /*granted_write=*/true);
}

TEST_CASE("GrantHold: a page never taken keeps the base hold") {
  GrantHold h(20 * kUs, 5 * kMs);
  CHECK(h.HoldNs(7) == 20 * kUs);
  h.OnGranted(7, 1 * kMs, true);  // granted, but never taken from here
  CHECK(h.HoldNs(7) == 20 * kUs);
  CHECK(h.escalations() == 0);
}

TEST_CASE("GrantHold: a bouncing page doubles its hold up to the bound") {
  GrantHold h(20 * kUs, 5 * kMs);
  int64_t t = 100 * kMs;
  int64_t want = 20 * kUs;
  for (int i = 0; i < 20; ++i) {
    Bounce(h, 42, t, 100 * kUs);  // back within 16 holds: a bounce
    want = std::min<int64_t>(want * 2, 20 * kUs << 7);  // powers of two
    // The 4.096 us clock of the slots is finer than every hold here.
    CHECK(h.HoldNs(42) == want);
  }
  CHECK(h.HoldNs(42) == 20 * kUs << 7);  // 2.56 ms: the last doubling <= 5 ms
  CHECK(h.escalations() == 7);
  CHECK(h.HoldNs(43) == 20 * kUs);  // other pages are not affected
}

TEST_CASE("GrantHold: a page that stayed away long falls back to the base") {
  GrantHold h(20 * kUs, 5 * kMs);
  int64_t t = 100 * kMs;
  for (int i = 0; i < 3; ++i) Bounce(h, 9, t, 50 * kUs);
  REQUIRE(h.HoldNs(9) == 160 * kUs);
  Bounce(h, 9, t, 8 * kMs);  // within 10 ms: still a bounce (a round trip
  CHECK(h.HoldNs(9) == 320 * kUs);  // may take that long)
  Bounce(h, 9, t, 200 * kMs);       // between the two windows: unchanged
  CHECK(h.HoldNs(9) == 320 * kUs);
  Bounce(h, 9, t, 1500 * kMs);  // more than 1 s away: calm again
  CHECK(h.HoldNs(9) == 20 * kUs);
}

TEST_CASE("GrantHold: a page a reader takes in turn does not grow its hold") {
  GrantHold h(20 * kUs, 5 * kMs);
  int64_t t = 100 * kMs;
  // The writer of a tick: a reader takes the page (a downgrade), the writer
  // takes it back with an upgrade, 4 ms later, again and again.
  for (int i = 0; i < 20; ++i) Return(h, 3, t, 4 * kMs, false, true);
  CHECK(h.HoldNs(3) == 20 * kUs);
  // A reader of it: the writer's upgrade takes its copy, it reads again.
  for (int i = 0; i < 20; ++i) Return(h, 4, t, 100 * kUs, true, false);
  CHECK(h.HoldNs(4) == 20 * kUs);
  CHECK(h.escalations() == 0);
}

TEST_CASE("GrantHold: a grown hold shrinks once readers are involved") {
  GrantHold h(20 * kUs, 5 * kMs);
  int64_t t = 100 * kMs;
  for (int i = 0; i < 4; ++i) Bounce(h, 8, t, 50 * kUs);
  REQUIRE(h.HoldNs(8) == 320 * kUs);
  Return(h, 8, t, 50 * kUs, true, false);  // a write took it, it reads again
  CHECK(h.HoldNs(8) == 160 * kUs);
  Return(h, 8, t, 50 * kUs, false, true);  // a read took it, it writes again
  CHECK(h.HoldNs(8) == 80 * kUs);
  CHECK(h.escalations() == 4);
}

// A reader takes the page at `t`; this node's write fault on it is read
// `fault_after` later (negative: before the take) and the page comes back
// `trip` after the fault.
void ReadTakenWriteBack(GrantHold& h, uint64_t page, int64_t& t,
                        int64_t fault_after, int64_t trip) {
  h.OnTaken(page, t, /*for_write=*/false);
  const int64_t wanted = t + fault_after;
  t = wanted + trip;
  h.OnGranted(page, t, /*write=*/true, wanted);
  t += 10 * kUs;
}

TEST_CASE("GrantHold: a writer interrupted by a reader grows its hold") {
  GrantHold h(20 * kUs, 5 * kMs);
  int64_t t = 100 * kMs;
  // A seqlock writer mid-update: it faults again 5 us after the reader took
  // the page, and the upgrade takes a 1.4 ms round trip (the lab's RDMA).
  ReadTakenWriteBack(h, 6, t, 5 * kUs, 1400 * kUs);
  CHECK(h.HoldNs(6) == 40 * kUs);
  ReadTakenWriteBack(h, 6, t, 300 * kUs, 1400 * kUs);  // < a quarter
  CHECK(h.HoldNs(6) == 80 * kUs);
  // The fault already waiting when the reader's request took the page.
  ReadTakenWriteBack(h, 6, t, -50 * kUs, 1400 * kUs);
  CHECK(h.HoldNs(6) == 160 * kUs);
  CHECK(h.escalations() == 3);
  CHECK(h.interrupted_writes() == 3);
  // The next tick: the writer comes back 4 ms after the readers took the
  // page, much later than half its round trip: the hold halves again.
  ReadTakenWriteBack(h, 6, t, 4 * kMs, 1400 * kUs);
  CHECK(h.HoldNs(6) == 80 * kUs);
  // A starved host's 6 ms round trip does not make a return 1.2 ms after
  // the take an interrupted writer's (a quarter of the trip, but more than
  // kMaxInterruptNs).
  ReadTakenWriteBack(h, 6, t, 1200 * kUs, 6 * kMs);
  CHECK(h.HoldNs(6) == 40 * kUs);
  ReadTakenWriteBack(h, 6, t, 5 * kUs, 1400 * kUs);
  CHECK(h.HoldNs(6) == 80 * kUs);
  // Back-to-back rounds (BM_RemoteTick/tcp): the write comes a round trip
  // after the take (our read's data, then the next command), against a
  // round trip for the upgrade: not an interrupted writer.
  ReadTakenWriteBack(h, 6, t, 35 * kUs, 35 * kUs);
  CHECK(h.HoldNs(6) == 40 * kUs);
  CHECK(h.interrupted_writes() == 4);
}

TEST_CASE("GrantHold: only a write asked for by a fault is a writer's") {
  GrantHold h(20 * kUs, 5 * kMs);
  int64_t t = 100 * kMs;
  for (int i = 0; i < 2; ++i) Bounce(h, 2, t, 50 * kUs);
  REQUIRE(h.HoldNs(2) == 80 * kUs);
  // A Shared grant soon after a reader took the page: a reader's return.
  h.OnTaken(2, t, /*for_write=*/false);
  h.OnGranted(2, t + 100 * kUs, /*write=*/false, t + 1 * kUs);
  CHECK(h.HoldNs(2) == 40 * kUs);
  // A write grant nobody faulted for (a run): no writer to interrupt.
  t += 1 * kMs;
  h.OnTaken(2, t, /*for_write=*/false);
  h.OnGranted(2, t + 100 * kUs, /*write=*/true, /*wanted_ns=*/0);
  CHECK(h.HoldNs(2) == 20 * kUs);
  CHECK(h.interrupted_writes() == 0);
}

TEST_CASE("GrantHold: two pages on one slot: the newer starts from the base") {
  GrantHold h(20 * kUs, 5 * kMs);
  int64_t t = 100 * kMs;
  const uint64_t a = 5, b = 5 + GrantHold::kSlots;
  for (int i = 0; i < 4; ++i) Bounce(h, a, t, 50 * kUs);
  REQUIRE(h.HoldNs(a) == 320 * kUs);
  CHECK(h.HoldNs(b) == 20 * kUs);
  h.OnTaken(b, t, true);  // b takes the slot over
  CHECK(h.HoldNs(a) == 20 * kUs);
  CHECK(h.HoldNs(b) == 20 * kUs);
}

TEST_CASE("GrantHold: a bound below the base is the base") {
  GrantHold h(20 * kUs, 1 * kUs);
  int64_t t = 100 * kMs;
  Bounce(h, 1, t, 1 * kUs);
  CHECK(h.HoldNs(1) == 20 * kUs);
  CHECK(h.escalations() == 0);
}

}  // namespace
}  // namespace ssihv::pager::dsm
