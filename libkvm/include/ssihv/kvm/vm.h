// A KVM virtual machine: memory slots, the in-kernel irqchip and PIT or the
// MSR exits a user-space irqchip needs, IRQ lines, vCPU creation. Configure
// it (memory, devices) before any vCPU runs.
#ifndef SSIHV_KVM_VM_H_
#define SSIHV_KVM_VM_H_

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/kvm/guest_memory.h"
#include "ssihv/kvm/vcpu.h"

namespace ssihv::kvm {

/// Three pages the Intel VMX code needs for real-mode emulation (TSS) and the
/// identity-mapped page table for unpaged guest mode, in the MMIO hole just
/// below the 4 GiB BIOS area (where QEMU puts them too).
inline constexpr uint64_t kDefaultTssAddr = 0xfffbd000;
inline constexpr uint64_t kDefaultIdentityMapAddr = 0xfffbc000;

struct VmOptions {
  /// In-kernel PIC + IOAPIC + LAPICs (KVM_CREATE_IRQCHIP). Without it HLT and
  /// interrupts come to user space (guest-program tests use that).
  bool irqchip = true;
  /// In-kernel i8254 PIT with the speaker port 0x61 (KVM_CREATE_PIT2).
  bool pit = true;
  /// For an irqchip emulated in user space (user_irqchip.h): APIC MSRs exit
  /// to user space. KVM_CAP_X86_USER_SPACE_MSR with
  /// KVM_MSR_EXIT_REASON_INVAL catches the x2APIC registers (KVM fails them
  /// without an in-kernel LAPIC; any other MSR it fails exits too, for the
  /// run loop to refuse), and an MSR filter sends IA32_APIC_BASE out
  /// (KVM_MSR_EXIT_REASON_FILTER), which KVM would otherwise keep to
  /// itself. Needs irqchip = pit = false.
  bool user_apic_msrs = false;
  uint64_t tss_addr = kDefaultTssAddr;
  uint64_t identity_map_addr = kDefaultIdentityMapAddr;
};

/// What a memory slot maps; `owner` keeps the host mapping alive.
struct MemorySlot {
  uint32_t slot = 0;
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;
  bool read_only = false;
  std::shared_ptr<const void> owner;
};

class Kvm;

class Vm {
 public:
  Vm(Vm&&) = default;
  Vm& operator=(Vm&&) = default;

  /// Maps guest-physical [gpa, gpa + size) to host [host, host + size).
  /// `owner` must keep that host range mapped; the VM holds it until the VM
  /// and every vCPU created from it are gone, so a slot can never dangle.
  /// gpa, size and host must be page aligned. Returns the slot number.
  absl::StatusOr<uint32_t> AddMemory(uint64_t gpa, uint64_t size, uint8_t* host,
                                     std::shared_ptr<const void> owner,
                                     bool read_only = false);

  /// Drives an irqchip input (GSI) to `level` (KVM_IRQ_LINE). Thread-safe.
  absl::Status SetIrqLine(uint32_t gsi, bool level) const;
  /// An edge on an ISA interrupt: raise then lower.
  absl::Status PulseIrq(uint32_t gsi) const;

  /// The guest's kvmclock (KVM_GET_CLOCK): `clock` in ns, with `realtime`
  /// and `host_tsc` when flags say so (a host whose clocksource is the TSC).
  absl::StatusOr<kvm_clock_data> GetClock() const;
  /// Sets it (KVM_SET_CLOCK); with KVM_CLOCK_REALTIME in `flags`, KVM adds
  /// the realtime elapsed since `realtime`.
  absl::Status SetClock(const kvm_clock_data& data) const;

  /// Creates vCPU `id` (its APIC ID on x86) with its kvm_run mapped.
  absl::StatusOr<Vcpu> CreateVcpu(uint32_t id) const;

  /// Guest RAM as seen by the VMM (one region per slot).
  const GuestMemory& memory() const;
  const std::vector<MemorySlot>& slots() const;
  bool has_irqchip() const;
  bool user_apic_msrs() const;
  int fd() const;
  const std::vector<kvm_cpuid_entry2>& supported_cpuid() const;

  struct State;  // shared with the Vcpus (defined in vm.cc)

 private:
  friend class Kvm;
  explicit Vm(std::shared_ptr<State> state) : state_(std::move(state)) {}

  std::shared_ptr<State> state_;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_VM_H_
