// The vCPU run loop: KVM_RUN, then one handler per exit reason, until the
// VM-wide stop latch is set. VcpuThreads runs one loop per vCPU thread and
// stops them cleanly (immediate_exit + a kick signal).
#ifndef SSIHV_KVM_RUN_LOOP_H_
#define SSIHV_KVM_RUN_LOOP_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ssihv/kvm/bus.h"
#include "ssihv/kvm/vcpu.h"

namespace ssihv::kvm {

enum class StopReason {
  kNone,
  kReset,          // the guest asked for a reset (i8042, reset register)
  kPowerOff,       // the guest powered off (ACPI sleep S5)
  kTripleFault,    // KVM_EXIT_SHUTDOWN: what a PC does then is reset
  kHalted,         // HLT reached user space (no in-kernel irqchip)
  kStopRequested,  // the VMM stopped the VM (signal, console escape)
  kError,          // a VMM or KVM failure; see the status
};
const char* StopReasonName(StopReason reason);

struct StopEvent {
  StopReason reason = StopReason::kNone;
  absl::Status status;  // OK unless reason == kError
  int vcpu = -1;        // the vCPU that caused it, -1 for the VMM
};

/// The VM-wide stop request: the first request wins, later ones are kept
/// only in the log. Thread-safe. Listeners must not call back into the latch.
class StopLatch {
 public:
  /// Records the request if it is the first and runs the listeners (once).
  /// Returns whether this call set the latch.
  bool Request(StopReason reason, absl::Status status = absl::OkStatus(),
               int vcpu = -1);
  bool requested() const { return requested_.load(std::memory_order_acquire); }
  StopEvent event() const;
  /// `listener` runs (on the requesting thread) when the latch is set; if it
  /// is already set, it runs now.
  void AddListener(std::function<void()> listener);
  /// Blocks until the latch is set and its listeners have returned.
  void Wait() const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool listeners_done_ = false;
  std::atomic<bool> requested_{false};
  StopEvent event_;
  std::vector<std::function<void()>> listeners_;
};

/// Counters a run loop keeps (read after it returns).
struct RunLoopStats {
  uint64_t exits = 0;
  uint64_t io_exits = 0;
  uint64_t mmio_exits = 0;
  uint64_t signal_exits = 0;
};

/// What KVM_EXIT_FAIL_ENTRY says, in words: the hardware reason decoded for
/// both vendors (SVM_EXIT_ERR, a VMX failed-entry exit reason, a VMX
/// instruction error) and the host CPU. Pure; used by the run loop.
std::string DescribeFailEntry(const kvm_run& run);
/// What KVM_EXIT_INTERNAL_ERROR says, in words: the suberror by name, the
/// instruction bytes KVM could not emulate (when it reports them) and the
/// raw data words. Pure; used by the run loop.
std::string DescribeInternalError(const kvm_run& run);

class VcpuRunLoop {
 public:
  VcpuRunLoop(const Vcpu& vcpu, Bus& pio, Bus& mmio, StopLatch& stop)
      : vcpu_(vcpu), pio_(pio), mmio_(mmio), stop_(stop) {}

  /// Runs the vCPU until the latch is set (by one of its exits or by anyone
  /// else). Every exit that ends the VM sets the latch itself.
  void Run();
  const RunLoopStats& stats() const { return stats_; }

 private:
  // Each returns false when this vCPU must stop.
  bool HandleExit();
  bool HandleIo();
  bool HandleMmio();
  bool HandleHlt();
  bool HandleShutdown();
  bool HandleSystemEvent();
  bool HandleFailEntry();
  bool HandleInternalError();
  bool HandleUnknown();
  bool Fail(absl::Status status);

  const Vcpu& vcpu_;
  Bus& pio_;
  Bus& mmio_;
  StopLatch& stop_;
  RunLoopStats stats_;
};

/// The signal that kicks a vCPU thread out of KVM_RUN (SIGRTMIN + 2). Its
/// handler does nothing; what matters is that KVM_RUN returns EINTR.
int KickSignal();

/// One thread per vCPU running VcpuRunLoop. The latch's listener kicks every
/// vCPU; Join() waits for all threads. vCPU threads block every signal but
/// the kick signal, so SIGINT/SIGTERM go to the VMM's main thread.
class VcpuThreads {
 public:
  VcpuThreads(std::vector<const Vcpu*> vcpus, Bus& pio, Bus& mmio,
              StopLatch& stop);
  VcpuThreads(const VcpuThreads&) = delete;
  VcpuThreads& operator=(const VcpuThreads&) = delete;
  /// Stops (kStopRequested unless already stopping) and joins.
  ~VcpuThreads();

  /// Starts the threads; call once.
  absl::Status Start();
  /// Sets immediate_exit on every vCPU and signals its thread.
  void KickAll();
  /// Waits until every vCPU thread has returned; returns the stop event.
  StopEvent Join();
  /// Sum of every loop's counters (after Join).
  RunLoopStats TotalStats() const;

 private:
  struct Worker;
  std::vector<std::unique_ptr<Worker>> workers_;
  StopLatch& stop_;
  std::mutex mu_;  // guards the thread handles while kicking
  bool joined_ = false;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_RUN_LOOP_H_
