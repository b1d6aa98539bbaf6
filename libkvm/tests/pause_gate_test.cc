// PauseGate without KVM: threads standing in for vCPU loops (the same
// check at the head of each iteration as VcpuRunLoop::Run) are held, stay
// held, and are released by Open() or by a stop.
#include "ssihv/kvm/pause_gate.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "absl/time/clock.h"

namespace ssihv::kvm {
namespace {

// A fake vCPU loop: counts iterations while the gate is open.
struct FakeVcpu {
  std::atomic<uint64_t> iterations{0};
  std::atomic<bool> held{false};
  std::thread thread;
};

class Loops {
 public:
  Loops(PauseGate& gate, int n) : gate_(gate), vcpus_(n) {
    for (FakeVcpu& v : vcpus_) {
      v.thread = std::thread([this, &v] { Run(v); });
    }
  }
  ~Loops() { Stop(); }
  void Stop() {
    stop_ = true;
    gate_.Notify();
    for (FakeVcpu& v : vcpus_) {
      if (v.thread.joinable()) v.thread.join();
    }
  }
  bool AllHeld() const {
    for (const FakeVcpu& v : vcpus_) {
      if (!v.held) return false;
    }
    return true;
  }
  uint64_t Total() const {
    uint64_t t = 0;
    for (const FakeVcpu& v : vcpus_) t += v.iterations;
    return t;
  }
  bool stopped() const { return stop_; }

 private:
  void Run(FakeVcpu& v) {
    while (!stop_) {
      if (gate_.closed()) {
        v.held = true;
        gate_.Hold([this] { return stop_.load(); });
        v.held = false;
        continue;
      }
      ++v.iterations;
      std::this_thread::yield();
    }
  }
  PauseGate& gate_;
  std::vector<FakeVcpu> vcpus_;
  std::atomic<bool> stop_{false};
};

// Polls `cond` until it holds or 10 s pass.
template <typename F>
bool Eventually(F cond) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (cond()) return true;
    std::this_thread::yield();
  }
  return cond();
}

TEST_CASE("PauseGate holds every loop until it opens") {
  PauseGate gate;
  Loops loops(gate, 3);
  REQUIRE(Eventually([&] { return loops.Total() > 100; }));

  gate.Close();
  // The loops' flags go up just before Hold() counts them: wait for both.
  REQUIRE(gate.WaitUntil([&] { return loops.AllHeld() && gate.held() == 3; },
                         absl::Now() + absl::Seconds(10)));
  // Held means not iterating: the count does not move while closed (every
  // loop is asleep in Hold, so two reads agree exactly).
  const uint64_t frozen = loops.Total();
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  CHECK(loops.Total() == frozen);
  CHECK(gate.held() == 3);

  gate.Open();
  CHECK(Eventually([&] { return loops.Total() > frozen + 100; }));
  CHECK(Eventually([&] { return gate.held() == 0; }));
}

TEST_CASE("PauseGate: a stop releases held loops") {
  PauseGate gate;
  Loops loops(gate, 2);
  gate.Close();
  REQUIRE(gate.WaitUntil([&] { return loops.AllHeld() && gate.held() == 2; },
                         absl::Now() + absl::Seconds(10)));
  loops.Stop();  // joins: would hang if Hold() ignored the stop
  CHECK(gate.closed());
  CHECK(gate.held() == 0);
}

TEST_CASE("PauseGate: Hold returns at once when open; WaitUntil times out") {
  PauseGate gate;
  gate.Hold([] { return false; });  // open: must not block
  CHECK(gate.held() == 0);
  gate.Close();
  // Nobody arrives: the wait ends at its deadline with false.
  CHECK_FALSE(gate.WaitUntil([&] { return gate.held() == 1; },
                             absl::Now() + absl::Milliseconds(20)));
  gate.Open();
  CHECK_FALSE(gate.closed());
}

}  // namespace
}  // namespace ssihv::kvm
