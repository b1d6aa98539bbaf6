// x86 vCPU setup: what every vCPU gets (CPUID with its topology, MSRs, LAPIC
// in virtual-wire mode, FPU) and the boot vCPU's long-mode entry state for
// the Linux 64-bit boot protocol. The register computations are pure and
// unit-tested; the Setup* functions apply them through a Vcpu.
#ifndef SSIHV_KVM_X86_VCPU_H_
#define SSIHV_KVM_X86_VCPU_H_

#include <linux/kvm.h>

#include <vector>

#include "absl/status/status.h"
#include "ssihv/kvm/cpuid.h"
#include "ssihv/kvm/vcpu.h"
#include "ssihv/kvm/x86_boot.h"

namespace ssihv::kvm {

// MSR indices (Intel SDM vol. 4).
inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32SysenterCs = 0x174;
inline constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
inline constexpr uint32_t kMsrIa32SysenterEip = 0x176;
inline constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

/// The boot vCPU's system registers: paging on with `info.page_tables`,
/// PAE, EFER.LME|LMA, flat 64-bit code at __BOOT_CS and data at __BOOT_DS,
/// the boot GDT, a busy TSS. `base` is KVM's reset state (kept otherwise).
kvm_sregs LongModeSregs(kvm_sregs base, const LinuxBootInfo& info);
/// rip = 64-bit entry, rsi = boot_params, interrupts off.
kvm_regs LongModeBootRegs(const LinuxBootInfo& info);
/// MSRs a firmware leaves defined: SYSENTER/SYSCALL zeroed, fast strings
/// on, MTRRs enabled with write-back default (else Linux maps RAM uncached).
std::vector<Msr> InitialMsrs();
/// LINT0 = ExtINT (PIC interrupts reach the CPU), LINT1 = NMI: the
/// virtual-wire mode a BIOS leaves the local APIC in.
void SetLintVirtualWire(kvm_lapic_state* lapic);

/// Whose interrupt controllers a VM has.
enum class IrqchipKind {
  kNone,    // none (guest-program tests: HLT stops the vCPU)
  kKernel,  // KVM's (KVM_CREATE_IRQCHIP)
  kUser,    // the VMM's (user_irqchip.h)
};

/// Applies what every vCPU needs before it first runs: CPUID for
/// `topology` (and the irqchip: CpuidForVcpu), InitialMsrs, the LAPIC LINTs
/// (with the in-kernel irqchip), and a sane FPU (FCW 0x37f, MXCSR 0x1f80).
absl::Status ConfigureX86Vcpu(const Vcpu& vcpu,
                              const std::vector<kvm_cpuid_entry2>& supported,
                              const VcpuTopology& topology,
                              IrqchipKind irqchip);

/// The state INIT leaves a processor in (SDM vol. 3A, Table 10-1): real
/// mode at f000:fff0 with CS base 0xffff0000, caches as they were, paging
/// and long mode off, no pending external interrupt. Keeps apic_base.
kvm_sregs InitSregs(kvm_sregs current);
/// The registers after INIT: rflags 2, rip 0xfff0, rdx the processor
/// signature (0x600, what KVM uses without CPUID), the rest zero.
kvm_regs InitRegs();
/// Where a start-up IPI sends a processor waiting for it (SDM vol. 3A,
/// 9.4.4): CS selector vector << 8, base vector << 12 (IP = 0).
kvm_sregs SipiSregs(kvm_sregs current, uint8_t vector);

/// Loads the INIT state (registers, FPU) and drops the events KVM holds
/// (user irqchip: the VMM delivers INIT).
absl::Status ResetVcpuForInit(const Vcpu& vcpu);
/// Starts a vCPU waiting for SIPI at the vector's page (user irqchip).
absl::Status StartVcpuAtSipi(const Vcpu& vcpu, uint8_t vector);

/// Puts the boot vCPU at the kernel's 64-bit entry point.
absl::Status SetupLinuxBootVcpu(const Vcpu& vcpu, const LinuxBootInfo& info);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_X86_VCPU_H_
