// The ssihv metrics: names (a public interface, docs/API.md), the families
// a node's /metrics serves, and the summary ssihvctl reads back from them.
#ifndef SSIHV_CONTROL_METRICS_H_
#define SSIHV_CONTROL_METRICS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "ssihv/control/prometheus.h"
#include "ssihv/control/vm_node.h"

namespace ssihv::control {

// Every sample carries label node="<id of the serving node>".
inline constexpr char kMetricGuestRunning[] = "ssihv_guest_running";
inline constexpr char kMetricUptime[] = "ssihv_uptime_seconds";
inline constexpr char kMetricVcpus[] = "ssihv_vcpus";
inline constexpr char kMetricPageFaults[] = "ssihv_page_faults_total";
inline constexpr char kMetricFaultDuration[] =
    "ssihv_page_fault_duration_seconds";
inline constexpr char kMetricVcpuExits[] = "ssihv_vcpu_exits_total";
inline constexpr char kMetricMessagesSent[] =
    "ssihv_transport_messages_sent_total";
inline constexpr char kMetricMessagesReceived[] =
    "ssihv_transport_messages_received_total";
inline constexpr char kMetricBytesSent[] = "ssihv_transport_sent_bytes_total";
inline constexpr char kMetricBytesReceived[] =
    "ssihv_transport_received_bytes_total";
inline constexpr char kMetricTransportErrors[] = "ssihv_transport_errors_total";
inline constexpr char kMetricForwardedIo[] = "ssihv_forwarded_io_total";
inline constexpr char kMetricForwardedIoSeconds[] =
    "ssihv_forwarded_io_seconds_total";
inline constexpr char kMetricServedIo[] = "ssihv_forwarded_io_served_total";
inline constexpr char kMetricIpisSent[] = "ssihv_ipis_sent_total";
inline constexpr char kMetricIpisReceived[] = "ssihv_ipis_received_total";
inline constexpr char kMetricFaultsServed[] =
    "ssihv_remote_faults_served_total";
inline constexpr char kMetricDsmPages[] = "ssihv_dsm_pages";
inline constexpr char kMetricPeerUp[] = "ssihv_peer_up";
inline constexpr char kMetricPeerLastHeard[] = "ssihv_peer_last_heard_seconds";

/// Upper bounds (seconds) of the fault-latency histogram buckets: 1-2-5
/// steps from 1 us (a local zero fill) to 1 s (a stalled peer). The VMM
/// fills FaultMetrics::latency with these bounds.
inline constexpr std::array<double, 19> kLatencyBucketBounds = {
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3,
    2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,  0.2,  0.5,  1.0};

/// What /metrics of node `node` (with `vcpus` vCPUs) shows.
std::vector<MetricFamily> MetricFamiliesOf(uint32_t node, uint32_t vcpus,
                                           const NodeHealth& health,
                                           const std::vector<PeerInfo>& peers,
                                           const MetricsSnapshot& snapshot);

/// The fault kinds that fetch a page from another node: their latency is
/// "the remote fault latency" of ssihvctl status.
inline constexpr std::array<const char*, 2> kRemoteFaultKinds = {
    "remote_read", "remote_write"};

/// What ssihvctl shows of one node, from the samples of its /metrics.
struct MetricsSummary {
  double faults = 0;      ///< all kinds
  double vcpu_exits = 0;  ///< all reasons
  double ipis_sent = 0;   ///< to every peer
  /// Remote fault latency (kRemoteFaultKinds merged), seconds; nullopt
  /// without remote faults.
  std::optional<double> remote_p50_s;
  std::optional<double> remote_p99_s;
  /// The cumulative remote-fault buckets (le, count), for interval
  /// quantiles (DeltaQuantile).
  std::vector<std::pair<double, double>> remote_buckets;
};
MetricsSummary SummarizeMetrics(const std::vector<ParsedSample>& samples);

/// The q-quantile of the observations between two cumulative snapshots of
/// the same histogram (`later` minus `earlier`, bucket by bucket); nullopt
/// when none happened in between.
std::optional<double> DeltaQuantile(
    double q, const std::vector<std::pair<double, double>>& earlier,
    const std::vector<std::pair<double, double>>& later);

}  // namespace ssihv::control

#endif  // SSIHV_CONTROL_METRICS_H_
