// The interrupt controllers of a VM whose irqchip is emulated in user space
// (`ssihv-vmm --irqchip user`): one local APIC per vCPU, the I/O APIC, and
// the routing between them. It composes the pure models (lapic.h, ioapic.h,
// apic_routing.h) with locks, a clock and the vCPUs' wake-ups, and knows
// nothing of KVM: the run loop turns its answers into KVM_INTERRUPT,
// KVM_NMI, register loads and waits (run_loop.h).
//
// Every interrupt is an event here: a message is resolved against the
// routing table (every vCPU's APIC ID, LDR, DFR, mode), and the resulting
// delivery goes through an ApicBus. The chip is its own bus; a VM spread
// over several processes puts a bus in between that sends what is meant for
// another node's vCPUs there.
#ifndef SSIHV_KVM_USER_IRQCHIP_H_
#define SSIHV_KVM_USER_IRQCHIP_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "ssihv/kvm/apic_routing.h"
#include "ssihv/kvm/bus.h"
#include "ssihv/kvm/ioapic.h"
#include "ssihv/kvm/lapic.h"

namespace ssihv::kvm {

/// The seam between destination resolution and the vCPUs: where resolved
/// deliveries and I/O APIC EOIs go.
class ApicBus {
 public:
  virtual ~ApicBus() = default;
  /// Delivers `delivery` to the local APICs of `vcpus` (global vCPU
  /// numbers, the indices of the routing table).
  virtual void Deliver(const ApicDelivery& delivery,
                       absl::Span<const uint32_t> vcpus) = 0;
  /// A local APIC's EOI of a level-triggered vector, for the I/O APIC.
  virtual void EoiToIoApic(uint8_t vector) = 0;
};

/// What a vCPU is doing, as far as interrupts are concerned.
enum class VcpuActivity {
  kRunning,
  kHalted,      // HLT: waits for an interrupt it can take (or NMI, INIT)
  kWaitForSipi  // after INIT (every AP at power-on): waits for a SIPI
};

/// What the run loop must do before the vCPU enters the guest.
struct EntryPlan {
  /// INIT arrived: load the INIT register state; the vCPU then waits for a
  /// SIPI (`wait` is set unless one is already here).
  bool init = false;
  /// INIT reached the boot processor: with no firmware to run, the machine
  /// resets.
  bool reset_machine = false;
  /// Start in real mode at vector << 12 (CS = vector << 8, IP = 0).
  std::optional<uint8_t> sipi;
  /// Halted or waiting for SIPI with nothing to wake it: call Wait().
  bool wait = false;
  bool nmi = false;  // inject an NMI (KVM_NMI)
  /// Inject this vector (KVM_INTERRUPT); it is already in the ISR. -1: none.
  int vector = -1;
  /// A vector waits for the guest to accept interrupts
  /// (request_interrupt_window).
  bool want_window = false;
  uint8_t cr8 = 0;  // TPR[7:4], for kvm_run.cr8
  /// When the APIC timer next expires (host CLOCK_MONOTONIC ns).
  std::optional<uint64_t> timer_deadline;
};

/// Counters (monotonic, read at any time).
struct IrqchipStats {
  uint64_t ipis = 0;               // messages sent by local APICs
  uint64_t ioapic_interrupts = 0;  // messages sent by the I/O APIC
  uint64_t deliveries = 0;         // accepted by a local APIC
  uint64_t eois_to_ioapic = 0;
  uint64_t timer_interrupts = 0;
};

class UserIrqchip : public ApicBus {
 public:
  struct Options {
    uint32_t num_vcpus = 1;
    /// APIC ID of each vCPU; empty: the vCPU number.
    std::vector<uint32_t> apic_ids;
    /// The vCPU that runs at power-on (the BSP); the others wait for SIPI.
    uint32_t boot_vcpu = 0;
    /// Local APICs start in x2APIC mode, as a firmware leaves them for more
    /// than 254 vCPUs (Linux then parses the MADT's x2APIC entries).
    bool x2apic = false;
    /// Host CLOCK_MONOTONIC in ns; injectable for tests.
    std::function<uint64_t()> clock;
    /// Where resolved deliveries and EOIs go; nullptr: this chip's own
    /// APICs and I/O APIC (one process). A VM spread over several
    /// processes passes a bus that forwards other nodes' vCPUs and calls
    /// this chip's Deliver / EoiToIoApic for its own.
    ApicBus* bus = nullptr;
    /// Called (outside the chip's locks, on the thread that caused it) when
    /// a vCPU's routing entry changed (its APIC ID, LDR, DFR, mode, enable
    /// bits or TPR): a VM spread over several processes tells the others,
    /// which resolve destinations with the same table (SetRouting).
    std::function<void(uint32_t vcpu, const ApicRoutingEntry&)>
        on_routing_change;
  };
  explicit UserIrqchip(Options options);
  UserIrqchip(const UserIrqchip&) = delete;
  UserIrqchip& operator=(const UserIrqchip&) = delete;

  uint32_t num_vcpus() const { return static_cast<uint32_t>(slots_.size()); }

  // --- Devices (any thread) ---
  /// Drives I/O APIC input `gsi` to `level` (ISA IRQs are identity-mapped).
  void SetIrq(uint32_t gsi, bool level);
  /// Puts the I/O APIC's registers on `mmio` at IoApic::kDefaultBase.
  absl::Status RegisterIoApic(Bus& mmio);

  // --- ApicBus: deliveries to this chip's APICs ---
  void Deliver(const ApicDelivery& delivery,
               absl::Span<const uint32_t> vcpus) override;
  void EoiToIoApic(uint8_t vector) override;

  /// Called (from any thread) after an event became pending for vCPU `i`:
  /// it must make a vCPU thread that is inside KVM_RUN leave it. Set it
  /// before vCPUs run; nullptr detaches it (thread-safe).
  void SetKicker(std::function<void(uint32_t)> kicker);
  /// Wakes every Wait() so that it re-checks its stop condition.
  void WakeAll();

  // --- The vCPU's own thread ---
  /// Takes what is pending for vCPU `vcpu`: INIT, SIPI, NMI, and a vector
  /// when `can_inject` (kvm_run's ready_for_interrupt_injection && if_flag);
  /// expires the APIC timer first.
  EntryPlan PlanEntry(uint32_t vcpu, bool can_inject);
  /// Blocks while the vCPU is halted or waits for a SIPI and nothing wakes
  /// it, running its timer meanwhile; returns early once `stop()` is true
  /// (checked after every WakeAll()).
  void Wait(uint32_t vcpu, const std::function<bool()>& stop);
  /// The vCPU executed HLT with interrupts enabled or not.
  void Halted(uint32_t vcpu, bool interrupts_enabled);
  /// The guest changed CR8 (kvm_run.cr8 after an exit).
  void SyncCr8(uint32_t vcpu, uint8_t cr8);
  /// An MMIO access by `vcpu`: handled (true) if it falls in that vCPU's
  /// xAPIC page; else it is not the APIC's.
  bool ApicMmio(uint32_t vcpu, uint64_t gpa, bool is_write,
                absl::Span<uint8_t> data);
  /// IA32_APIC_BASE and the x2APIC range are the APIC's.
  static bool IsApicMsr(uint32_t msr);
  /// RDMSR / WRMSR of an APIC MSR; false: the guest gets #GP.
  bool ReadMsr(uint32_t vcpu, uint32_t msr, uint64_t* value);
  bool WriteMsr(uint32_t vcpu, uint32_t msr, uint64_t value);

  VcpuActivity activity(uint32_t vcpu);
  /// Sets the routing entry of a vCPU whose APIC lives in another process
  /// (what that process's on_routing_change said).
  void SetRouting(uint32_t vcpu, const ApicRoutingEntry& entry);

  /// vCPU `vcpu`'s activity and local APIC state in one line (diagnostics:
  /// ssihv-vmm prints it with the registers on SIGQUIT).
  std::string DescribeVcpu(uint32_t vcpu);
  /// A copy of the routing table (tests, diagnostics).
  std::vector<ApicRoutingEntry> routing_table() const;
  IrqchipStats stats() const;

 private:
  class IoApicDevice;  // the I/O APIC's registers on the MMIO bus
  struct Slot {
    explicit Slot(LocalApic a, VcpuActivity act)
        : apic(std::move(a)), activity(act) {}
    std::mutex mu;
    std::condition_variable cv;
    LocalApic apic;
    VcpuActivity activity;
    bool halt_if = true;  // IF at the HLT
  };
  bool Wakeable(const Slot& s) const;
  /// Carries out a register write's effects (after the slot's lock).
  void Apply(uint32_t vcpu, const LapicEffects& fx,
             const ApicRoutingEntry& routing);
  void Route(const ApicMessage& message, int64_t source);
  void RouteAll(const std::vector<ApicMessage>& messages);
  void Kick(uint32_t vcpu);
  uint64_t Now() const { return clock_(); }

  std::function<uint64_t()> clock_;
  std::vector<std::unique_ptr<Slot>> slots_;
  mutable std::shared_mutex routing_mu_;
  std::vector<ApicRoutingEntry> routing_;
  std::mutex ioapic_mu_;
  IoApic ioapic_;
  ApicBus* bus_;
  std::function<void(uint32_t, const ApicRoutingEntry&)> on_routing_change_;
  std::shared_mutex kicker_mu_;
  std::function<void(uint32_t)> kicker_;
  std::atomic<uint64_t> ipis_{0}, ioapic_interrupts_{0}, deliveries_{0},
      eois_{0}, timer_interrupts_{0};
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_USER_IRQCHIP_H_
