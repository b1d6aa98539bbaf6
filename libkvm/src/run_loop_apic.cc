// The run loop's side of the user-space irqchip (VcpuRunLoop members; see
// run_loop.h): before each entry, what UserIrqchip::PlanEntry says becomes
// KVM ioctls and kvm_run fields (api.rst: KVM_INTERRUPT, KVM_NMI,
// request_interrupt_window, ready_for_interrupt_injection, if_flag, cr8);
// APIC MSRs come here as KVM_EXIT_X86_RDMSR/WRMSR.
#include <string>

#include "absl/strings/str_cat.h"
#include "kick.h"
#include "ssihv/kvm/run_loop.h"
#include "ssihv/kvm/x86_vcpu.h"
#include "sys/thread_timer.h"

namespace ssihv::kvm {

bool VcpuRunLoop::StartUserIrqchip() {
  // The APIC timer's host timer signals this thread with the kick signal.
  absl::StatusOr<sys::ThreadTimer> timer =
      sys::ThreadTimer::ForCurrentThread(KickSignal());
  if (!timer.ok()) {
    return Fail(absl::Status(
        timer.status().code(),
        absl::StrCat("vCPU ", vcpu_.id(), ": ", timer.status().message())));
  }
  timer_ = std::make_unique<sys::ThreadTimer>(*std::move(timer));
  return true;
}

VcpuRunLoop::Entry VcpuRunLoop::PrepareEntry() {
  // Published before the APIC is looked at: a delivery from here on kicks
  // this thread, whose handler makes the coming KVM_RUN return at once.
  in_guest_.store(true, std::memory_order_seq_cst);
  kvm_run* run = vcpu_.run();
  const EntryPlan plan = irqchip_->PlanEntry(
      index_, run->ready_for_interrupt_injection && run->if_flag);
  if (plan.reset_machine) {
    // INIT to the boot processor: a PC would run its firmware again.
    in_guest_.store(false, std::memory_order_relaxed);
    stop_.Request(StopReason::kReset, absl::OkStatus(),
                  static_cast<int>(vcpu_.id()));
    return Entry::kStop;
  }
  if (!ApplyPlan(plan)) return Entry::kStop;
  if (plan.wait) {
    in_guest_.store(false, std::memory_order_relaxed);
    Publish(irqchip_->activity(index_) == VcpuActivity::kWaitForSipi
                ? VcpuRunState::kWaitingForSipi
                : VcpuRunState::kHalted);
    // A pause ends the wait too: the loop's head then holds at the gate.
    irqchip_->Wait(index_, [this] { return Interrupted(); });
    Publish(VcpuRunState::kRunning);
    return Entry::kAgain;
  }
  return Entry::kEnter;
}

bool VcpuRunLoop::ApplyPlan(const EntryPlan& plan) {
  absl::Status st;
  if (plan.init) st = ResetVcpuForInit(vcpu_);
  if (st.ok() && plan.sipi) st = StartVcpuAtSipi(vcpu_, *plan.sipi);
  if (st.ok() && plan.nmi) {
    st = vcpu_.InjectNmi();
    Bump(stats_.nmis_injected);
  }
  if (st.ok() && plan.vector >= 0) {
    st = vcpu_.InjectInterrupt(static_cast<uint8_t>(plan.vector));
    Bump(stats_.interrupts_injected);
    last_vector_ = plan.vector;
    last_vector_exits_ = stats_.exits;
  }
  if (!st.ok()) {
    return Fail(absl::Status(
        st.code(), absl::StrCat("vCPU ", vcpu_.id(), ": ", st.message())));
  }
  kvm_run* run = vcpu_.run();
  // KVM exits (KVM_EXIT_IRQ_WINDOW_OPEN) once the guest can take it.
  run->request_interrupt_window = plan.want_window ? 1 : 0;
  run->cr8 = plan.cr8;  // KVM loads it as CR8 at entry
  entry_cr8_ = plan.cr8;
  ArmTimer(plan.timer_deadline);
  return true;
}

void VcpuRunLoop::ArmTimer(std::optional<uint64_t> deadline) {
  if (deadline == armed_deadline_) return;
  absl::Status st = timer_->Arm(deadline.value_or(0));
  if (!st.ok()) {
    Fail(absl::Status(st.code(), absl::StrCat("vCPU ", vcpu_.id(),
                                              " APIC timer: ", st.message())));
    return;
  }
  armed_deadline_ = deadline;
}

void VcpuRunLoop::SyncTpr() {
  // The guest may have written CR8 (no exit on AMD; KVM_EXIT_SET_TPR on
  // Intel when lowered): kvm_run.cr8 holds it after every exit.
  const uint8_t cr8 = static_cast<uint8_t>(vcpu_.run()->cr8 & 0xf);
  if (cr8 != entry_cr8_) {
    irqchip_->SyncCr8(index_, cr8);
    entry_cr8_ = cr8;
  }
}

bool VcpuRunLoop::HandleMsr(bool write) {
  Bump(stats_.msr_exits);
  auto& msr = vcpu_.run()->msr;
  bool ok = false;
  if (irqchip_ != nullptr && UserIrqchip::IsApicMsr(msr.index)) {
    uint64_t value = msr.data;
    ok = write ? irqchip_->WriteMsr(index_, msr.index, value)
               : irqchip_->ReadMsr(index_, msr.index, &value);
    if (ok && !write) msr.data = value;
  }
  // Anything else KVM failed (KVM_MSR_EXIT_REASON_INVAL): the guest gets
  // the #GP it would have had without the exit.
  msr.error = ok ? 0 : 1;
  return !stop_.requested();
}

}  // namespace ssihv::kvm
