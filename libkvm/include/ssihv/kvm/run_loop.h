// The vCPU run loop: KVM_RUN, then one handler per exit reason, until the
// VM-wide stop latch is set. With a user-space irqchip it also injects
// interrupts (KVM_INTERRUPT, KVM_NMI, request_interrupt_window), loads
// INIT/SIPI state, waits in HLT and runs the APIC timer on a host timer.
// VcpuThreads runs one loop per vCPU thread and stops them cleanly
// (immediate_exit + a kick signal).
#ifndef SSIHV_KVM_RUN_LOOP_H_
#define SSIHV_KVM_RUN_LOOP_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ssihv/kvm/bus.h"
#include "ssihv/kvm/pause_gate.h"
#include "ssihv/kvm/user_irqchip.h"
#include "ssihv/kvm/vcpu.h"

namespace ssihv::kvm {

namespace sys {
class ThreadTimer;
}

enum class StopReason {
  kNone,
  kReset,          // the guest asked for a reset (i8042, reset register)
  kPowerOff,       // the guest powered off (ACPI sleep S5)
  kTripleFault,    // KVM_EXIT_SHUTDOWN: what a PC does then is reset
  kHalted,         // HLT reached user space with no irqchip to wake it
  kStopRequested,  // the VMM stopped the VM (signal, console escape)
  kError,          // a VMM or KVM failure; see the status
  kApiStop,        // an orderly stop asked for by the VMM's control API
                   // (POST /vm/stop): as final as a power-off
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

/// Counters a run loop keeps. Its own thread bumps them with relaxed
/// atomic stores (one writer: no locked instruction on the exit path);
/// VcpuRunLoop::stats() reads them from any thread at any time.
struct RunLoopStats {
  uint64_t exits = 0;
  uint64_t io_exits = 0;
  uint64_t mmio_exits = 0;  // APIC page accesses included
  uint64_t signal_exits = 0;
  // With the user-space irqchip:
  uint64_t hlt_exits = 0;
  uint64_t irq_window_exits = 0;
  uint64_t msr_exits = 0;
  uint64_t apic_mmio_exits = 0;
  uint64_t interrupts_injected = 0;
  uint64_t nmis_injected = 0;

  RunLoopStats& operator+=(const RunLoopStats& o);
};

/// What a vCPU thread is doing, published for other threads (the VMM's
/// API). With KVM's irqchip, HLT and the wait for SIPI happen inside
/// KVM_RUN, where user space cannot see them: such a vCPU is kRunning.
enum class VcpuRunState : uint8_t {
  kNotStarted,      ///< its thread has not entered the loop yet
  kRunning,         ///< in or around KVM_RUN
  kHalted,          ///< user irqchip: HLT, waiting for an interrupt
  kWaitingForSipi,  ///< user irqchip: an AP after INIT, before its SIPI
  kPaused,          ///< held by the PauseGate
  kStopped,         ///< the loop has returned
};
const char* VcpuRunStateName(VcpuRunState state);

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
  /// `irqchip`: the VM's user-space interrupt controllers, this vCPU being
  /// number `index` in it; nullptr with KVM's irqchip or none.
  /// `gate`: where the loop waits while the VM is paused; nullptr: never
  /// paused.
  VcpuRunLoop(const Vcpu& vcpu, Bus& pio, Bus& mmio, StopLatch& stop,
              UserIrqchip* irqchip = nullptr, uint32_t index = 0,
              PauseGate* gate = nullptr);
  ~VcpuRunLoop();

  /// Runs the vCPU until the latch is set (by one of its exits or by anyone
  /// else). Every exit that ends the VM sets the latch itself. The calling
  /// thread's kick signal (KickSignal) must not be blocked.
  void Run();
  /// A snapshot of the counters (any thread, any time).
  RunLoopStats stats() const;
  /// What the vCPU thread is doing now (any thread).
  VcpuRunState state() const { return state_.load(std::memory_order_acquire); }
  /// True from just before this vCPU looks at its APIC until it leaves
  /// KVM_RUN: an interrupt delivered meanwhile must kick its thread.
  bool in_guest() const { return in_guest_.load(std::memory_order_seq_cst); }

 private:
  enum class Entry { kEnter, kAgain, kStop };
  // User irqchip (run_loop_apic.cc).
  bool StartUserIrqchip();
  Entry PrepareEntry();
  bool ApplyPlan(const EntryPlan& plan);
  void ArmTimer(std::optional<uint64_t> deadline);
  void SyncTpr();
  bool HandleMsr(bool write);

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
  /// Waits at the pause gate while it is closed.
  void HoldIfPaused();
  /// One writer (this thread), readers anywhere: a relaxed load and store
  /// through atomic_ref, which compiles to a plain add.
  static void Bump(uint64_t& counter) {
    std::atomic_ref<uint64_t> c(counter);
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void Publish(VcpuRunState s) { state_.store(s, std::memory_order_release); }
  /// Stop or pause: what ends a wait of the user irqchip.
  bool Interrupted() const {
    return stop_.requested() || (gate_ != nullptr && gate_->closed());
  }

  const Vcpu& vcpu_;
  Bus& pio_;
  Bus& mmio_;
  StopLatch& stop_;
  UserIrqchip* irqchip_;
  uint32_t index_;
  PauseGate* gate_;
  RunLoopStats stats_;  // written by this thread only, see Bump()
  std::atomic<VcpuRunState> state_{VcpuRunState::kNotStarted};
  std::atomic<bool> in_guest_{false};
  uint8_t entry_cr8_ = 0;  // kvm_run.cr8 as set before the last entry
  // For the report of an unexpected triple fault (user irqchip): what this
  // vCPU last exited for and was last given.
  uint32_t prev_exit_reason_ = 0;
  uint32_t prev_msr_ = 0;
  int last_vector_ = -1;
  uint64_t last_vector_exits_ = 0;  // stats_.exits when it was injected
  std::unique_ptr<sys::ThreadTimer> timer_;  // the APIC timer's host timer
  std::optional<uint64_t> armed_deadline_;
};

/// The signal that kicks a vCPU thread out of KVM_RUN (SIGRTMIN + 2). Its
/// handler does nothing; what matters is that KVM_RUN returns EINTR.
int KickSignal();

/// One vCPU as VcpuThreads::Snapshot() sees it.
struct VcpuThreadInfo {
  uint32_t id = 0;
  VcpuRunState state = VcpuRunState::kNotStarted;
  RunLoopStats stats;
};

/// One thread per vCPU running VcpuRunLoop. The latch's listener kicks every
/// vCPU; Join() waits for all threads. vCPU threads block every signal but
/// the kick signal, so SIGINT/SIGTERM go to the VMM's main thread. With a
/// user-space irqchip, vCPU i of `vcpus` is its vCPU i, and the threads
/// are its kicker (a delivery to a vCPU inside KVM_RUN signals its thread).
class VcpuThreads {
 public:
  VcpuThreads(std::vector<const Vcpu*> vcpus, Bus& pio, Bus& mmio,
              StopLatch& stop, UserIrqchip* irqchip = nullptr);
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
  /// Sum of every loop's counters.
  RunLoopStats TotalStats() const;
  /// Every vCPU's state and counters, in the order given (any thread).
  std::vector<VcpuThreadInfo> Snapshot() const;

  /// Holds every vCPU outside KVM_RUN: closes the pause gate, kicks them
  /// and waits until each is paused (or its loop ended) or `timeout`
  /// passes: DeadlineExceeded naming the vCPUs not yet out (the gate stays
  /// closed: they stop at their next exit). FailedPrecondition once the VM
  /// is stopping. Idempotent.
  absl::Status Pause(absl::Duration timeout);
  /// Releases the vCPUs held by Pause(). Idempotent.
  void Resume();
  bool paused() const { return gate_.closed(); }

 private:
  struct Worker;
  void Kick(uint32_t id);
  PauseGate gate_;  // before workers_: their loops point at it
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<int> by_id_;  // vCPU id -> its worker, -1: not here
  StopLatch& stop_;
  UserIrqchip* irqchip_;
  std::mutex mu_;  // guards the thread handles while kicking
  bool joined_ = false;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_RUN_LOOP_H_
