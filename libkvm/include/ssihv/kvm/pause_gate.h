// PauseGate: holds vCPU threads outside KVM_RUN while the VM is paused
// (ssihv-vmm's POST /vm/pause). The controller closes the gate and kicks
// the vCPUs; each vCPU thread, at the head of its run loop, finds the gate
// closed and waits in Hold() until it opens again (or the VM stops). The
// controller can wait, with a deadline, until every vCPU is held.
//
// No KVM here: the run loop (run_loop.h) and VcpuThreads use it, and it is
// tested on its own. A vCPU thread holds the gate's mutex only to count
// itself and to sleep on the condition variable, never across KVM_RUN.
#ifndef SSIHV_KVM_PAUSE_GATE_H_
#define SSIHV_KVM_PAUSE_GATE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "absl/time/time.h"

namespace ssihv::kvm {

class PauseGate {
 public:
  /// Pause: vCPUs that reach Hold() from now on wait there. The store is
  /// sequentially consistent: a kick after Close() pairs with the vCPU's
  /// fence after clearing immediate_exit, so it cannot miss the closing.
  void Close();
  /// Resume: every vCPU waiting in Hold() returns.
  void Open();
  bool closed() const { return closed_.load(std::memory_order_seq_cst); }

  /// vCPU side: waits while the gate is closed and `stop()` is false.
  /// Returns at once when the gate is open.
  void Hold(const std::function<bool()>& stop);
  /// Wakes Hold() (to re-check `stop`) and WaitUntil() (to re-check its
  /// condition). Call after changing what either looks at.
  void Notify();
  /// Controller side: waits until `done()` is true or `deadline` passes;
  /// returns done(). `done` runs under the gate's mutex and must only read
  /// atomics.
  bool WaitUntil(const std::function<bool()>& done, absl::Time deadline);

  /// vCPUs inside Hold() now.
  uint32_t held() const { return held_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> closed_{false};
  std::atomic<uint32_t> held_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_PAUSE_GATE_H_
