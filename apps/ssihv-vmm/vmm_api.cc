#include "vmm_api.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ssihv/control/metrics.h"
#include "ssihv/pager/dsm_node.h"

namespace ssihv::vmm {
namespace {

// libpager counts in its own fixed buckets; Prometheus shows libcontrol's.
// They must be the same bounds (seconds vs ns).
constexpr bool SameBounds() {
  if (pager::kFaultBucketBoundsNs.size() !=
      control::kLatencyBucketBounds.size()) {
    return false;
  }
  for (size_t i = 0; i < pager::kFaultBucketBoundsNs.size(); ++i) {
    const double ns = control::kLatencyBucketBounds[i] * 1e9;
    const double d = ns - static_cast<double>(pager::kFaultBucketBoundsNs[i]);
    if (d > 1e-3 || d < -1e-3) return false;
  }
  return true;
}
static_assert(SameBounds(),
              "libpager's kFaultBucketBoundsNs must match libcontrol's "
              "kLatencyBucketBounds");

}  // namespace

// ---- The mapping ----

control::NodeHealth HealthOf(VmmPhase phase, bool paused,
                             const std::string& reason, double uptime_s) {
  control::NodeHealth h;
  h.uptime_s = uptime_s;
  switch (phase) {
    case VmmPhase::kBuilding:
    case VmmPhase::kReady:
      h.status = control::NodeStatus::kStarting;
      break;
    case VmmPhase::kWaitingForPeers:
      h.status = control::NodeStatus::kWaitingForPeers;
      break;
    case VmmPhase::kRunning:
      h.status =
          paused ? control::NodeStatus::kPaused : control::NodeStatus::kRunning;
      break;
    case VmmPhase::kStopping:
      h.status = control::NodeStatus::kStopping;
      h.reason = reason;
      break;
    case VmmPhase::kFailed:
      h.status = control::NodeStatus::kFailed;
      h.reason = reason;
      break;
  }
  return h;
}

control::VcpuState VcpuStateOf(kvm::VcpuRunState state) {
  switch (state) {
    case kvm::VcpuRunState::kRunning:
      return control::VcpuState::kRunning;
    case kvm::VcpuRunState::kHalted:
      return control::VcpuState::kHalted;
    case kvm::VcpuRunState::kWaitingForSipi:
      return control::VcpuState::kWaitingForSipi;
    case kvm::VcpuRunState::kPaused:
      return control::VcpuState::kPaused;
    case kvm::VcpuRunState::kNotStarted:
    case kvm::VcpuRunState::kStopped:
      break;
  }
  return control::VcpuState::kStopped;  // no thread runs it (yet, or now)
}

std::vector<control::NamedCount> ExitsOf(const kvm::RunLoopStats& s) {
  // mmio_exits counts the APIC page's accesses too; each is shown once.
  const uint64_t device_mmio =
      s.mmio_exits >= s.apic_mmio_exits ? s.mmio_exits - s.apic_mmio_exits : 0;
  return {{"io", s.io_exits},
          {"mmio", device_mmio},
          {"apic_mmio", s.apic_mmio_exits},
          {"hlt", s.hlt_exits},
          {"msr", s.msr_exits},
          {"irq_window", s.irq_window_exits},
          {"intr", s.signal_exits}};
}

std::vector<control::FaultMetrics> FaultsOf(const pager::PagerStats& s) {
  std::vector<control::FaultMetrics> out;
  for (size_t k = 0; k < pager::kNumFaultKinds; ++k) {
    const pager::FixedBuckets& b = s.buckets[k];
    control::FaultMetrics f;
    f.kind =
        std::string(pager::FaultKindName(static_cast<pager::FaultKind>(k)));
    // The count of the buckets, not s.faults: one snapshot for both.
    f.faults = b.count;
    f.latency.bounds.assign(control::kLatencyBucketBounds.begin(),
                            control::kLatencyBucketBounds.end());
    f.latency.counts.assign(b.le.begin(), b.le.end());
    f.latency.count = b.count;
    f.latency.sum = static_cast<double>(b.sum_ns) / 1e9;
    out.push_back(std::move(f));
  }
  return out;
}

control::PeerInfo PeerOf(uint32_t node, const PeerLinkStats& s,
                         const std::string& transport) {
  control::PeerInfo p;
  p.node = node;
  const bool heard = s.last_heard_s_ago >= 0;
  if (s.lost || (!s.up && heard)) {
    p.liveness = control::PeerLiveness::kLost;
  } else if (s.up) {
    p.liveness = control::PeerLiveness::kAlive;
  } else {
    p.liveness = control::PeerLiveness::kWaiting;
  }
  if (heard) p.last_heard_s = s.last_heard_s_ago;
  if (p.liveness == control::PeerLiveness::kAlive) p.transport = transport;
  return p;
}

control::PeerMetrics PeerMetricsOf(uint32_t node, const PeerLinkStats& s,
                                   const rdmax::PeerTransportStats& t,
                                   const pager::DsmRequestsServed& served) {
  control::PeerMetrics m;
  m.peer = node;
  m.messages_sent = t.messages_sent;
  m.messages_received = t.messages_received;
  m.bytes_sent = t.bytes_sent;
  m.bytes_received = t.bytes_received;
  m.errors = t.errors;
  // Only node 0 has devices: io_forwarded is what it did for us,
  // io_served what we did for it; the MMIO ones are counted apart.
  m.mmio_forwarded = std::min(s.mmio_forwarded, s.io_forwarded);
  m.pio_forwarded = s.io_forwarded - m.mmio_forwarded;
  m.io_forwarded_seconds = static_cast<double>(s.io_ns_total) / 1e9;
  m.mmio_served = std::min(s.mmio_served, s.io_served);
  m.pio_served = s.io_served - m.mmio_served;
  m.ipis_sent = s.interrupts_sent;
  m.ipis_received = s.interrupts_received;
  m.fault_reads_served = served.reads;
  m.fault_writes_served = served.writes;
  return m;
}

std::vector<control::NamedCount> PagesOf(const std::array<uint64_t, 4>& n) {
  std::vector<control::NamedCount> out;
  for (size_t i = 0; i < n.size(); ++i) {
    out.push_back({pager::kDsmPageStateNames[i], n[i]});
  }
  return out;
}

ActionKind ActionOf(control::VmAction action) {
  switch (action) {
    case control::VmAction::kPause:
      return ActionKind::kPause;
    case control::VmAction::kResume:
      return ActionKind::kResume;
    case control::VmAction::kStop:
      break;
  }
  return ActionKind::kStop;
}

absl::StatusOr<std::vector<control::NodeActionResult>> ResultsOf(
    std::vector<std::pair<uint32_t, absl::Status>> results, uint32_t self) {
  std::vector<control::NodeActionResult> out;
  for (auto& [node, status] : results) {
    // This node refused: nothing was attempted anywhere (the API's 409).
    if (node == self && absl::IsFailedPrecondition(status)) return status;
    out.push_back({node, std::move(status)});
  }
  return out;
}

// ---- VmmApi ----

VmmApi::VmmApi(Vmm* vmm, std::optional<uint32_t> node)
    : vmm_(vmm),
      self_(node.value_or(0)),
      cluster_(node.has_value()),
      start_(std::chrono::steady_clock::now()) {}

control::NodeHealth VmmApi::Health() const {
  const double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  const VmmPhase phase = vmm_->phase();
  return HealthOf(phase, vmm_->paused(), vmm_->PhaseReason(), uptime);
}

std::vector<control::PeerInfo> VmmApi::Peers() const {
  std::vector<control::PeerInfo> out;
  const ClusterNode* node = vmm_->cluster_node();
  const uint32_t nodes = vmm_->layout().num_nodes();
  if (!cluster_) return out;  // one process: no peers
  if (node == nullptr) {
    // --node before the link exists (or after a failed start): every other
    // node is one this node has not heard from.
    for (uint32_t n = 0; n < nodes; ++n) {
      control::PeerInfo waiting;
      waiting.node = n;
      if (n != self_) out.push_back(std::move(waiting));
    }
    return out;
  }
  const std::vector<PeerLinkStats> stats = node->LinkStats();
  for (uint32_t n = 0; n < stats.size(); ++n) {
    if (n != self_) out.push_back(PeerOf(n, stats[n], node->transport_name()));
  }
  return out;
}

std::vector<control::VcpuInfo> VmmApi::Vcpus() const {
  std::vector<control::VcpuInfo> out;
  for (const kvm::VcpuThreadInfo& v : vmm_->VcpuSnapshot()) {
    out.push_back({v.id, vmm_->CurrentApicId(v.id), VcpuStateOf(v.state),
                   ExitsOf(v.stats)});
  }
  return out;
}

absl::StatusOr<control::PageInfo> VmmApi::Page(uint64_t page_gpa) const {
  if (const ClusterNode* node = vmm_->cluster_node()) {
    absl::StatusOr<pager::DsmPageView> v = node->dsm().InspectPage(page_gpa);
    if (!v.ok()) return v.status();
    control::PageInfo info{v->state, std::nullopt};
    if (v->directory) {
      const pager::DsmDirectoryView& d = *v->directory;
      info.directory =
          control::DirectoryInfo{d.state, d.owner, d.sharers, d.busy};
    }
    return info;
  }
  if (const GuestRam* ram = vmm_->guest_ram()) {
    // One process: the pager's view; every page is this process's alone.
    std::optional<bool> mapped = ram->Mapped(page_gpa);
    if (!mapped) {
      return absl::NotFoundError(
          absl::StrCat("GPA 0x", absl::Hex(page_gpa), " is not guest RAM"));
    }
    return control::PageInfo{*mapped ? "modified" : "invalid", std::nullopt};
  }
  return absl::UnavailableError("the node has no guest memory yet (starting)");
}

std::vector<control::PageTraffic> VmmApi::HotPages(size_t limit) const {
  std::vector<control::PageTraffic> out;
  if (const ClusterNode* node = vmm_->cluster_node()) {
    for (const pager::DsmPageTraffic& p : node->dsm().HottestPages(limit)) {
      out.push_back({p.gpa, p.reads, p.writes, p.invalidations, p.transfers});
    }
  }
  return out;
}

control::MetricsSnapshot VmmApi::Metrics() const {
  control::MetricsSnapshot m;
  kvm::RunLoopStats exits;
  for (const kvm::VcpuThreadInfo& v : vmm_->VcpuSnapshot()) exits += v.stats;
  m.vcpu_exits = ExitsOf(exits);
  pager::PagerStats pager;
  std::array<uint64_t, 4> pages{};
  if (const ClusterNode* node = vmm_->cluster_node()) {
    pager = node->PagerStatistics();
    pages = node->dsm().PagesByState();
    const std::vector<PeerLinkStats> stats = node->LinkStats();
    const std::vector<rdmax::PeerTransportStats> traffic = node->TrafficStats();
    const std::vector<pager::DsmRequestsServed> served =
        node->dsm().RequestsServed();
    for (uint32_t n = 0;
         n < stats.size() && n < traffic.size() && n < served.size(); ++n) {
      if (n != self_) {
        m.peers.push_back(PeerMetricsOf(n, stats[n], traffic[n], served[n]));
      }
    }
  } else if (const GuestRam* ram = vmm_->guest_ram()) {
    pager = ram->Stats();
    const uint64_t mapped = ram->MappedPages();
    pages[0] = ram->TotalPages() - std::min(mapped, ram->TotalPages());
    pages[2] = mapped;
  }
  m.faults = FaultsOf(pager);
  m.dsm_pages = PagesOf(pages);
  return m;
}

absl::StatusOr<std::vector<control::NodeActionResult>> VmmApi::ClusterAction(
    control::VmAction action) {
  const ActionKind kind = ActionOf(action);
  std::vector<std::pair<uint32_t, absl::Status>> results =
      action_ ? action_(kind) : vmm_->ClusterAction(kind);
  return ResultsOf(std::move(results), self_);
}

}  // namespace ssihv::vmm
