// The VmNode adapter without KVM: the mapping functions on hand-made VMM
// values, and a VmmApi over a Vmm that is not built (what the API shows
// while a node starts), with a fake cluster action.
#include "vmm_api.h"

#include <catch2/catch.hpp>

#include "ssihv/cluster/config.h"
#include "ssihv/control/metrics.h"

namespace ssihv::vmm {
namespace {

uint64_t CountOf(const std::vector<control::NamedCount>& v,
                 const std::string& name) {
  for (const control::NamedCount& c : v) {
    if (c.name == name) return c.value;
  }
  FAIL("no count named " << name);
  return 0;
}

TEST_CASE("health follows the phase; paused only while running") {
  using control::NodeStatus;
  CHECK(HealthOf(VmmPhase::kBuilding, false, "", 1).status ==
        NodeStatus::kStarting);
  CHECK(HealthOf(VmmPhase::kReady, false, "", 1).status ==
        NodeStatus::kStarting);
  CHECK(HealthOf(VmmPhase::kWaitingForPeers, false, "", 1).status ==
        NodeStatus::kWaitingForPeers);
  CHECK(HealthOf(VmmPhase::kRunning, false, "", 1).status ==
        NodeStatus::kRunning);
  CHECK(HealthOf(VmmPhase::kRunning, true, "", 1).status ==
        NodeStatus::kPaused);
  const control::NodeHealth stopping =
      HealthOf(VmmPhase::kStopping, true, "api stop", 2.5);
  CHECK(stopping.status == NodeStatus::kStopping);
  CHECK(stopping.reason == "api stop");
  CHECK(stopping.uptime_s == 2.5);
  const control::NodeHealth failed =
      HealthOf(VmmPhase::kFailed, false, "no hello from node 1", 3);
  CHECK(failed.status == NodeStatus::kFailed);
  CHECK(failed.reason == "no hello from node 1");
  // A reason is only shown where the API documents one.
  CHECK(HealthOf(VmmPhase::kRunning, false, "stale", 1).reason.empty());
}

TEST_CASE("vCPU states and exits by reason") {
  using control::VcpuState;
  CHECK(VcpuStateOf(kvm::VcpuRunState::kRunning) == VcpuState::kRunning);
  CHECK(VcpuStateOf(kvm::VcpuRunState::kHalted) == VcpuState::kHalted);
  CHECK(VcpuStateOf(kvm::VcpuRunState::kWaitingForSipi) ==
        VcpuState::kWaitingForSipi);
  CHECK(VcpuStateOf(kvm::VcpuRunState::kPaused) == VcpuState::kPaused);
  CHECK(VcpuStateOf(kvm::VcpuRunState::kStopped) == VcpuState::kStopped);
  CHECK(VcpuStateOf(kvm::VcpuRunState::kNotStarted) == VcpuState::kStopped);

  kvm::RunLoopStats s;
  s.io_exits = 10;
  s.mmio_exits = 7;  // 3 of them the APIC page's
  s.apic_mmio_exits = 3;
  s.hlt_exits = 2;
  s.msr_exits = 5;
  s.irq_window_exits = 1;
  s.signal_exits = 4;
  const std::vector<control::NamedCount> exits = ExitsOf(s);
  CHECK(exits.size() == 7);
  CHECK(CountOf(exits, "io") == 10);
  CHECK(CountOf(exits, "mmio") == 4);
  CHECK(CountOf(exits, "apic_mmio") == 3);
  CHECK(CountOf(exits, "hlt") == 2);
  CHECK(CountOf(exits, "msr") == 5);
  CHECK(CountOf(exits, "irq_window") == 1);
  CHECK(CountOf(exits, "intr") == 4);
  // Zeros are listed too (a fixed schema for Prometheus).
  CHECK(ExitsOf({}).size() == 7);
}

TEST_CASE("fault histograms carry libpager's exact buckets") {
  pager::LatencyHistogram remote;
  remote.Record(30'000);  // 30 us: <= 5e-5
  remote.Record(30'000);
  remote.Record(3'000'000);  // 3 ms: <= 5e-3
  pager::PagerStats s;
  s.buckets[static_cast<size_t>(pager::FaultKind::kRemoteRead)] =
      remote.Buckets();
  const std::vector<control::FaultMetrics> f = FaultsOf(s);
  REQUIRE(f.size() == pager::kNumFaultKinds);
  const control::FaultMetrics& rr = f[2];
  CHECK(rr.kind == "remote_read");
  CHECK(rr.faults == 3);
  REQUIRE(rr.latency.bounds.size() == control::kLatencyBucketBounds.size());
  REQUIRE(rr.latency.counts.size() == rr.latency.bounds.size());
  CHECK(rr.latency.count == 3);
  CHECK(rr.latency.sum == Approx(0.00306));
  for (size_t i = 0; i < rr.latency.bounds.size(); ++i) {
    const double b = rr.latency.bounds[i];
    const uint64_t expect = (b >= 5e-3) ? 3 : (b >= 5e-5 ? 2 : 0);
    CHECK(rr.latency.counts[i] == expect);
  }
  CHECK(f[0].kind == "local_zero");
  CHECK(f[0].faults == 0);
}

TEST_CASE("peers: liveness from the link; counters mapped") {
  PeerLinkStats never;  // never connected
  CHECK(PeerOf(1, never, "tcp").liveness == control::PeerLiveness::kWaiting);
  CHECK_FALSE(PeerOf(1, never, "tcp").last_heard_s.has_value());
  CHECK(PeerOf(1, never, "tcp").transport.empty());

  PeerLinkStats up;
  up.up = true;
  up.last_heard_s_ago = 0.5;
  const control::PeerInfo alive = PeerOf(2, up, "tcp");
  CHECK(alive.node == 2);
  CHECK(alive.liveness == control::PeerLiveness::kAlive);
  CHECK(alive.last_heard_s == 0.5);
  CHECK(alive.transport == "tcp");

  PeerLinkStats down = up;  // was connected, is not
  down.up = false;
  CHECK(PeerOf(2, down, "tcp").liveness == control::PeerLiveness::kLost);
  PeerLinkStats lost = up;  // declared dead, even if a socket is still up
  lost.lost = true;
  CHECK(PeerOf(2, lost, "tcp").liveness == control::PeerLiveness::kLost);
  CHECK(PeerOf(2, lost, "tcp").transport.empty());

  PeerLinkStats c;
  c.interrupts_sent = 9;
  c.interrupts_received = 8;
  c.io_forwarded = 7;
  c.mmio_forwarded = 2;
  c.io_served = 6;
  c.mmio_served = 1;
  rdmax::PeerTransportStats t;
  t.messages_sent = 11;
  t.messages_received = 12;
  t.bytes_sent = 13;
  t.bytes_received = 14;
  t.errors = 15;
  const control::PeerMetrics m =
      PeerMetricsOf(3, c, t, pager::DsmRequestsServed{.reads = 16, .writes = 17});
  CHECK(m.peer == 3);
  CHECK(m.ipis_sent == 9);
  CHECK(m.ipis_received == 8);
  CHECK(m.pio_forwarded == 5);
  CHECK(m.mmio_forwarded == 2);
  CHECK(m.pio_served == 5);
  CHECK(m.mmio_served == 1);
  CHECK(m.messages_sent == 11);  // librdmax's per-peer counters
  CHECK(m.messages_received == 12);
  CHECK(m.bytes_sent == 13);
  CHECK(m.bytes_received == 14);
  CHECK(m.errors == 15);
  CHECK(m.fault_reads_served == 16);  // the DSM's home side
  CHECK(m.fault_writes_served == 17);
}

TEST_CASE("pages by state and action results") {
  const std::vector<control::NamedCount> p = PagesOf({5, 6, 7, 0});
  CHECK(CountOf(p, "invalid") == 5);
  CHECK(CountOf(p, "shared") == 6);
  CHECK(CountOf(p, "modified") == 7);
  CHECK(CountOf(p, "lost") == 0);

  CHECK(ActionOf(control::VmAction::kPause) == ActionKind::kPause);
  CHECK(ActionOf(control::VmAction::kResume) == ActionKind::kResume);
  CHECK(ActionOf(control::VmAction::kStop) == ActionKind::kStop);

  auto ok = ResultsOf({{1, absl::OkStatus()},
                       {0, absl::OkStatus()},
                       {2, absl::DeadlineExceededError("node 2 did not "
                                                       "answer")}},
                      1);
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 3);
  CHECK((*ok)[2].node == 2);
  CHECK(absl::IsDeadlineExceeded((*ok)[2].status));
  // This node refusing (the guest does not run) is the API's 409.
  auto refused =
      ResultsOf({{0, absl::FailedPreconditionError("not running")}}, 0);
  CHECK(absl::IsFailedPrecondition(refused.status()));
  // Another node refusing is that node's result, not a refusal here.
  auto theirs = ResultsOf(
      {{0, absl::OkStatus()}, {1, absl::FailedPreconditionError("x")}}, 0);
  REQUIRE(theirs.ok());
  CHECK(absl::IsFailedPrecondition((*theirs)[1].status));
}

TEST_CASE("VmmApi over a Vmm that is not built yet") {
  // The default config has 2 nodes.
  std::unique_ptr<Vmm> vmm = Vmm::Prepare(cluster::DefaultClusterConfig());
  VmmApi one(vmm.get(), std::nullopt);
  CHECK(one.Health().status == control::NodeStatus::kStarting);
  CHECK(one.Health().uptime_s >= 0);
  CHECK(one.Vcpus().empty());
  CHECK(one.Peers().empty());  // one process: no peers
  CHECK(absl::IsUnavailable(one.Page(0x1000).status()));
  const control::MetricsSnapshot m = one.Metrics();
  CHECK(m.faults.size() == pager::kNumFaultKinds);
  CHECK(m.vcpu_exits.size() == 7);
  CHECK(m.peers.empty());
  CHECK(CountOf(m.dsm_pages, "modified") == 0);

  VmmApi node1(vmm.get(), 1);
  const std::vector<control::PeerInfo> peers = node1.Peers();
  REQUIRE(peers.size() == 1);
  CHECK(peers[0].node == 0);
  CHECK(peers[0].liveness == control::PeerLiveness::kWaiting);

  // The action goes where it is told; a refusal here is a status error.
  std::vector<ActionKind> seen;
  node1.set_action([&](ActionKind a) {
    seen.push_back(a);
    return std::vector<std::pair<uint32_t, absl::Status>>{
        {1, absl::OkStatus()}, {0, absl::UnavailableError("node 0 lost")}};
  });
  auto r = node1.ClusterAction(control::VmAction::kResume);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK(r->at(0).status.ok());
  CHECK(absl::IsUnavailable(r->at(1).status));
  CHECK(seen == std::vector<ActionKind>{ActionKind::kResume});

  // The real Vmm refuses a pause before the guest runs (no KVM touched).
  VmmApi real(vmm.get(), std::nullopt);
  CHECK(absl::IsFailedPrecondition(
      real.ClusterAction(control::VmAction::kPause).status()));
}

}  // namespace
}  // namespace ssihv::vmm
