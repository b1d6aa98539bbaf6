// The --node side of Vmm: creating the cluster node, the guest clock at
// start, and stopping together (docs/VMM.md, "Several processes").
#include <linux/kvm.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "vmm.h"

namespace ssihv::vmm {
namespace {

using kvm::StopReason;

StopKind KindOf(const kvm::StopEvent& e, bool panicked) {
  if (panicked) return StopKind::kPanic;
  switch (e.reason) {
    case StopReason::kPowerOff:
      return StopKind::kPowerOff;
    case StopReason::kReset:
      return StopKind::kReset;
    case StopReason::kTripleFault:
      return StopKind::kTripleFault;
    case StopReason::kError:
      return StopKind::kError;
    case StopReason::kApiStop:
      return StopKind::kApiStop;
    default:
      return StopKind::kStopped;
  }
}

}  // namespace

absl::Status Vmm::CreateNode(const VmmOptions& options) {
  const uint32_t self = *options.node;
  if (self >= layout_.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--node ", self, ": the config has ", layout_.num_nodes(),
                     " nodes (0..", layout_.num_nodes() - 1, ")"));
  }
  if (layout_.VcpusOfNode(0) == 0) {
    return absl::InvalidArgumentError(
        "config: nodes[0].vcpus is 0; with --node, node 0 runs the boot "
        "processor (vCPU 0) next to the console and devices: give it a vCPU");
  }
  if (self == 0) WarnIfNodesNear();
  ClusterNodeOptions o;
  o.fault_threads = options.pager_threads;
  o.service_nice = options.service_nice;
  o.link.thread_nice = options.service_nice;
  o.connect_timeout = absl::Seconds(options.peer_timeout_s);
  o.link.silence_timeout = absl::Seconds(options.peer_silence_s);
  ClusterNodeHooks hooks;
  hooks.remote_stop = [this](uint32_t from, const StopMsg& m) {
    OnRemoteStop(from, m);
  };
  hooks.peer_lost = [this](uint32_t node, const std::string& why,
                           uint64_t lost) { OnPeerLost(node, why, lost); };
  hooks.error = [this](const absl::Status& st) {
    stop_.Request(StopReason::kError, st);
  };
  hooks.clock = [this] { return GuestClock(); };
  hooks.action = [this](ActionKind a) { return LocalAction(a); };
  SSIHV_ASSIGN_OR_RETURN(
      node_, ClusterNode::Create(config_, layout_, self, o, std::move(hooks)));
  // node_ is set before the phase says so: the API reads it from then on.
  phase_.store(VmmPhase::kWaitingForPeers, std::memory_order_release);
  return absl::OkStatus();
}

// Node 0 builds the guest's SLIT. A remote node at distance 30 or less is
// one Linux moves forked, exec'd and woken tasks to as if it were near, and
// here every such move drags the task's pages between processes: in the
// lab, init's report on every CPU took 200 s with 20, 44 s with 100
// (docs/CLUSTER_CONFIG.md). Not an error: the config may mean it (a
// one-host test of the NUMA view).
void Vmm::WarnIfNodesNear() const {
  const auto near = cluster::FirstNearRemoteNode(config_);
  if (!near) return;
  const auto [from, to] = *near;
  base::Log(base::LogLevel::kWarning, "ssihv-vmm: config: distances[", from,
            "][", to, "] is ", config_.distances[from][to],
            ": the guest will move tasks between nodes ", from, " and ", to,
            " as if they were near (Linux balances forks, execs and wake-ups "
            "across NUMA distances up to ",
            cluster::kGuestBalanceDistance,
            "), and each move carries the task's memory between processes; "
            "give remote nodes distances above ",
            cluster::kGuestBalanceDistance,
            " (docs/CLUSTER_CONFIG.md; ssihvctl calibrate measures them)");
}

// Node 0, on the message thread: its kvmclock now (a VM ioctl, which never
// waits for a vCPU) and its vCPUs' TSC offset as read before they ran.
// Until its vCPUs exist the answer is kUnavailable and the asking node
// asks again: node 0 may still be loading the guest into that node's
// memory, whose pages arrive on this very thread, so it must not wait.
absl::StatusOr<ClockMsg> Vmm::GuestClock() const {
  if (!clock_ready_.load(std::memory_order_acquire)) {
    return absl::UnavailableError("node 0's vCPUs are not set up yet");
  }
  SSIHV_ASSIGN_OR_RETURN(kvm_clock_data c, vm_->GetClock());
  ClockMsg m;
  m.kvmclock_ns = c.clock;
  m.flags = c.flags;
  m.realtime_ns = c.realtime;
  m.has_tsc_offset = clock_tsc_offset_.has_value();
  m.tsc_offset = clock_tsc_offset_.value_or(0);
  return m;
}

// Node K > 0, before its vCPUs run: the guest has one clock. kvmclock is
// set from node 0's, with KVM_CLOCK_REALTIME when both hosts can (KVM then
// adds the time since node 0 read it), else corrected by half the round
// trip (as GiantVM does). On the same host (same boot id) the vCPUs also
// take node 0's TSC offset, so every vCPU reads one TSC.
absl::Status Vmm::SyncClock() {
  absl::Duration rtt;
  absl::StatusOr<ClockMsg> fetched = node_->FetchClock(&rtt);
  // kUnavailable: node 0 is still building (or the link is down, which the
  // failure detector turns into a stop); the peers' start-up bound applies.
  const absl::Time deadline = absl::Now() + node_->connect_timeout();
  while (fetched.status().code() == absl::StatusCode::kUnavailable &&
         absl::Now() < deadline && !stop_.requested()) {
    absl::SleepFor(absl::Milliseconds(10));
    fetched = node_->FetchClock(&rtt);
  }
  SSIHV_RETURN_IF_ERROR(fetched.status());
  const ClockMsg& m = *fetched;
  SSIHV_ASSIGN_OR_RETURN(kvm_clock_data mine, vm_->GetClock());
  kvm_clock_data set{};
  std::string how;
  if ((m.flags & KVM_CLOCK_REALTIME) && (mine.flags & KVM_CLOCK_REALTIME)) {
    set.clock = m.kvmclock_ns;
    set.realtime = m.realtime_ns;
    set.flags = KVM_CLOCK_REALTIME;
    how = "realtime";
  } else {
    set.clock = m.kvmclock_ns + absl::ToInt64Nanoseconds(rtt) / 2;
    how = absl::StrCat("half the round trip of ", absl::FormatDuration(rtt));
  }
  SSIHV_RETURN_IF_ERROR(vm_->SetClock(set));
  if (HostBootId() == m.boot_id && m.has_tsc_offset) {
    for (const kvm::Vcpu& v : vcpus_) {
      SSIHV_RETURN_IF_ERROR(v.SetTscOffset(m.tsc_offset));
    }
    absl::StrAppend(&how, "; TSC offset of node 0's vCPUs");
  }
  base::Log(base::LogLevel::kInfo, "ssihv-vmm: node ", node_->self(),
            ": guest clock from node 0 (", how, ")");
  return absl::OkStatus();
}

void Vmm::OnRemoteStop(uint32_t from, const StopMsg& m) {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (!remote_stop_ && !stop_.requested()) remote_stop_ = {from, m};
  }
  const absl::Status why(absl::StatusCode::kAborted,
                         absl::StrCat("node ", from, ": ", StopKindName(m.kind),
                                      m.text.empty() ? "" : ": ", m.text));
  switch (m.kind) {
    case StopKind::kPowerOff:
      stop_.Request(StopReason::kPowerOff, absl::OkStatus(), m.vcpu);
      break;
    case StopKind::kReset:
      stop_.Request(StopReason::kReset, absl::OkStatus(), m.vcpu);
      break;
    case StopKind::kTripleFault:
      stop_.Request(StopReason::kTripleFault, absl::OkStatus(), m.vcpu);
      break;
    case StopKind::kPanic:
      remote_panic_ = true;
      stop_.Request(StopReason::kReset, absl::OkStatus(), m.vcpu);
      break;
    case StopKind::kError:
      stop_.Request(StopReason::kError, why, m.vcpu);
      break;
    case StopKind::kStopped:
    case StopKind::kPeerLost:
      stop_.Request(StopReason::kStopRequested, why, m.vcpu);
      break;
    case StopKind::kApiStop:
      // Like a power-off: no error, exit 0 (the log says who asked).
      base::Log(base::LogLevel::kInfo, "ssihv-vmm: node ", node_->self(),
                ": api stop from node ", from);
      stop_.Request(StopReason::kApiStop, absl::OkStatus(), m.vcpu);
      break;
  }
}

void Vmm::OnPeerLost(uint32_t node, const std::string& why,
                     uint64_t lost_pages) {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (!lost_node_ && !stop_.requested()) lost_node_ = node;
  }
  lost_cv_.notify_all();
  stop_.Request(StopReason::kStopRequested,
                absl::UnavailableError(absl::StrCat(
                    "node ", node, " was lost (", why, "); ", lost_pages,
                    " pages of guest memory had their only copy there")));
}

// The latch's listener: a stop that started here goes to every peer.
void Vmm::TellPeersWeStopped() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (remote_stop_) return;  // they know: one of them told us
  }
  const kvm::StopEvent e = stop_.event();
  StopMsg m;
  m.kind = lost_node_ ? StopKind::kPeerLost : KindOf(e, guest_panicked());
  m.vcpu = e.vcpu;
  m.text = std::string(e.status.message());
  node_->BroadcastStop(m);
}

int Vmm::BuildFailureStatus(const absl::Status& error) const {
  std::unique_lock<std::mutex> lock(stop_mu_);
  if (node_ != nullptr && absl::IsUnavailable(error)) {
    // The detector declares a peer lost once its connection has been down
    // for down_timeout; a heartbeat period and a margin on top.
    const absl::Duration verdict =
        NodeLinkOptions().down_timeout + absl::Seconds(2);
    lost_cv_.wait_for(lock, absl::ToChronoNanoseconds(verdict),
                      [this] { return lost_node_.has_value(); });
  }
  return lost_node_ ? kExitPeerLost : kExitSetupError;
}

int Vmm::ExitStatus() const {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (lost_node_ ||
        (remote_stop_ && remote_stop_->second.kind == StopKind::kPeerLost)) {
      return kExitPeerLost;
    }
  }
  switch (event_.reason) {
    case StopReason::kReset:
    case StopReason::kPowerOff:
    case StopReason::kTripleFault:
      return guest_panicked() ? kExitGuestPanic : kExitGuestDone;
    case StopReason::kApiStop:
      return kExitGuestDone;  // asked for, like a power-off
    case StopReason::kStopRequested:
      return kExitInterrupted;
    default:
      return kExitVmmError;
  }
}

}  // namespace ssihv::vmm
