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

/// Applies what every vCPU needs before it first runs: CPUID for
/// `topology`, InitialMsrs, the LAPIC LINTs (with an in-kernel irqchip),
/// and a sane FPU (FCW 0x37f, MXCSR 0x1f80).
absl::Status ConfigureX86Vcpu(const Vcpu& vcpu,
                              const std::vector<kvm_cpuid_entry2>& supported,
                              const VcpuTopology& topology, bool has_irqchip);

/// Puts the boot vCPU at the kernel's 64-bit entry point.
absl::Status SetupLinuxBootVcpu(const Vcpu& vcpu, const LinuxBootInfo& info);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_X86_VCPU_H_
