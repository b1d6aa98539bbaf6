#include "ssihv/kvm/vcpu.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ssihv/base/status_macros.h"
#include "sys/kvm_ioctl.h"

namespace ssihv::kvm {

Vcpu::Vcpu(uint32_t id, base::UniqueFd fd, kvm_run* run, size_t run_size,
           std::shared_ptr<const void> vm_state)
    : id_(id),
      vm_state_(std::move(vm_state)),
      fd_(std::move(fd)),
      run_(run),
      run_size_(run_size) {}

Vcpu::Vcpu(Vcpu&& other) noexcept
    : id_(other.id_),
      vm_state_(std::move(other.vm_state_)),
      fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(std::exchange(other.run_size_, 0)) {}

Vcpu& Vcpu::operator=(Vcpu&& other) noexcept {
  if (this != &other) {
    if (run_ != nullptr) sys::UnmapRun(run_, run_size_);
    id_ = other.id_;
    run_ = std::exchange(other.run_, nullptr);
    run_size_ = std::exchange(other.run_size_, 0);
    fd_ = std::move(other.fd_);
    vm_state_ = std::move(other.vm_state_);
  }
  return *this;
}

Vcpu::~Vcpu() {
  if (run_ != nullptr) sys::UnmapRun(run_, run_size_);
}

int Vcpu::RunOnce() const { return sys::Run(fd_.get()); }

void Vcpu::RequestImmediateExit() const {
  // Read by the kernel at KVM_RUN entry; another thread sets it, so publish
  // it with a release store.
  std::atomic_ref<uint8_t>(run_->immediate_exit)
      .store(1, std::memory_order_seq_cst);
}

void Vcpu::ClearImmediateExit() const {
  std::atomic_ref<uint8_t>(run_->immediate_exit)
      .store(0, std::memory_order_seq_cst);
}

absl::StatusOr<kvm_regs> Vcpu::GetRegs() const {
  kvm_regs regs{};
  SSIHV_RETURN_IF_ERROR(sys::GetRegs(fd_.get(), &regs));
  return regs;
}
absl::Status Vcpu::SetRegs(const kvm_regs& regs) const {
  return sys::SetRegs(fd_.get(), regs);
}
absl::StatusOr<kvm_sregs> Vcpu::GetSregs() const {
  kvm_sregs sregs{};
  SSIHV_RETURN_IF_ERROR(sys::GetSregs(fd_.get(), &sregs));
  return sregs;
}
absl::Status Vcpu::SetSregs(const kvm_sregs& sregs) const {
  return sys::SetSregs(fd_.get(), sregs);
}
absl::Status Vcpu::SetFpu(const kvm_fpu& fpu) const {
  return sys::SetFpu(fd_.get(), fpu);
}
absl::Status Vcpu::SetCpuid(
    const std::vector<kvm_cpuid_entry2>& entries) const {
  return sys::SetCpuid2(fd_.get(), entries);
}

absl::Status Vcpu::SetMsrs(const std::vector<Msr>& msrs) const {
  std::vector<kvm_msr_entry> entries(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) {
    entries[i].index = msrs[i].index;
    entries[i].data = msrs[i].value;
  }
  SSIHV_ASSIGN_OR_RETURN(int done, sys::SetMsrs(fd_.get(), entries));
  // KVM stops at the first MSR it refuses and returns how many it set.
  if (done < static_cast<int>(msrs.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KVM_SET_MSRS vcpu=", id_, ": MSR 0x", absl::Hex(msrs[done].index),
        " refused (", done, " of ", msrs.size(), " set)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Vcpu::GetMsr(uint32_t index) const {
  std::vector<kvm_msr_entry> entries(1);
  entries[0].index = index;
  SSIHV_ASSIGN_OR_RETURN(int done, sys::GetMsrs(fd_.get(), &entries));
  if (done != 1) {
    return absl::NotFoundError(absl::StrCat("KVM_GET_MSRS vcpu=", id_,
                                            ": MSR 0x", absl::Hex(index),
                                            " not readable"));
  }
  return entries[0].data;
}

absl::StatusOr<kvm_lapic_state> Vcpu::GetLapic() const {
  kvm_lapic_state lapic{};
  SSIHV_RETURN_IF_ERROR(sys::GetLapic(fd_.get(), &lapic));
  return lapic;
}
absl::Status Vcpu::SetLapic(const kvm_lapic_state& lapic) const {
  return sys::SetLapic(fd_.get(), lapic);
}
absl::StatusOr<kvm_mp_state> Vcpu::GetMpState() const {
  kvm_mp_state state{};
  SSIHV_RETURN_IF_ERROR(sys::GetMpState(fd_.get(), &state));
  return state;
}

absl::Status Vcpu::InjectInterrupt(uint8_t vector) const {
  return sys::Interrupt(fd_.get(), vector);
}
absl::Status Vcpu::InjectNmi() const { return sys::Nmi(fd_.get()); }

absl::StatusOr<uint64_t> Vcpu::GetTscOffset() const {
  uint64_t offset = 0;
  SSIHV_RETURN_IF_ERROR(sys::GetTscOffset(fd_.get(), &offset));
  return offset;
}

absl::Status Vcpu::SetTscOffset(uint64_t offset) const {
  return sys::SetTscOffset(fd_.get(), offset);
}
absl::Status Vcpu::ClearPendingEvents() const {
  kvm_vcpu_events events{};
  // Without the flag KVM keeps its pending-NMI state; with it, zero.
  events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING;
  return sys::SetVcpuEvents(fd_.get(), events);
}

namespace {

std::string FormatSegment(const char* name, const kvm_segment& s) {
  return absl::StrFormat(
      "%-4s sel=%04x base=%016x limit=%08x type=%x s=%u dpl=%u p=%u l=%u "
      "db=%u g=%u\n",
      name, s.selector, s.base, s.limit, s.type, s.s, s.dpl, s.present, s.l,
      s.db, s.g);
}

}  // namespace

std::string Vcpu::DumpState() const {
  std::string out = absl::StrCat("vCPU ", id_, " state:\n");
  absl::StatusOr<kvm_regs> r = GetRegs();
  if (r.ok()) {
    absl::StrAppendFormat(
        &out,
        "rip=%016x rflags=%016x\nrax=%016x rbx=%016x rcx=%016x rdx=%016x\n"
        "rsi=%016x rdi=%016x rsp=%016x rbp=%016x\n"
        "r8 =%016x r9 =%016x r10=%016x r11=%016x\n"
        "r12=%016x r13=%016x r14=%016x r15=%016x\n",
        r->rip, r->rflags, r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
        r->rsp, r->rbp, r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14,
        r->r15);
  } else {
    absl::StrAppend(&out, "(", r.status().message(), ")\n");
  }
  absl::StatusOr<kvm_sregs> s = GetSregs();
  if (s.ok()) {
    absl::StrAppendFormat(&out,
                          "cr0=%016x cr2=%016x cr3=%016x cr4=%016x\n"
                          "efer=%016x apic_base=%016x\n",
                          s->cr0, s->cr2, s->cr3, s->cr4, s->efer,
                          s->apic_base);
    absl::StrAppend(&out, FormatSegment("cs", s->cs),
                    FormatSegment("ds", s->ds), FormatSegment("ss", s->ss),
                    FormatSegment("tr", s->tr));
    absl::StrAppendFormat(
        &out, "gdt base=%016x limit=%04x idt base=%016x limit=%04x\n",
        s->gdt.base, s->gdt.limit, s->idt.base, s->idt.limit);
  } else {
    absl::StrAppend(&out, "(", s.status().message(), ")\n");
  }
  return out;
}

}  // namespace ssihv::kvm
