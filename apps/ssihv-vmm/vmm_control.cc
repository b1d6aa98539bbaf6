// The Vmm's side of the control API (vmm_api.h reads it): pause, resume
// and stop here and across the cluster, and thread-safe views of the vCPUs.
#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "vmm.h"

namespace ssihv::vmm {

std::string Vmm::PhaseReason() const {
  switch (phase()) {
    case VmmPhase::kFailed:
      return build_error_;  // written before the phase was published
    case VmmPhase::kStopping: {
      const kvm::StopEvent e = stop_.event();
      std::string why = kvm::StopReasonName(e.reason);
      if (!e.status.ok()) absl::StrAppend(&why, ": ", e.status.message());
      return why;
    }
    default:
      return "";
  }
}

std::vector<kvm::VcpuThreadInfo> Vmm::VcpuSnapshot() const {
  if (!ready()) return {};
  return threads_->Snapshot();
}

uint32_t Vmm::CurrentApicId(uint32_t vcpu) const {
  if (apic_ && vcpu < apic_->num_vcpus()) {
    const kvm::ApicRoutingEntry e = apic_->routing_table()[vcpu];
    return e.x2apic ? e.x2apic_id : e.xapic_id;
  }
  // KVM's irqchip: the ID the vCPU was configured with (SetUpVcpus).
  return vcpu;
}

absl::Status Vmm::LocalAction(ActionKind action) {
  const VmmPhase p = phase();
  if (action == ActionKind::kStop) {
    if (p == VmmPhase::kFailed) {
      return absl::FailedPreconditionError("stop: the VM failed to build");
    }
    // Like a power-off: the guest stops, the process exits 0. A stop that
    // is already under way stays what it was.
    base::Log(base::LogLevel::kInfo, "ssihv-vmm: api stop");
    stop_.Request(kvm::StopReason::kApiStop);
    return absl::OkStatus();
  }
  if (p != VmmPhase::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat(
        ActionKindName(action), ": the guest is not running (",
        p == VmmPhase::kStopping ? "stopping" : "not started", ")"));
  }
  if (action == ActionKind::kResume) {
    ThawGuestClock();
    threads_->Resume();
    return absl::OkStatus();
  }
  SSIHV_RETURN_IF_ERROR(threads_->Pause(kPauseTimeout));
  FreezeGuestClock();
  return absl::OkStatus();
}

// A paused guest's clock stands still, as with QEMU's stop/cont: kvmclock
// is read once every vCPU is held and written back before they run again,
// so the guest does not see the pause as lost time (no jump of its clock,
// no soft-lockup report after a long pause). On several nodes each freezes
// its own clock; their pauses are milliseconds apart, and so is the skew a
// resume leaves between them. The TSC itself keeps counting, as it does on
// QEMU.
void Vmm::FreezeGuestClock() {
  std::lock_guard<std::mutex> lock(clock_mu_);
  if (paused_clock_) return;  // paused twice: the first reading stands
  absl::StatusOr<kvm_clock_data> c = vm_->GetClock();
  if (!c.ok()) {
    base::Log(base::LogLevel::kWarning,
              "ssihv-vmm: pause: ", c.status().message(),
              "; the guest clock keeps running");
    return;
  }
  paused_clock_ = *c;
}

void Vmm::ThawGuestClock() {
  std::lock_guard<std::mutex> lock(clock_mu_);
  if (!paused_clock_) return;
  kvm_clock_data set{};
  set.clock = paused_clock_->clock;
  if (absl::Status st = vm_->SetClock(set); !st.ok()) {
    base::Log(base::LogLevel::kWarning, "ssihv-vmm: resume: ", st.message(),
              "; the guest sees the pause as elapsed time");
  }
  paused_clock_.reset();
}

std::vector<std::pair<uint32_t, absl::Status>> Vmm::ClusterAction(
    ActionKind action) {
  std::lock_guard<std::mutex> lock(action_mu_);
  const uint32_t self = node_ ? node_->self() : 0;
  std::vector<std::pair<uint32_t, absl::Status>> out;
  if (action == ActionKind::kStop) {
    // The others first: our own stop would reach them as a StopMsg anyway,
    // but then their answers would race with our transport's shutdown.
    if (node_ && ready()) out = node_->ForwardAction(action, kForwardTimeout);
    out.insert(out.begin(), {self, LocalAction(action)});
    return out;
  }
  absl::Status mine = LocalAction(action);
  const bool refused = absl::IsFailedPrecondition(mine);
  // A guest that is not running here is not running anywhere: nothing is
  // forwarded (the API answers 409 with this node's reason).
  if (node_ && ready() && !refused) {
    out = node_->ForwardAction(action, kForwardTimeout);
  }
  out.insert(out.begin(), {self, std::move(mine)});
  return out;
}

}  // namespace ssihv::vmm
