#include "ssihv/kvm/kvm.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"
#include "sys/kvm_ioctl.h"

namespace ssihv::kvm {
namespace {

struct RequiredCap {
  int cap;
  const char* name;
};

// Everything libkvm uses unconditionally. All of these predate Linux 4.11
// (immediate_exit is the youngest), so a miss means a very old or a
// non-x86 KVM.
constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

}  // namespace

std::string KvmOpenAdvice(int err, const std::string& path) {
  switch (err) {
    case ENOENT:
      return absl::StrCat(
          path,
          " does not exist: KVM is not loaded. Load the module for your CPU "
          "(modprobe kvm_intel or modprobe kvm_amd), enable virtualization "
          "(VT-x/AMD-V) in the firmware, or on a machine without KVM run "
          "inside the lab VM (tests/lab/run.sh)");
    case ENODEV:
    case ENXIO:
      return absl::StrCat(path,
                          " exists but KVM has no hardware support here: "
                          "enable VT-x/AMD-V (or nested virtualization) for "
                          "this machine, or use the lab VM (tests/lab/run.sh)");
    case EACCES:
    case EPERM:
      return absl::StrCat("no permission to open ", path,
                          ": add your user to its group (usually 'kvm': "
                          "sudo usermod -aG kvm $USER, then log in again) "
                          "or run as root");
    default:
      return absl::StrCat("cannot open ", path, ": ", std::strerror(err));
  }
}

absl::StatusOr<Kvm> Kvm::Open(const std::string& path) {
  int err = 0;
  absl::StatusOr<base::UniqueFd> fd = sys::OpenDevice(path.c_str(), &err);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(), KvmOpenAdvice(err, path));
  }
  Kvm kvm;
  kvm.fd_ = *std::move(fd);
  SSIHV_ASSIGN_OR_RETURN(int version, sys::GetApiVersion(kvm.fd()));
  if (version != kRequiredApiVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": KVM API version ", version, ", this build needs ",
                     kRequiredApiVersion));
  }
  for (const RequiredCap& c : kRequiredCaps) {
    SSIHV_ASSIGN_OR_RETURN(int present, sys::CheckExtension(kvm.fd(), c.cap));
    if (present <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": the kernel's KVM lacks ", c.name,
                       " (needs Linux >= 4.11 on x86)"));
    }
  }
  SSIHV_ASSIGN_OR_RETURN(int max_vcpus,
                         sys::CheckExtension(kvm.fd(), KVM_CAP_MAX_VCPUS));
  if (max_vcpus <= 0) {
    // api.rst: without KVM_CAP_MAX_VCPUS the limit is KVM_CAP_NR_VCPUS.
    SSIHV_ASSIGN_OR_RETURN(max_vcpus,
                           sys::CheckExtension(kvm.fd(), KVM_CAP_NR_VCPUS));
  }
  kvm.max_vcpus_ = max_vcpus > 0 ? static_cast<uint32_t>(max_vcpus) : 4;
  SSIHV_ASSIGN_OR_RETURN(int slots,
                         sys::CheckExtension(kvm.fd(), KVM_CAP_NR_MEMSLOTS));
  kvm.max_memslots_ = slots > 0 ? static_cast<uint32_t>(slots) : 32;
  SSIHV_ASSIGN_OR_RETURN(kvm.vcpu_mmap_size_, sys::GetVcpuMmapSize(kvm.fd()));
  SSIHV_ASSIGN_OR_RETURN(kvm.supported_cpuid_,
                         sys::GetSupportedCpuid(kvm.fd()));
  return kvm;
}

absl::StatusOr<int> Kvm::CheckExtension(int capability) const {
  return sys::CheckExtension(fd(), capability);
}

}  // namespace ssihv::kvm
