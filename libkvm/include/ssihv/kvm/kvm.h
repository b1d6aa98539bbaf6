// The root of the KVM fd chain: Kvm (/dev/kvm) -> Vm -> Vcpu. Each type owns
// its file descriptor; a Vm and its Vcpus share the VM state (fd and memory
// slots) so that guest memory outlives every fd that can touch it.
#ifndef SSIHV_KVM_KVM_H_
#define SSIHV_KVM_KVM_H_

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/kvm/cpuid.h"
#include "ssihv/kvm/vm.h"

namespace ssihv::kvm {

/// The KVM API version this code is written against (KVM_GET_API_VERSION).
inline constexpr int kRequiredApiVersion = 12;

/// An open /dev/kvm whose API version and required capabilities were checked.
class Kvm {
 public:
  /// Opens `path` and checks API version 12 plus every capability libkvm
  /// relies on (user memory, in-kernel irqchip, PIT2, TSS and identity-map
  /// addresses, extended CPUID, immediate_exit). Errors say what to do:
  /// NotFound (no /dev/kvm: load kvm_intel/kvm_amd or use the lab VM),
  /// PermissionDenied (join the kvm group), FailedPrecondition (old kernel).
  static absl::StatusOr<Kvm> Open(const std::string& path = "/dev/kvm");

  Kvm(Kvm&&) = default;
  Kvm& operator=(Kvm&&) = default;

  /// Creates a VM configured by `options` (irqchip, PIT, TSS addresses).
  absl::StatusOr<Vm> CreateVm(const VmOptions& options = {}) const;

  /// KVM_CHECK_EXTENSION on the system fd.
  absl::StatusOr<int> CheckExtension(int capability) const;

  int fd() const { return fd_.get(); }
  /// KVM_CAP_MAX_VCPUS (falls back to KVM_CAP_NR_VCPUS).
  uint32_t max_vcpus() const { return max_vcpus_; }
  uint32_t max_memslots() const { return max_memslots_; }
  size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  /// KVM_GET_SUPPORTED_CPUID, read once at Open.
  const std::vector<kvm_cpuid_entry2>& supported_cpuid() const {
    return supported_cpuid_;
  }
  CpuVendor vendor() const { return VendorOf(supported_cpuid_); }

 private:
  Kvm() = default;
  absl::Status EnableUserApicMsrs(int vm_fd) const;

  base::UniqueFd fd_;
  uint32_t max_vcpus_ = 0;
  uint32_t max_memslots_ = 0;
  size_t vcpu_mmap_size_ = 0;
  std::vector<kvm_cpuid_entry2> supported_cpuid_;
};

/// The advice for an errno from opening /dev/kvm (exposed for tests).
std::string KvmOpenAdvice(int err, const std::string& path);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_KVM_H_
