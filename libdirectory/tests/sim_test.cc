// The simulator as a test: modest seed ranges and the small exhaustive
// configurations find no violation, runs are deterministic, and every
// deliberately injected protocol bug is caught.
#include "ssihv/directory/sim.h"

#include <catch2/catch.hpp>

namespace ssihv::directory::sim {
namespace {

// The sanitizer build (Debug, ~25x slower) runs fewer seeds and explores
// smaller configurations; the release build runs the required ones.
#if SSIHV_DIRECTORY_SANITIZED
constexpr bool kSanitized = true;
constexpr uint64_t kSeeds = 40;
#else
constexpr bool kSanitized = false;
constexpr uint64_t kSeeds = 300;
#endif

Config Base(uint32_t nodes) {
  Config c;
  c.nodes = nodes;
  c.pages = 5;
  c.ops = 12;
  return c;
}

void RunRange(Config c) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    c.nodes = 2 + static_cast<uint32_t>(seed % 4);
    RunResult r = RunSeed(c, seed);
    INFO("seed " << seed << " nodes " << c.nodes << ": "
                 << r.violation.invariant << ": " << r.violation.detail << "\n"
                 << r.violation.trace);
    REQUIRE(r.ok);
    CHECK(r.reads + r.writes + r.lost_ops <=
          uint64_t{c.ops} * c.nodes * c.threads);
  }
}

TEST_CASE("random seeds find no violation") {
  Config c = Base(2);
  SECTION("in-order delivery") {}
  SECTION("reordered") { c.reorder = true; }
  SECTION("reordered, dropped and retransmitted, pulled") {
    c.reorder = c.drop = c.pull = true;
  }
  SECTION("with crashes") { c.reorder = c.drop = c.crash = true; }
  SECTION("two threads per node, crashes, pulls") {
    c.reorder = c.crash = c.pull = true;
    c.threads = 2;
  }
  SECTION("requests on lanes, crashes, run grants") {
    c.reorder = c.drop = c.crash = c.request_lanes = true;
    c.run_pages = 3;
  }
  SECTION("requests and answers on lanes, crashes, run grants, pulls") {
    c.reorder = c.drop = c.crash = c.pull = true;
    c.request_lanes = c.answer_lanes = true;
    c.run_pages = 3;
  }
  SECTION("run grants, every fault") {
    c.reorder = c.drop = c.crash = true;
    c.run_pages = 3;
  }
  SECTION("run grants, two threads per node, crashes") {
    c.reorder = c.crash = true;
    c.threads = 2;
    c.run_pages = 4;
  }
  RunRange(c);
}

TEST_CASE("run grants happen in the random runs") {
  Config c = Base(2);
  c.pages = 8;
  c.reorder = true;
  c.run_pages = 4;
  c.write_percent = 20;
  uint64_t granted = 0, runs = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    RunResult r = RunSeed(c, seed);
    REQUIRE(r.ok);
    granted += r.totals.run_pages_granted;
    runs += r.totals.run_grants;
  }
  CHECK(runs > 0);
  CHECK(granted > runs);  // some runs carry more than one page
}

TEST_CASE("write runs grant and refuse in the random runs") {
  Config c = Base(2);
  c.pages = 8;
  c.reorder = true;
  c.run_pages = 4;
  c.write_percent = 60;
  uint64_t requests = 0, granted = 0, refused = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    RunResult r = RunSeed(c, seed);
    REQUIRE(r.ok);
    requests += r.totals.write_run_requests;
    granted += r.totals.write_run_pages_granted;
    refused += r.totals.write_run_pages_refused;
  }
  CHECK(requests > 0);
  CHECK(granted > requests);  // some runs carry more than one page
  CHECK(refused > 0);
}

TEST_CASE("exhaustive exploration with run grants finds no violation") {
  Config c;
  c.nodes = 2;
  c.pages = 4;
  c.ops = kSanitized ? 1 : 2;
  c.run_pages = 2;
  ExploreResult r = Explore(c, 5'000'000);
  INFO(r.violation.invariant << ": " << r.violation.detail << "\n"
                             << r.violation.trace);
  REQUIRE(r.ok);
  CHECK(!r.truncated);
}

// True if one of seeds 1-300 of a 2-node run with runs of 4 pages, `bug`
// injected, ends in a violation of `invariant`.
bool RunBugCaughtAs(TestBug bug, uint32_t write_percent,
                    const std::string& invariant) {
  Config c = Base(2);
  c.pages = 8;
  c.run_pages = 4;
  c.write_percent = write_percent;
  c.bug = bug;
  c.downgrade = bug == TestBug::kDowngradeSkipProtect;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    RunResult r = RunSeed(c, seed);
    if (!r.ok && r.violation.invariant == invariant) return true;
  }
  return false;
}

TEST_CASE("a run grant that skips the downgrade is caught") {
  CHECK(RunBugCaughtAs(TestBug::kRunSkipDowngrade, 50, "swmr"));
}

TEST_CASE("a write run of a page its home wrote is caught") {
  CHECK(RunBugCaughtAs(TestBug::kWriteRunNotPristine, 60, "data-value"));
}

TEST_CASE(
    "background downgrades: no violation, and one that stays "
    "writable is caught") {
  Config c = Base(2);
  c.reorder = c.drop = c.crash = true;
  c.downgrade = true;
  RunRange(c);
  Config e;
  e.nodes = 2;
  e.pages = 2;
  e.ops = kSanitized ? 1 : 2;
  e.downgrade = true;
  ExploreResult x = Explore(e, 5'000'000);
  INFO(x.violation.invariant << ": " << x.violation.detail << "\n"
                             << x.violation.trace);
  REQUIRE(x.ok);
  CHECK(!x.truncated);
  CHECK(RunBugCaughtAs(TestBug::kDowngradeSkipProtect, 50, "swmr"));
}

TEST_CASE("crash runs really crash and lose pages") {
  Config c = Base(3);
  c.reorder = c.crash = true;
  uint64_t crashes = 0, lost = 0, flushes = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    RunResult r = RunSeed(c, seed);
    REQUIRE(r.ok);
    crashes += r.crashes;
    lost += r.lost_ops;
    flushes += r.totals.sent[static_cast<int>(MsgType::kFlush)];
  }
  CHECK(crashes > kSeeds / 4);
  CHECK(lost > 0);
  CHECK(flushes > 0);
}

TEST_CASE("a seed always means the same execution") {
  Config c = Base(4);
  c.reorder = c.drop = c.crash = c.pull = true;
  RunResult a = RunSeed(c, 77);
  RunResult b = RunSeed(c, 77);
  CHECK(a.steps == b.steps);
  CHECK(a.reads == b.reads);
  CHECK(a.totals.sent == b.totals.sent);
  CHECK(a.crashes == b.crashes);
  RunResult other = RunSeed(c, 78);
  CHECK((other.steps != a.steps || other.totals.sent != a.totals.sent));
  // A failing run's trace is reproducible too.
  c.bug = TestBug::kSkipInvalidation;
  c.crash = false;
  RunResult fa = RunSeed(c, 5), fb = RunSeed(c, 5);
  REQUIRE_FALSE(fa.ok);
  CHECK(fa.violation.trace == fb.violation.trace);
  CHECK(fa.violation.detail == fb.violation.detail);
  CHECK_FALSE(fa.violation.trace.empty());
}

TEST_CASE("exhaustive: 2 nodes x 2 pages x 3 operations") {
  Config c;
  c.nodes = 2;
  c.pages = 2;
  c.ops = kSanitized ? 2 : 3;
  ExploreResult r = Explore(c, 5'000'000);
  INFO(r.violation.invariant << ": " << r.violation.detail << "\n"
                             << r.violation.trace);
  REQUIRE(r.ok);
  CHECK_FALSE(r.truncated);
  CHECK(r.states > (kSanitized ? 1000 : 10000));
  CHECK(r.terminal > 0);
}

// Explores `c` without and with `lanes` switched on: both clean, and the
// lanes add interleavings (more states), none of them a violation.
void CheckLanesAddStates(Config c, bool Config::*lanes) {
  const ExploreResult without = Explore(c, 5'000'000);
  c.*lanes = true;
  const ExploreResult with = Explore(c, 5'000'000);
  INFO(with.violation.invariant << ": " << with.violation.detail << "\n"
                                << with.violation.trace);
  REQUIRE(without.ok);
  REQUIRE(with.ok);
  CHECK_FALSE(with.truncated);
  CHECK(with.states > without.states);
}

// Request lanes: requests on channels of their own per pair that
// overtakes (and is overtaken by) everything else on the pair until the
// sender learns of a death. More interleavings than FIFO pairs, none of
// them a violation, with and without crashes.
TEST_CASE("exhaustive: requests on lanes, 2 nodes x 2 pages") {
  Config c;
  c.nodes = 2;
  c.pages = 2;
  c.ops = kSanitized ? 2 : 3;
  SECTION("failure-free") {}
  SECTION("with crashes") { c.crash = true; }
  CheckLanesAddStates(c, &Config::request_lanes);
}

// Answer lanes: the home's answers leave on lanes too, and the pair's
// channel waits for the answers sent before it. With requests on lanes
// as well, with and without crashes (run grants: the seeded section).
TEST_CASE("exhaustive: answers on lanes, 2 nodes x 2 pages") {
  Config c;
  c.nodes = 2;
  c.pages = 2;
  c.ops = kSanitized ? 2 : 3;
  c.request_lanes = true;
  SECTION("failure-free") {}
  SECTION("with crashes") { c.crash = true; }
  CheckLanesAddStates(c, &Config::answer_lanes);
}

// Without the wait, an Inv on the pair's channel overtakes the home's
// NoDone answer on a lane: the sharer is invalidated before it holds the
// page, a protocol error (docs/PROTOCOL.md, "Answers on lanes").
TEST_CASE("the checker catches answers on lanes overtaken by the channel") {
  Config c;
  c.nodes = 2;
  c.pages = 2;
  c.ops = 3;
  REQUIRE(ParseBug("answers-unordered", &c).ok());
  CHECK(c.answer_lanes);
  ExploreResult r = Explore(c, 5'000'000);
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.invariant == "protocol-error");
  Config random = Base(4);
  random.reorder = true;
  random.answer_lanes = random.driver_answers_unordered = true;
  bool caught = false;
  for (uint64_t seed = 1; seed <= 200 && !caught; ++seed) {
    caught = !RunSeed(random, seed).ok;
  }
  CHECK(caught);
}

TEST_CASE("exhaustive: 3 nodes x 1 page x 2 operations") {
  Config c;
  c.nodes = 3;
  c.pages = 1;
  c.ops = kSanitized ? 1 : 2;
  c.pull = true;
  ExploreResult r = Explore(c, 5'000'000);
  INFO(r.violation.invariant << ": " << r.violation.detail << "\n"
                             << r.violation.trace);
  REQUIRE(r.ok);
  CHECK_FALSE(r.truncated);
  CHECK(r.states > (kSanitized ? 100 : 10000));
}

TEST_CASE("the checker catches each injected protocol bug") {
  auto caught_random = [](TestBug bug) -> std::string {
    Config c = Base(3);
    c.reorder = true;
    c.bug = bug;
    for (uint64_t seed = 1; seed <= 200; ++seed) {
      RunResult r = RunSeed(c, seed);
      if (!r.ok) return r.violation.invariant;
    }
    return "";
  };
  auto caught_exhaustive = [](TestBug bug) -> std::string {
    Config c;
    c.nodes = 3;
    c.pages = 1;
    c.ops = kSanitized ? 1 : 2;
    c.bug = bug;
    ExploreResult r = Explore(c, 5'000'000);
    return r.ok ? "" : r.violation.invariant;
  };
  // Skipping an invalidation leaves a stale reader; skipping the downgrade
  // leaves a writer beside a reader: both break single-writer.
  CHECK(caught_random(TestBug::kSkipInvalidation) == "swmr");
  CHECK(caught_exhaustive(TestBug::kSkipInvalidation) == "swmr");
  CHECK(caught_random(TestBug::kSkipDowngrade) == "swmr");
  CHECK(caught_exhaustive(TestBug::kSkipDowngrade) == "swmr");
  // Not waiting for kDone lets a forward overtake the data it depends on.
  CHECK_FALSE(caught_random(TestBug::kEarlyUnblock).empty());
  CHECK_FALSE(caught_exhaustive(TestBug::kEarlyUnblock).empty());
}

TEST_CASE("the checker catches a driver that sends before its local effects") {
  // node.h: a call's messages leave only after its local effects. A driver
  // that lets a transferred page out before dropping its own copy leaves a
  // readable stale copy beside the new writer.
  Config c;
  c.nodes = 2;
  c.pages = 1;
  c.ops = 2;
  c.driver_early_send = true;
  ExploreResult r = Explore(c, 5'000'000);
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.invariant == "swmr");
  Config random = Base(3);
  random.driver_early_send = true;
  bool caught = false;
  for (uint64_t seed = 1; seed <= 100 && !caught; ++seed) {
    caught = !RunSeed(random, seed).ok;
  }
  CHECK(caught);
}

TEST_CASE("fault and bug names parse") {
  Config c;
  REQUIRE(ParseFaults("reorder,drop,crash", &c).ok());
  CHECK((c.reorder && c.drop && c.crash));
  REQUIRE(ParseFaults("none", &c).ok());
  CHECK_FALSE((c.reorder || c.drop || c.crash));
  CHECK_FALSE(ParseFaults("reorder,flood", &c).ok());
  REQUIRE(ParseBug("skip-downgrade", &c).ok());
  CHECK(c.bug == TestBug::kSkipDowngrade);
  REQUIRE(ParseBug("driver-early-send", &c).ok());
  CHECK(c.bug == TestBug::kNone);
  CHECK(c.driver_early_send);
  CHECK_FALSE(ParseBug("typo", &c).ok());
}

}  // namespace
}  // namespace ssihv::directory::sim
