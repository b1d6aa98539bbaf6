// The linearizability checker of the DSM stress's history mode, on
// hand-made histories that are and are not linearizable, and against an
// exhaustive search on random small histories.
#include "history.h"

#include <catch2/catch.hpp>
#include <random>

namespace ssihv::dsm_stress {
namespace {

constexpr int64_t kPending = RegisterOp::kPending;

RegisterOp W(uint64_t v, int64_t s, int64_t e, uint32_t reg = 0) {
  return {.kind = RegisterOp::kWrite,
          .reg = reg,
          .value = v,
          .start_ns = s,
          .end_ns = e};
}
RegisterOp R(uint64_t v, int64_t s, int64_t e, uint32_t reg = 0) {
  return {.kind = RegisterOp::kRead,
          .reg = reg,
          .value = v,
          .start_ns = s,
          .end_ns = e,
          .process = 257};
}

bool Ok(const std::vector<RegisterOp>& ops) {
  const bool fast = CheckLinearizable(ops).linearizable();
  const bool slow = LinearizableBySearch(ops);
  CHECK(fast == slow);  // every hand-made case also checks the two agree
  return fast;
}

TEST_CASE("History: sequential and concurrent histories are linearizable") {
  CHECK(Ok({}));
  CHECK(Ok({R(0, 0, 1)}));
  CHECK(Ok({W(1, 0, 10), R(1, 20, 30), W(2, 40, 50), R(2, 60, 70)}));
  // A read concurrent with a write may return the old or the new value.
  CHECK(Ok({W(1, 0, 10), W(2, 20, 30), R(1, 25, 35)}));
  CHECK(Ok({W(1, 0, 10), W(2, 20, 30), R(2, 25, 35)}));
  CHECK(Ok({W(1, 0, 10), R(0, 5, 6)}));  // the initial value, concurrently
  // Two concurrent writes, read in either order by later reads... once.
  CHECK(Ok({W(1, 0, 10), W(2, 0, 10), R(1, 20, 30), R(1, 40, 50)}));
  CHECK(Ok({W(1, 0, 10), W(2, 0, 10), R(2, 20, 30), R(2, 40, 50)}));
  // Touching intervals are concurrent.
  CHECK(Ok({W(1, 0, 10), W(2, 10, 20), R(1, 20, 30)}));
}

TEST_CASE("History: a stale read is not linearizable") {
  // 2 overwrote 1 before the read started.
  const std::vector<RegisterOp> stale = {W(1, 0, 10), W(2, 20, 30),
                                         R(1, 40, 50)};
  CHECK_FALSE(Ok(stale));
  HistoryCheck c = CheckLinearizable(stale);
  REQUIRE(c.violations.size() == 1);
  CHECK(c.violations[0].find("stale value 0x1") != std::string::npos);
  CHECK(c.registers == 1);
  CHECK(c.reads == 1);
  CHECK(c.writes == 2);
  // The initial value after a write completed.
  CHECK_FALSE(Ok({W(1, 0, 10), R(0, 20, 30)}));
  // Stale after a read of the newer value: new-old inversion.
  CHECK_FALSE(Ok({W(1, 0, 10), W(2, 20, 100), R(2, 30, 40), R(1, 50, 60)}));
  HistoryCheck inv = CheckLinearizable(
      {W(1, 0, 10), W(2, 20, 100), R(2, 30, 40), R(1, 50, 60)});
  REQUIRE(inv.violation_count >= 1);
  // Two concurrent writes read in both orders by sequential reads.
  CHECK_FALSE(
      Ok({W(1, 0, 10), W(2, 0, 10), R(1, 20, 30), R(2, 40, 50), R(1, 60, 70)}));
}

TEST_CASE("History: reads of unknown or future values are not linearizable") {
  HistoryCheck c = CheckLinearizable({W(1, 0, 10), R(7, 20, 30)});
  REQUIRE(c.violations.size() == 1);
  CHECK(c.violations[0].find("no write stored") != std::string::npos);
  CHECK_FALSE(LinearizableBySearch({W(1, 0, 10), R(7, 20, 30)}));
  // The read ended before the write started.
  HistoryCheck f = CheckLinearizable({R(1, 0, 10), W(1, 20, 30)});
  REQUIRE(f.violation_count >= 1);
  CHECK(f.violations[0].find("started after the read ended") !=
        std::string::npos);
  CHECK_FALSE(Ok({R(1, 0, 10), W(1, 20, 30)}));
  // Values must be unique.
  CHECK_FALSE(CheckLinearizable({W(1, 0, 10), W(1, 20, 30)}).linearizable());
}

TEST_CASE("History: writes that never returned") {
  // Read by someone: it took effect.
  CHECK(Ok({W(1, 0, 10), W(2, 20, kPending), R(2, 30, 40)}));
  // ... so an older value after that is stale.
  CHECK_FALSE(
      Ok({W(1, 0, 10), W(2, 20, kPending), R(2, 30, 40), R(1, 50, 60)}));
  // Never read: it may never have happened.
  CHECK(Ok({W(1, 0, 10), W(2, 20, kPending), R(1, 50, 60)}));
  HistoryCheck c =
      CheckLinearizable({W(1, 0, 10), W(2, 20, kPending), R(1, 50, 60)});
  CHECK(c.pending_writes == 1);
}

TEST_CASE("History: registers are checked separately") {
  HistoryCheck c = CheckLinearizable(
      {W(1, 0, 10, 0), W(2, 20, 30, 0), R(2, 40, 50, 0),  // fine
       W(1, 0, 10, 1), W(2, 20, 30, 1), R(1, 40, 50, 1),  // stale
       R(0, 0, 5, 2)});
  CHECK(c.registers == 3);
  CHECK(c.violation_count == 1);
  REQUIRE(c.violations.size() == 1);
  CHECK(c.violations[0].rfind("register 1:", 0) == 0);
}

// Random single-register histories of up to 7 operations: half built around
// a real linearization (so many are linearizable), half with random read
// values; both checkers must agree on every one.
TEST_CASE("History: the zone check agrees with exhaustive search") {
  std::mt19937_64 rng(12345);
  int linearizable = 0, not_linearizable = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    const int n = 1 + static_cast<int>(rng() % 7);
    const bool honest = (iter % 2) == 0;
    std::vector<RegisterOp> ops;
    uint64_t current = 0, next_value = 1;
    int64_t point = 0;
    for (int i = 0; i < n; ++i) {
      point += 1 + static_cast<int64_t>(rng() % 10);
      const int64_t s = point - static_cast<int64_t>(rng() % 25);
      const int64_t e = point + static_cast<int64_t>(rng() % 25);
      if (rng() % 2 == 0) {
        current = next_value++;
        ops.push_back(W(current, s, (rng() % 8 == 0) ? kPending : e));
      } else {
        const uint64_t v = honest ? current : rng() % (next_value + 1);
        ops.push_back(R(v, s, e));
      }
    }
    const bool fast = CheckLinearizable(ops).linearizable();
    const bool slow = LinearizableBySearch(ops);
    INFO("iteration " << iter);
    for (const RegisterOp& op : ops) UNSCOPED_INFO(DescribeOp(op));
    REQUIRE(fast == slow);
    (fast ? linearizable : not_linearizable)++;
  }
  // Both verdicts are well represented: the comparison means something.
  CHECK(linearizable > 5000);
  CHECK(not_linearizable > 2000);
}

// A stress run logs millions of operations: the check must stay
// O(n log n) with many forward zones (each value read after its write
// ended) and many backward ones (values never read) in one register.
TEST_CASE("History: a history of 900,000 operations on one register") {
  std::vector<RegisterOp> ops;
  for (int64_t i = 0; i < 300000; ++i) {
    const int64_t t = 100 * i;
    ops.push_back(W(2 * i + 1, t, t + 5));  // forward: read after it
    ops.push_back(R(2 * i + 1, t + 6, t + 7));
    ops.push_back(W(2 * i + 2, t + 50, t + 60));  // backward: never read
  }
  HistoryCheck ok = CheckLinearizable(ops);
  CHECK(ok.linearizable());
  CHECK(ok.writes == 600000);
  // One stale read at the end: the value of the first write.
  ops.push_back(R(1, 100 * 300000, 100 * 300000 + 1));
  HistoryCheck bad = CheckLinearizable(ops);
  CHECK(bad.violation_count >= 1);
}

}  // namespace
}  // namespace ssihv::dsm_stress
