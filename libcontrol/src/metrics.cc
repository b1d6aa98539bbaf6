#include "ssihv/control/metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

namespace ssihv::control {
namespace {

MetricFamily Family(const char* name, MetricType type, const char* help) {
  MetricFamily f;
  f.name = name;
  f.type = type;
  f.help = help;
  return f;
}

// Counters of every peer: one family, one sample per peer.
template <typename T>
MetricFamily PerPeer(const char* name, const char* help, const Label& node,
                     const std::vector<PeerMetrics>& peers,
                     T PeerMetrics::*field) {
  MetricFamily f = Family(name, MetricType::kCounter, help);
  for (const PeerMetrics& p : peers) {
    f.samples.push_back({{node, {"peer", std::to_string(p.peer)}},
                         static_cast<double>(p.*field)});
  }
  return f;
}

// One sample per peer and kind: forwarded I/O (pio, mmio), faults served
// (read, write).
struct KindField {
  const char* kind;
  uint64_t PeerMetrics::*field;
};
MetricFamily PerPeerKinds(const char* name, const char* help, const Label& node,
                          const std::vector<PeerMetrics>& peers,
                          std::initializer_list<KindField> kinds) {
  MetricFamily f = Family(name, MetricType::kCounter, help);
  for (const PeerMetrics& p : peers) {
    const Label peer{"peer", std::to_string(p.peer)};
    for (const KindField& k : kinds) {
      f.samples.push_back(
          {{node, peer, {"kind", k.kind}}, static_cast<double>(p.*k.field)});
    }
  }
  return f;
}

MetricFamily Named(const char* name, MetricType type, const char* help,
                   const Label& node, const char* label,
                   const std::vector<NamedCount>& counts) {
  MetricFamily f = Family(name, type, help);
  for (const NamedCount& c : counts) {
    f.samples.push_back(
        {{node, {label, c.name}}, static_cast<double>(c.value)});
  }
  return f;
}

void AddFaults(std::vector<MetricFamily>* out, const Label& node,
               const std::vector<FaultMetrics>& faults) {
  MetricFamily count = Family(
      kMetricPageFaults, MetricType::kCounter,
      "Guest-memory faults resolved by this node's pager, by how (kind).");
  MetricFamily latency = Family(
      kMetricFaultDuration, MetricType::kHistogram,
      "Service time of a guest-memory fault, from the pager reading it to "
      "the resolving ioctl (remote kinds include the network round trip).");
  for (const FaultMetrics& f : faults) {
    const std::vector<Label> labels = {node, {"kind", f.kind}};
    count.samples.push_back({labels, static_cast<double>(f.faults)});
    latency.histograms.push_back({labels, f.latency});
  }
  out->push_back(std::move(count));
  out->push_back(std::move(latency));
}

void AddPeers(std::vector<MetricFamily>* out, const Label& node,
              const std::vector<PeerInfo>& peers) {
  MetricFamily up = Family(kMetricPeerUp, MetricType::kGauge,
                           "1 when this node is connected to the peer.");
  MetricFamily heard = Family(
      kMetricPeerLastHeard, MetricType::kGauge,
      "Seconds since this node last heard from the peer (absent: never).");
  for (const PeerInfo& p : peers) {
    const std::vector<Label> labels = {node, {"peer", std::to_string(p.node)}};
    up.samples.push_back(
        {labels, p.liveness == PeerLiveness::kAlive ? 1.0 : 0.0});
    if (p.last_heard_s) heard.samples.push_back({labels, *p.last_heard_s});
  }
  out->push_back(std::move(up));
  out->push_back(std::move(heard));
}

}  // namespace

std::vector<MetricFamily> MetricFamiliesOf(uint32_t node_id, uint32_t vcpus,
                                           const NodeHealth& health,
                                           const std::vector<PeerInfo>& peers,
                                           const MetricsSnapshot& snapshot) {
  const Label node{"node", std::to_string(node_id)};
  std::vector<MetricFamily> out;
  MetricFamily running =
      Family(kMetricGuestRunning, MetricType::kGauge,
             "1 while the guest runs on this node (GET /health is 200).");
  running.samples.push_back(
      {{node}, health.status == NodeStatus::kRunning ? 1.0 : 0.0});
  out.push_back(std::move(running));
  MetricFamily uptime = Family(kMetricUptime, MetricType::kGauge,
                               "Seconds since this node process started.");
  uptime.samples.push_back({{node}, health.uptime_s});
  out.push_back(std::move(uptime));
  MetricFamily cpus =
      Family(kMetricVcpus, MetricType::kGauge, "vCPUs hosted by this node.");
  cpus.samples.push_back({{node}, static_cast<double>(vcpus)});
  out.push_back(std::move(cpus));

  AddFaults(&out, node, snapshot.faults);
  out.push_back(Named(kMetricVcpuExits, MetricType::kCounter,
                      "VM exits of this node's vCPUs, by reason.", node,
                      "reason", snapshot.vcpu_exits));
  const auto& p = snapshot.peers;
  out.push_back(PerPeer(kMetricMessagesSent,
                        "Transport messages sent to the peer.", node, p,
                        &PeerMetrics::messages_sent));
  out.push_back(PerPeer(kMetricMessagesReceived,
                        "Transport messages received from the peer.", node, p,
                        &PeerMetrics::messages_received));
  out.push_back(PerPeer(kMetricBytesSent, "Transport bytes sent to the peer.",
                        node, p, &PeerMetrics::bytes_sent));
  out.push_back(PerPeer(kMetricBytesReceived,
                        "Transport bytes received from the peer.", node, p,
                        &PeerMetrics::bytes_received));
  out.push_back(PerPeer(kMetricTransportErrors,
                        "Connections to the peer lost and messages to it "
                        "that could not be sent.",
                        node, p, &PeerMetrics::errors));
  out.push_back(PerPeerKinds(kMetricForwardedIo,
                             "I/O accesses of this node's vCPUs completed by "
                             "the peer's devices.",
                             node, p,
                             {{"pio", &PeerMetrics::pio_forwarded},
                              {"mmio", &PeerMetrics::mmio_forwarded}}));
  out.push_back(PerPeer(kMetricForwardedIoSeconds,
                        "Seconds this node's vCPUs waited for the peer to "
                        "complete their forwarded I/O accesses (divided by "
                        "ssihv_forwarded_io_total: the mean round trip).",
                        node, p, &PeerMetrics::io_forwarded_seconds));
  out.push_back(PerPeerKinds(kMetricServedIo,
                             "I/O accesses of the peer's vCPUs completed by "
                             "this node's devices.",
                             node, p,
                             {{"pio", &PeerMetrics::pio_served},
                              {"mmio", &PeerMetrics::mmio_served}}));
  out.push_back(PerPeerKinds(
      kMetricFaultsServed,
      "Remote faults of the peer's vCPUs (page requests: read, write) this "
      "node answered as the pages' home.",
      node, p,
      {{"read", &PeerMetrics::fault_reads_served},
       {"write", &PeerMetrics::fault_writes_served}}));
  out.push_back(PerPeer(kMetricIpisSent,
                        "Interprocessor interrupts sent to vCPUs on the peer.",
                        node, p, &PeerMetrics::ipis_sent));
  out.push_back(PerPeer(kMetricIpisReceived,
                        "Interprocessor interrupts received from the peer.",
                        node, p, &PeerMetrics::ipis_received));
  out.push_back(Named(kMetricDsmPages, MetricType::kGauge,
                      "Guest pages by this node's DSM state.", node, "state",
                      snapshot.dsm_pages));
  AddPeers(&out, node, peers);
  return out;
}

MetricsSummary SummarizeMetrics(const std::vector<ParsedSample>& samples) {
  MetricsSummary s;
  const std::string bucket = std::string(kMetricFaultDuration) + "_bucket";
  std::map<double, double> remote;  // le -> cumulative count, kinds merged
  for (const ParsedSample& x : samples) {
    const std::string* kind = x.LabelValue("kind");
    const bool is_remote =
        kind != nullptr &&
        std::find(kRemoteFaultKinds.begin(), kRemoteFaultKinds.end(), *kind) !=
            kRemoteFaultKinds.end();
    if (x.name == kMetricPageFaults) {
      s.faults += x.value;
    } else if (x.name == kMetricVcpuExits) {
      s.vcpu_exits += x.value;
    } else if (x.name == kMetricIpisSent) {
      s.ipis_sent += x.value;
    } else if (x.name == bucket && is_remote) {
      const std::string* le = x.LabelValue("le");
      if (le == nullptr) continue;
      double bound =
          *le == "+Inf" ? INFINITY : std::strtod(le->c_str(), nullptr);
      remote[bound] += x.value;
    }
  }
  s.remote_buckets.assign(remote.begin(), remote.end());
  s.remote_p50_s = HistogramQuantile(0.5, s.remote_buckets);
  s.remote_p99_s = HistogramQuantile(0.99, s.remote_buckets);
  return s;
}

std::optional<double> DeltaQuantile(
    double q, const std::vector<std::pair<double, double>>& earlier,
    const std::vector<std::pair<double, double>>& later) {
  std::vector<std::pair<double, double>> delta = later;
  for (auto& [le, count] : delta) {
    for (const auto& [le0, count0] : earlier) {
      if (le0 == le) count = std::max(0.0, count - count0);
    }
  }
  return HistogramQuantile(q, delta);
}

}  // namespace ssihv::control
