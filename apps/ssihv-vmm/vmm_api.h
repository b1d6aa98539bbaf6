// VmmApi: control::VmNode over a running ssihv-vmm (the control plane's
// view of this node: docs/API.md). Every read is a snapshot of atomics or
// a short critical section the vCPU threads never hold for long: the API
// server calls it from its own threads while the guest runs.
//
// The mapping from the VMM's types to the API's is in free functions below,
// tested without KVM (tests/vmm_api_test.cc).
#ifndef SSIHV_APPS_VMM_VMM_API_H_
#define SSIHV_APPS_VMM_VMM_API_H_

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "node_link.h"
#include "ssihv/control/vm_node.h"
#include "ssihv/kvm/run_loop.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/pager/stats.h"
#include "ssihv/rdmax/transport.h"
#include "vmm.h"

namespace ssihv::vmm {

class VmmApi final : public control::VmNode {
 public:
  /// `vmm` must outlive the API server that serves this. `node`: --node K
  /// (nullopt for a one-process VM, which is node 0 and has no peers).
  VmmApi(Vmm* vmm, std::optional<uint32_t> node);

  control::NodeHealth Health() const override;
  std::vector<control::PeerInfo> Peers() const override;
  std::vector<control::VcpuInfo> Vcpus() const override;
  absl::StatusOr<control::PageInfo> Page(uint64_t page_gpa) const override;
  control::MetricsSnapshot Metrics() const override;
  std::vector<control::PageTraffic> HotPages(size_t limit) const override;
  absl::StatusOr<std::vector<control::NodeActionResult>> ClusterAction(
      control::VmAction action) override;

  /// Where ClusterAction goes (the Vmm; tests give another function).
  using ActionFn =
      std::function<std::vector<std::pair<uint32_t, absl::Status>>(ActionKind)>;
  void set_action(ActionFn fn) { action_ = std::move(fn); }

 private:
  Vmm* const vmm_;
  const uint32_t self_;
  const bool cluster_;  // --node
  const std::chrono::steady_clock::time_point start_;
  ActionFn action_;
};

// ---- The mapping (pure) ----

/// /health's status and reason for a Vmm in `phase`.
control::NodeHealth HealthOf(VmmPhase phase, bool paused,
                             const std::string& reason, double uptime_s);
control::VcpuState VcpuStateOf(kvm::VcpuRunState state);
/// Exits by reason, every reason the run loop counts, zeros included:
/// "io", "mmio" (device MMIO), "apic_mmio" (the user irqchip's APIC page),
/// "hlt", "msr", "irq_window", "intr" (a kick or a signal).
std::vector<control::NamedCount> ExitsOf(const kvm::RunLoopStats& s);
/// Per-kind fault counts and latency histograms over kLatencyBucketBounds.
std::vector<control::FaultMetrics> FaultsOf(const pager::PagerStats& s);
/// A peer's liveness and transport from the node link's view of it.
control::PeerInfo PeerOf(uint32_t node, const PeerLinkStats& s,
                         const std::string& transport);
/// One peer's counters as the API's: the node link's (interrupts are the
/// IPIs, forwarded I/O), the transport's traffic with it (`t`) and the
/// DSM's requests from it served here as home.
control::PeerMetrics PeerMetricsOf(uint32_t node, const PeerLinkStats& s,
                                   const rdmax::PeerTransportStats& t,
                                   const pager::DsmRequestsServed& served);
/// Pages by state from counts indexed like pager::kDsmPageStateNames.
std::vector<control::NamedCount> PagesOf(const std::array<uint64_t, 4>& n);
/// The API's action as the node link's, and the results as the API's.
ActionKind ActionOf(control::VmAction action);
absl::StatusOr<std::vector<control::NodeActionResult>> ResultsOf(
    std::vector<std::pair<uint32_t, absl::Status>> results, uint32_t self);

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_VMM_API_H_
