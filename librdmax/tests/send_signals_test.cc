// Selective signalling of SENDs (src/rdma/send_signals.h): which SEND asks
// for a completion, which slots a completion frees, and that a sender with a
// fixed pool of slots never waits for a completion that will not come.
#include "rdma/send_signals.h"

#include <catch2/catch.hpp>
#include <deque>
#include <random>
#include <set>
#include <vector>

namespace ssihv::rdmax {
namespace {

TEST_CASE("send signals: one SEND in N asks for a completion", "[signals]") {
  SendSignals s(4);
  std::vector<bool> signaled;
  for (uint32_t slot = 0; slot < 12; ++slot) {
    const bool sig = s.ShouldSignal(/*free_slots=*/50, /*must=*/false);
    s.Posted(slot, sig);
    signaled.push_back(sig);
  }
  CHECK(signaled == std::vector<bool>{false, false, false, true, false, false,
                                      false, true, false, false, false, true});
  CHECK(s.unreaped() == 12);
}

TEST_CASE("send signals: short of slots or forced, every SEND asks",
          "[signals]") {
  SendSignals s(4);
  CHECK_FALSE(s.ShouldSignal(4, false));
  CHECK(s.ShouldSignal(3, false));
  CHECK(s.ShouldSignal(0, false));
  CHECK(s.ShouldSignal(100, true));
  // A forced SEND restarts the count.
  s.Posted(0, false);
  s.Posted(1, false);
  s.Posted(2, true);
  CHECK_FALSE(s.ShouldSignal(100, false));
  // Zero means every SEND.
  SendSignals every(0);
  CHECK(every.ShouldSignal(100, false));
}

TEST_CASE("send signals: a completion frees its SEND and the ones before it",
          "[signals]") {
  SendSignals s(3);
  for (uint32_t slot : {7u, 3u, 5u, 1u, 9u}) s.Posted(slot, false);
  std::vector<uint32_t> freed;
  CHECK(s.Completed(5, &freed) == 3);
  CHECK(freed == std::vector<uint32_t>{7, 3, 5});
  CHECK(s.unreaped() == 2);
  // A flushed SEND reports even unsignaled: each frees only itself.
  freed.clear();
  CHECK(s.Completed(1, &freed) == 1);
  CHECK(s.Completed(9, &freed) == 1);
  CHECK(freed == std::vector<uint32_t>{1, 9});
  CHECK(s.unreaped() == 0);
}

// A sender with `depth` slots against a model send queue that completes
// work requests in posting order, at random moments, and reports only the
// signaled ones (all of them once the QP is flushed). Checks that slots are
// neither lost nor freed twice, and that a sender out of slots always has a
// signaled SEND outstanding (else it would wait forever).
TEST_CASE("send signals: a sender never starves, slots are conserved",
          "[signals]") {
  for (uint32_t depth : {8u, 16u, 64u}) {
    for (uint32_t seed = 1; seed <= 50; ++seed) {
      std::mt19937 rng(seed * 977 + depth);
      SendSignals s((depth - 4) / 4);
      std::vector<uint32_t> free_slots;
      for (uint32_t i = 0; i < depth; ++i) free_slots.push_back(i);
      struct Wr {
        uint32_t slot;
        bool signaled;
        bool done;  // the device finished it (reported if signaled)
      };
      std::deque<Wr> queue;  // posted, not yet polled
      uint64_t sends = 0, signaled_sends = 0;
      for (int step = 0; step < 4000; ++step) {
        const int what = static_cast<int>(rng() % 3);
        if (what == 0 && !free_slots.empty()) {
          const uint32_t slot = free_slots.back();
          free_slots.pop_back();
          const bool sig = s.ShouldSignal(free_slots.size(), false);
          s.Posted(slot, sig);
          queue.push_back({slot, sig, false});
          ++sends;
          signaled_sends += sig;
        } else if (what == 1) {
          // The device completes the oldest unfinished work request.
          for (Wr& w : queue) {
            if (!w.done) {
              w.done = true;
              break;
            }
          }
        } else {
          // The poller takes completions: the finished prefix, reporting
          // the signaled ones.
          while (!queue.empty() && queue.front().done) {
            const Wr w = queue.front();
            queue.pop_front();
            if (w.signaled) s.Completed(w.slot, &free_slots);
          }
        }
        if (free_slots.empty()) {
          bool signaled_ahead = false;
          for (const Wr& w : queue) signaled_ahead |= w.signaled;
          INFO("depth " << depth << " seed " << seed << " step " << step);
          REQUIRE(signaled_ahead);
        }
        REQUIRE(free_slots.size() + s.unreaped() == depth);
      }
      // Teardown: a signaled drain SEND (slot `depth`) behind the rest, then
      // the flush: every work request not yet polled reports, in order.
      s.Posted(depth, true);
      queue.push_back({depth, true, false});
      for (const Wr& w : queue) s.Completed(w.slot, &free_slots);
      REQUIRE(s.unreaped() == 0);
      REQUIRE(free_slots.back() == depth);
      free_slots.pop_back();
      std::set<uint32_t> distinct(free_slots.begin(), free_slots.end());
      REQUIRE(distinct.size() == depth);
      REQUIRE(free_slots.size() == depth);
      CHECK(signaled_sends <= sends);
    }
  }
}

// The remote fault's pattern: a SEND, its completion, the next SEND. The
// pool never runs short, so one SEND in `signal_every` is signaled.
TEST_CASE("send signals: a steady stream asks for one completion in N",
          "[signals]") {
  const uint32_t depth = 64, every = (depth - 4) / 4;
  SendSignals s(every);
  std::vector<uint32_t> free_slots;
  for (uint32_t i = 0; i < depth; ++i) free_slots.push_back(i);
  uint32_t signaled_sends = 0;
  for (uint32_t n = 0; n < 15 * 100; ++n) {
    const uint32_t slot = free_slots.back();
    free_slots.pop_back();
    const bool sig = s.ShouldSignal(free_slots.size(), false);
    s.Posted(slot, sig);
    if (sig) {
      ++signaled_sends;
      CHECK(s.Completed(slot, &free_slots) == every);
    }
    REQUIRE(free_slots.size() + every > depth);
  }
  CHECK(signaled_sends == 100);
}

}  // namespace
}  // namespace ssihv::rdmax
