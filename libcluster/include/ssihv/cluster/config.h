// The cluster config: one JSON file that every ssihv app reads. Its schema is
// a public interface (docs/CLUSTER_CONFIG.md); later features add keys, none
// are renamed.
#ifndef SSIHV_CLUSTER_CONFIG_H_
#define SSIHV_CLUSTER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ssihv::cluster {

/// Limits that keep every derived quantity (GPAs, APIC IDs, table sizes)
/// far from overflow.
inline constexpr uint32_t kMaxNodes = 64;
inline constexpr uint32_t kMaxVcpusTotal = 4096;
inline constexpr uint64_t kMaxNodeMemoryMib = uint64_t{1} << 22;  // 4 TiB

struct NodeConfig {
  uint32_t id = 0;
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
  /// "host:port" (IPv6 as "[addr]:port"); empty when absent.
  std::string address;
  /// The node's HTTP API ("api_address", same syntax as `address`); empty:
  /// the node runs no API server (docs/API.md).
  std::string api_address;

  uint64_t memory_bytes() const { return memory_mib << 20; }
};

enum class TransportKind { kAuto, kTcp, kRdma };

std::string_view TransportKindName(TransportKind kind);

struct ClusterConfig {
  /// Sorted by id; ids are exactly 0..N-1, so nodes[i].id == i.
  std::vector<NodeConfig> nodes;
  /// SLIT distances, N x N, always filled (defaults 10 local / 20 remote).
  std::vector<std::vector<uint32_t>> distances;
  /// HMAT: row = initiator node, column = memory node. Always filled.
  std::vector<std::vector<uint64_t>> memory_latency_ns;
  std::vector<std::vector<uint64_t>> memory_bandwidth_mbps;
  /// Node-to-node transport ("transport" key), default auto.
  TransportKind transport = TransportKind::kAuto;
  /// Path of the cluster secret for peer authentication ("secret_file");
  /// empty when absent.
  std::string secret_file;
  /// RDMA device name ("rdma_device"); empty = first available.
  std::string rdma_device;
  /// Path of the bearer token of the HTTP API ("api_token_file"); empty
  /// when absent. Only the path is checked here; the file itself is
  /// checked where it is read (control::LoadApiToken).
  std::string api_token_file;

  size_t num_nodes() const { return nodes.size(); }
  uint32_t total_vcpus() const;
  uint64_t total_memory_bytes() const;
};

/// Defaults applied when the optional matrices are absent.
inline constexpr uint32_t kLocalDistance = 10;
inline constexpr uint32_t kDefaultRemoteDistance = 20;
inline constexpr uint64_t kDefaultLocalLatencyNs = 100;
inline constexpr uint64_t kDefaultRemoteLatencyNs = 5000;
inline constexpr uint64_t kDefaultLocalBandwidthMbps = 20000;
inline constexpr uint64_t kDefaultRemoteBandwidthMbps = 3000;

/// Linux balances forks, execs and wake-ups across NUMA nodes only up to
/// this SLIT distance (RECLAIM_DISTANCE). A guest spread over ssihv-vmm
/// processes wants every remote node beyond it: a task the guest moves to
/// another node takes its pages across the network with it
/// (docs/CLUSTER_CONFIG.md, "Distances of a guest across processes").
inline constexpr uint32_t kGuestBalanceDistance = 30;

/// The first off-diagonal distance at or below kGuestBalanceDistance, as
/// (from, to) in row order; nullopt when every remote node is farther.
std::optional<std::pair<uint32_t, uint32_t>> FirstNearRemoteNode(
    const ClusterConfig& config);

/// Parses and validates a config. Every error is InvalidArgument and its
/// message starts with the offending key path, e.g.
/// "nodes[1].memory_mib: must be a positive multiple of 2".
absl::StatusOr<ClusterConfig> ParseClusterConfig(std::string_view json_text);

/// Reads and parses `path`; a read error names the path.
absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path);

/// The embedded default: 2 nodes x 2 vCPUs x 1024 MiB on 127.0.0.1:7700/7701.
std::string_view DefaultClusterConfigJson();
const ClusterConfig& DefaultClusterConfig();

/// Re-encodes a config as canonical JSON (every default made explicit).
std::string ClusterConfigToJson(const ClusterConfig& config);

/// Splits "host:port" / "[v6]:port"; InvalidArgument names `key`.
absl::Status SplitAddress(absl::string_view key, std::string_view address,
                          std::string* host, uint16_t* port);

}  // namespace ssihv::cluster

#endif  // SSIHV_CLUSTER_CONFIG_H_
