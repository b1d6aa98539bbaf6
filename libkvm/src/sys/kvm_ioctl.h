// Raw KVM system calls: one small function per ioctl, nothing else. Every
// other libkvm file goes through these; none calls ioctl() itself.
// Reference: Documentation/virt/kvm/api.rst in the Linux tree.
#ifndef SSIHV_KVM_SRC_SYS_KVM_IOCTL_H_
#define SSIHV_KVM_SRC_SYS_KVM_IOCTL_H_

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::kvm::sys {

// --- /dev/kvm (system fd) ---
/// open(path, O_RDWR|O_CLOEXEC); the raw errno is kept in the status message.
absl::StatusOr<base::UniqueFd> OpenDevice(const char* path, int* err_out);
absl::StatusOr<int> GetApiVersion(int kvm_fd);
/// KVM_CHECK_EXTENSION: 0 when absent, > 0 (often a limit) when present.
absl::StatusOr<int> CheckExtension(int fd, int capability);
absl::StatusOr<size_t> GetVcpuMmapSize(int kvm_fd);
/// KVM_GET_SUPPORTED_CPUID, growing the buffer while the kernel says E2BIG.
absl::StatusOr<std::vector<kvm_cpuid_entry2>> GetSupportedCpuid(int kvm_fd);
/// KVM_GET_MSR_INDEX_LIST, growing the buffer while the kernel says E2BIG.
absl::StatusOr<std::vector<uint32_t>> GetMsrIndexList(int kvm_fd);
/// KVM_CREATE_VM with the default machine type, retried on EINTR.
absl::StatusOr<base::UniqueFd> CreateVm(int kvm_fd);

// --- VM fd ---
absl::Status SetUserMemoryRegion(int vm_fd,
                                 const kvm_userspace_memory_region& region);
absl::Status CreateIrqchip(int vm_fd);
absl::Status CreatePit2(int vm_fd, const kvm_pit_config& config);
absl::Status SetTssAddr(int vm_fd, uint64_t addr);
absl::Status SetIdentityMapAddr(int vm_fd, uint64_t addr);
absl::Status IrqLine(int vm_fd, uint32_t irq, uint32_t level);
absl::Status EnableCap(int fd, const kvm_enable_cap& cap);
/// KVM_X86_SET_MSR_FILTER (the bitmaps stay the caller's).
absl::Status SetMsrFilter(int vm_fd, const kvm_msr_filter& filter);
absl::StatusOr<base::UniqueFd> CreateVcpu(int vm_fd, uint32_t vcpu_id);

// --- vCPU fd ---
/// mmap of the shared kvm_run area (mmap is the call here, not ioctl).
absl::StatusOr<kvm_run*> MapRun(int vcpu_fd, size_t size);
void UnmapRun(kvm_run* run, size_t size);
/// KVM_RUN. Returns the raw errno (0 on success) rather than a Status:
/// EINTR and EAGAIN are normal control flow for the run loop and must not
/// cost a message allocation per exit.
int Run(int vcpu_fd);
absl::Status GetRegs(int vcpu_fd, kvm_regs* regs);
absl::Status SetRegs(int vcpu_fd, const kvm_regs& regs);
absl::Status GetSregs(int vcpu_fd, kvm_sregs* sregs);
absl::Status SetSregs(int vcpu_fd, const kvm_sregs& sregs);
absl::Status GetFpu(int vcpu_fd, kvm_fpu* fpu);
absl::Status SetFpu(int vcpu_fd, const kvm_fpu& fpu);
/// KVM_SET_CPUID2 with `entries`.
absl::Status SetCpuid2(int vcpu_fd,
                       const std::vector<kvm_cpuid_entry2>& entries);
/// KVM_SET_MSRS / KVM_GET_MSRS; the kernel returns how many it processed.
absl::StatusOr<int> SetMsrs(int vcpu_fd,
                            const std::vector<kvm_msr_entry>& msrs);
absl::StatusOr<int> GetMsrs(int vcpu_fd, std::vector<kvm_msr_entry>* msrs);
absl::Status GetLapic(int vcpu_fd, kvm_lapic_state* lapic);
absl::Status SetLapic(int vcpu_fd, const kvm_lapic_state& lapic);
absl::Status GetMpState(int vcpu_fd, kvm_mp_state* state);
/// KVM_INTERRUPT: queue external interrupt `vector` (no in-kernel irqchip).
absl::Status Interrupt(int vcpu_fd, uint32_t vector);
/// KVM_NMI: queue an NMI (no in-kernel irqchip).
absl::Status Nmi(int vcpu_fd);
absl::Status SetVcpuEvents(int vcpu_fd, const kvm_vcpu_events& events);
/// KVM_GET_CLOCK / KVM_SET_CLOCK (VM fd): the guest's kvmclock.
absl::Status GetClock(int vm_fd, kvm_clock_data* data);
absl::Status SetClock(int vm_fd, const kvm_clock_data& data);
/// KVM_GET_DEVICE_ATTR / KVM_SET_DEVICE_ATTR on a vCPU fd, group
/// KVM_VCPU_TSC_CTRL, attribute KVM_VCPU_TSC_OFFSET (Linux 5.16+).
absl::Status GetTscOffset(int vcpu_fd, uint64_t* offset);
absl::Status SetTscOffset(int vcpu_fd, uint64_t offset);

}  // namespace ssihv::kvm::sys

#endif  // SSIHV_KVM_SRC_SYS_KVM_IOCTL_H_
