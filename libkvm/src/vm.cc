#include "ssihv/kvm/vm.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/kvm/kvm.h"
#include "ssihv/kvm/lapic.h"
#include "sys/kvm_ioctl.h"

namespace ssihv::kvm {

// Shared by the Vm and its Vcpus. Members are destroyed in reverse order:
// the VM fd closes first, then the slot owners release the guest memory, so
// no KVM object can reach memory that is gone.
struct Vm::State {
  std::vector<MemorySlot> slots;
  GuestMemory memory;
  std::vector<kvm_cpuid_entry2> supported_cpuid;
  size_t vcpu_mmap_size = 0;
  uint32_t max_vcpus = 0;
  uint32_t max_memslots = 0;
  bool irqchip = false;
  bool user_apic_msrs = false;
  base::UniqueFd fd;
};

absl::StatusOr<Vm> Kvm::CreateVm(const VmOptions& options) const {
  auto state = std::make_shared<Vm::State>();
  SSIHV_ASSIGN_OR_RETURN(state->fd, sys::CreateVm(fd()));
  state->supported_cpuid = supported_cpuid_;
  state->vcpu_mmap_size = vcpu_mmap_size_;
  state->max_vcpus = max_vcpus_;
  state->max_memslots = max_memslots_;
  const int vm_fd = state->fd.get();
  // Both addresses must be set before the first vCPU exists (api.rst), and
  // the irqchip before the PIT, which routes into it.
  SSIHV_RETURN_IF_ERROR(
      sys::SetIdentityMapAddr(vm_fd, options.identity_map_addr));
  SSIHV_RETURN_IF_ERROR(sys::SetTssAddr(vm_fd, options.tss_addr));
  if (options.irqchip) {
    SSIHV_RETURN_IF_ERROR(sys::CreateIrqchip(vm_fd));
    state->irqchip = true;
  }
  if (options.pit) {
    if (!options.irqchip) {
      return absl::InvalidArgumentError(
          "VmOptions: the in-kernel PIT needs the in-kernel irqchip");
    }
    kvm_pit_config pit{};  // flags 0: KVM also emulates speaker port 0x61
    SSIHV_RETURN_IF_ERROR(sys::CreatePit2(vm_fd, pit));
  }
  if (options.user_apic_msrs) {
    if (options.irqchip) {
      return absl::InvalidArgumentError(
          "VmOptions: user APIC MSRs and the in-kernel irqchip exclude each "
          "other");
    }
    SSIHV_RETURN_IF_ERROR(EnableUserApicMsrs(vm_fd));
    state->user_apic_msrs = true;
  }
  return Vm(std::move(state));
}

absl::Status Kvm::EnableUserApicMsrs(int vm_fd) const {
  for (auto [cap, name] :
       {std::pair{KVM_CAP_X86_USER_SPACE_MSR, "KVM_CAP_X86_USER_SPACE_MSR"},
        std::pair{KVM_CAP_X86_MSR_FILTER, "KVM_CAP_X86_MSR_FILTER"}}) {
    SSIHV_ASSIGN_OR_RETURN(int present, sys::CheckExtension(fd(), cap));
    if (present <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("the kernel's KVM lacks ", name,
                       ", which the user-space irqchip needs (Linux >= 5.10)"));
    }
  }
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
  cap.args[0] = KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_FILTER;
  SSIHV_RETURN_IF_ERROR(sys::EnableCap(vm_fd, cap));
  // Everything allowed but IA32_APIC_BASE: a bitmap bit of 0 denies.
  static uint8_t deny_one = 0;
  kvm_msr_filter filter{};
  filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
  filter.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
  filter.ranges[0].nmsrs = 1;
  filter.ranges[0].base = apic::kMsrApicBase;
  filter.ranges[0].bitmap = &deny_one;
  return sys::SetMsrFilter(vm_fd, filter);
}

absl::StatusOr<uint32_t> Vm::AddMemory(uint64_t gpa, uint64_t size,
                                       uint8_t* host,
                                       std::shared_ptr<const void> owner,
                                       bool read_only) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t hva = reinterpret_cast<uint64_t>(host);
  if (owner == nullptr || host == nullptr || size == 0 || gpa % page != 0 ||
      size % page != 0 || hva % page != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Vm::AddMemory gpa=0x", absl::Hex(gpa), " size=0x", absl::Hex(size),
        ": needs an owner, a page-aligned host address, gpa and size"));
  }
  if (state_->slots.size() >= state_->max_memslots) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "Vm::AddMemory: KVM allows ", state_->max_memslots, " memory slots"));
  }
  SSIHV_RETURN_IF_ERROR(state_->memory.AddRegion({gpa, size, host}));
  kvm_userspace_memory_region region{};
  region.slot = static_cast<uint32_t>(state_->slots.size());
  region.flags = read_only ? KVM_MEM_READONLY : 0;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = hva;
  absl::Status st = sys::SetUserMemoryRegion(state_->fd.get(), region);
  if (!st.ok()) {
    // Keep GuestMemory in step with the slots KVM actually has.
    GuestMemory rebuilt;
    for (const MemorySlot& s : state_->slots) {
      (void)rebuilt.AddRegion({s.gpa, s.size, s.host});
    }
    state_->memory = std::move(rebuilt);
    return st;
  }
  state_->slots.push_back(
      {region.slot, gpa, size, host, read_only, std::move(owner)});
  return region.slot;
}

absl::Status Vm::SetIrqLine(uint32_t gsi, bool level) const {
  return sys::IrqLine(state_->fd.get(), gsi, level ? 1 : 0);
}

absl::Status Vm::PulseIrq(uint32_t gsi) const {
  SSIHV_RETURN_IF_ERROR(SetIrqLine(gsi, true));
  return SetIrqLine(gsi, false);
}

absl::StatusOr<kvm_clock_data> Vm::GetClock() const {
  kvm_clock_data data{};
  SSIHV_RETURN_IF_ERROR(sys::GetClock(state_->fd.get(), &data));
  return data;
}

absl::Status Vm::SetClock(const kvm_clock_data& data) const {
  return sys::SetClock(state_->fd.get(), data);
}

absl::StatusOr<Vcpu> Vm::CreateVcpu(uint32_t id) const {
  if (id >= state_->max_vcpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("vCPU id ", id, ": this KVM supports at most ",
                     state_->max_vcpus, " vCPUs (KVM_CAP_MAX_VCPUS)"));
  }
  SSIHV_ASSIGN_OR_RETURN(base::UniqueFd fd,
                         sys::CreateVcpu(state_->fd.get(), id));
  SSIHV_ASSIGN_OR_RETURN(kvm_run * run,
                         sys::MapRun(fd.get(), state_->vcpu_mmap_size));
  return Vcpu(id, std::move(fd), run, state_->vcpu_mmap_size, state_);
}

const GuestMemory& Vm::memory() const { return state_->memory; }
const std::vector<MemorySlot>& Vm::slots() const { return state_->slots; }
bool Vm::has_irqchip() const { return state_->irqchip; }
bool Vm::user_apic_msrs() const { return state_->user_apic_msrs; }
int Vm::fd() const { return state_->fd.get(); }
const std::vector<kvm_cpuid_entry2>& Vm::supported_cpuid() const {
  return state_->supported_cpuid;
}

}  // namespace ssihv::kvm
