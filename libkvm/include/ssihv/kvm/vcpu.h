// One virtual CPU: its fd, the mapped kvm_run area, and the state accessors
// (registers, CPUID, MSRs, LAPIC). A Vcpu keeps its VM (fd and memory
// slots) alive. All methods except RequestImmediateExit must be called from
// the thread that runs the vCPU (or before it starts).
#ifndef SSIHV_KVM_VCPU_H_
#define SSIHV_KVM_VCPU_H_

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::kvm {

/// An MSR index and value.
struct Msr {
  uint32_t index = 0;
  uint64_t value = 0;
};

class Vcpu {
 public:
  Vcpu(Vcpu&& other) noexcept;
  Vcpu& operator=(Vcpu&& other) noexcept;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  ~Vcpu();

  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  /// The shared kvm_run area (valid for the Vcpu's lifetime).
  kvm_run* run() const { return run_; }

  /// KVM_RUN once. Returns 0 or the errno: EINTR means a signal (or
  /// immediate_exit) interrupted it; see RunLoop for the handling.
  int RunOnce() const;

  /// Asks the vCPU to leave KVM_RUN: sets kvm_run.immediate_exit so that the
  /// next (or a racing) KVM_RUN returns EINTR at once. Pair it with a signal
  /// to kick a vCPU already inside KVM_RUN. Safe from any thread.
  void RequestImmediateExit() const;
  void ClearImmediateExit() const;

  absl::StatusOr<kvm_regs> GetRegs() const;
  absl::Status SetRegs(const kvm_regs& regs) const;
  absl::StatusOr<kvm_sregs> GetSregs() const;
  absl::Status SetSregs(const kvm_sregs& sregs) const;
  absl::Status SetFpu(const kvm_fpu& fpu) const;
  absl::Status SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) const;
  /// Sets every MSR; an error names the first one KVM refused.
  absl::Status SetMsrs(const std::vector<Msr>& msrs) const;
  absl::StatusOr<uint64_t> GetMsr(uint32_t index) const;
  absl::StatusOr<kvm_lapic_state> GetLapic() const;
  absl::Status SetLapic(const kvm_lapic_state& lapic) const;
  absl::StatusOr<kvm_mp_state> GetMpState() const;
  /// KVM_INTERRUPT: the external interrupt `vector`, delivered when the
  /// guest can take it (no in-kernel irqchip; see kvm_run's
  /// ready_for_interrupt_injection).
  absl::Status InjectInterrupt(uint8_t vector) const;
  /// KVM_NMI (no in-kernel irqchip).
  absl::Status InjectNmi() const;
  /// The guest TSC's offset from the host's (KVM_VCPU_TSC_OFFSET): vCPUs of
  /// one guest in several processes on one host read one TSC when they all
  /// use the same offset.
  absl::StatusOr<uint64_t> GetTscOffset() const;
  absl::Status SetTscOffset(uint64_t offset) const;
  /// Drops every exception, interrupt and NMI KVM holds for the vCPU (what
  /// INIT does to a processor).
  absl::Status ClearPendingEvents() const;

  /// A multi-line dump of the general, segment and control registers for
  /// failure reports (best effort: a failing ioctl is noted, not fatal).
  std::string DumpState() const;

 private:
  friend class Vm;
  Vcpu(uint32_t id, base::UniqueFd fd, kvm_run* run, size_t run_size,
       std::shared_ptr<const void> vm_state);

  uint32_t id_ = 0;
  // Declared first, destroyed last: the VM outlives this vCPU's fd.
  std::shared_ptr<const void> vm_state_;
  base::UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_VCPU_H_
