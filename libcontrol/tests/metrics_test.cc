// The families of /metrics and the summary ssihvctl reads back from them.
#include "ssihv/control/metrics.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <map>

#include "fake_vm_node.h"

namespace ssihv::control {
namespace {

using testing::FakeVmNode;
using testing::HistogramAt;

std::vector<ParsedSample> Exposed(const FakeVmNode& node, uint32_t self) {
  auto text = WriteTextExposition(
      MetricFamiliesOf(self, 2, node.Health(), node.Peers(), node.Metrics()));
  REQUIRE(text.ok());
  auto samples = ParseTextExposition(*text);
  REQUIRE(samples.ok());
  return *samples;
}

// The value of the sample `name` whose labels include all of `labels`.
double ValueOf(const std::vector<ParsedSample>& samples,
               const std::string& name,
               const std::map<std::string, std::string>& labels) {
  for (const ParsedSample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      match = match && s.LabelValue(k) != nullptr && *s.LabelValue(k) == v;
    }
    if (match) return s.value;
  }
  FAIL("no sample " << name);
  return 0;
}

TEST_CASE("every sample names its node; the families cover the issue's list") {
  FakeVmNode node(1, 3, 2, 2);
  auto s = Exposed(node, 1);
  for (const ParsedSample& x : s) CHECK(*x.LabelValue("node") == "1");
  CHECK(ValueOf(s, kMetricGuestRunning, {}) == 1);
  CHECK(ValueOf(s, kMetricUptime, {}) == 12.5);
  CHECK(ValueOf(s, kMetricVcpus, {}) == 2);
  CHECK(ValueOf(s, kMetricPageFaults, {{"kind", "remote_read"}}) == 300);
  CHECK(ValueOf(s, "ssihv_page_fault_duration_seconds_count",
                {{"kind", "remote_read"}}) == 300);
  CHECK(ValueOf(s, "ssihv_page_fault_duration_seconds_sum",
                {{"kind", "remote_read"}}) == Approx(300 * 3e-5));
  // 3e-5 s lies in (2e-5, 5e-5]: every observation from le=5e-05 on.
  CHECK(ValueOf(s, "ssihv_page_fault_duration_seconds_bucket",
                {{"kind", "remote_read"}, {"le", "2e-05"}}) == 0);
  CHECK(ValueOf(s, "ssihv_page_fault_duration_seconds_bucket",
                {{"kind", "remote_read"}, {"le", "5e-05"}}) == 300);
  CHECK(ValueOf(s, "ssihv_page_fault_duration_seconds_bucket",
                {{"kind", "remote_read"}, {"le", "+Inf"}}) == 300);
  CHECK(ValueOf(s, kMetricVcpuExits, {{"reason", "io"}}) == 30);
  CHECK(ValueOf(s, kMetricMessagesSent, {{"peer", "2"}}) == 102);
  CHECK(ValueOf(s, kMetricMessagesReceived, {{"peer", "0"}}) == 90);
  CHECK(ValueOf(s, kMetricBytesSent, {{"peer", "0"}}) == 40960);
  CHECK(ValueOf(s, kMetricBytesReceived, {{"peer", "0"}}) == 81920);
  CHECK(ValueOf(s, kMetricTransportErrors, {{"peer", "0"}}) == 0);
  CHECK(ValueOf(s, kMetricForwardedIo, {{"peer", "0"}, {"kind", "pio"}}) == 7);
  CHECK(ValueOf(s, kMetricForwardedIo, {{"peer", "0"}, {"kind", "mmio"}}) == 0);
  CHECK(ValueOf(s, kMetricServedIo, {{"peer", "2"}, {"kind", "pio"}}) == 0);
  CHECK(ValueOf(s, kMetricIpisSent, {{"peer", "0"}}) == 3);
  CHECK(ValueOf(s, kMetricIpisReceived, {{"peer", "2"}}) == 2);
  CHECK(ValueOf(s, kMetricFaultsServed, {{"peer", "0"}, {"kind", "read"}}) ==
        40);
  CHECK(ValueOf(s, kMetricFaultsServed, {{"peer", "2"}, {"kind", "write"}}) ==
        22);
  CHECK(ValueOf(s, kMetricDsmPages, {{"state", "modified"}}) == 300);
  CHECK(ValueOf(s, kMetricPeerUp, {{"peer", "0"}}) == 1);
  CHECK(ValueOf(s, kMetricPeerLastHeard, {{"peer", "2"}}) == 0.25);
}

TEST_CASE("peer liveness: a lost peer is 0, never heard has no last-heard") {
  FakeVmNode node(0, 3, 0, 2);
  node.SetPeers({{1, PeerLiveness::kLost, 9.0, "tcp"},
                 {2, PeerLiveness::kWaiting, std::nullopt, ""}});
  node.SetHealth({NodeStatus::kFailed, 20, "node 1 lost"});
  auto s = Exposed(node, 0);
  CHECK(ValueOf(s, kMetricPeerUp, {{"peer", "1"}}) == 0);
  CHECK(ValueOf(s, kMetricPeerUp, {{"peer", "2"}}) == 0);
  CHECK(ValueOf(s, kMetricPeerLastHeard, {{"peer", "1"}}) == 9);
  CHECK(ValueOf(s, kMetricGuestRunning, {}) == 0);
  for (const ParsedSample& x : s) {
    if (x.name == kMetricPeerLastHeard) CHECK(*x.LabelValue("peer") != "2");
  }
}

TEST_CASE("SummarizeMetrics: totals and the remote fault quantiles") {
  FakeVmNode node(0, 2, 0, 2);
  MetricsSummary m = SummarizeMetrics(Exposed(node, 0));
  CHECK(m.faults == 100 + 200 + 300 + 400 + 500);
  // The merged remote buckets count 300 + 400 observations.
  CHECK(m.remote_buckets.back().second == 300 + 400);
  CHECK(m.vcpu_exits == 44);
  CHECK(m.ipis_sent == 3);
  // 300 remote reads at 30 us and 400 remote writes at 45 us, both in the
  // (20 us, 50 us] bucket: the quantiles interpolate inside it.
  REQUIRE(m.remote_p50_s.has_value());
  CHECK(*m.remote_p50_s == Approx(2e-5 + 3e-5 * 0.5));
  CHECK(*m.remote_p99_s == Approx(2e-5 + 3e-5 * 0.99));

  MetricsSnapshot no_remote = node.metrics();
  for (FaultMetrics& f : no_remote.faults) {
    if (f.kind.starts_with("remote")) f = {f.kind, 0, HistogramAt(1e-5, 0)};
  }
  node.SetMetrics(no_remote);
  m = SummarizeMetrics(Exposed(node, 0));
  CHECK_FALSE(m.remote_p50_s.has_value());
  CHECK(m.remote_buckets.back().second == 0);
}

TEST_CASE("DeltaQuantile: the quantile of what happened in between") {
  const double inf = INFINITY;
  std::vector<std::pair<double, double>> before = {
      {1, 100}, {2, 100}, {inf, 100}};
  std::vector<std::pair<double, double>> after = {
      {1, 100}, {2, 110}, {inf, 110}};
  // All 10 new observations are in (1, 2].
  CHECK(*DeltaQuantile(0.5, before, after) == Approx(1.5));
  CHECK_FALSE(DeltaQuantile(0.5, after, after).has_value());
  // Nothing before: the whole histogram (rank 55 of 110 in (0, 1]).
  CHECK(*DeltaQuantile(0.5, {}, after) == Approx(0.55));
}

}  // namespace
}  // namespace ssihv::control
