#include "ssihv/cluster/config.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::cluster {
namespace {

using Json = nlohmann::json;

absl::Status Error(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// Rejects keys outside `allowed` so that a typo is never silently ignored.
absl::Status CheckKeys(const Json& obj, absl::string_view path,
                       std::initializer_list<absl::string_view> allowed) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Error(path.empty() ? key : absl::StrCat(path, ".", key),
                   "unknown key");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> GetUint(const Json& v, absl::string_view path,
                                 uint64_t min, uint64_t max) {
  if (!v.is_number_integer()) return Error(path, "must be an integer");
  if (v.is_number_unsigned()) {
    uint64_t x = v.get<uint64_t>();
    if (x >= min && x <= max) return x;
  } else {
    int64_t x = v.get<int64_t>();
    if (x >= 0 && static_cast<uint64_t>(x) >= min &&
        static_cast<uint64_t>(x) <= max) {
      return static_cast<uint64_t>(x);
    }
  }
  return Error(path, absl::StrCat("must be in ", min, "..", max));
}

// The optional "host:port" string at `path`.`key`; empty when absent.
absl::StatusOr<std::string> ParseAddress(const Json& node,
                                         const std::string& path,
                                         const char* key) {
  if (!node.contains(key)) return std::string();
  const Json& a = node[key];
  const std::string a_path = absl::StrCat(path, ".", key);
  if (!a.is_string()) return Error(a_path, "must be a string \"host:port\"");
  std::string host;
  uint16_t port;
  SSIHV_RETURN_IF_ERROR(
      SplitAddress(a_path, a.get<std::string>(), &host, &port));
  return a.get<std::string>();
}

absl::StatusOr<NodeConfig> ParseNode(const Json& v, const std::string& path) {
  if (!v.is_object()) return Error(path, "must be an object");
  SSIHV_RETURN_IF_ERROR(CheckKeys(
      v, path, {"id", "vcpus", "memory_mib", "address", "api_address"}));
  NodeConfig node;
  for (const char* key : {"id", "vcpus", "memory_mib"}) {
    if (!v.contains(key)) return Error(absl::StrCat(path, ".", key), "missing");
  }
  SSIHV_ASSIGN_OR_RETURN(uint64_t id, GetUint(v["id"], path + ".id", 0,
                                              kMaxNodes - 1));
  SSIHV_ASSIGN_OR_RETURN(uint64_t vcpus, GetUint(v["vcpus"], path + ".vcpus",
                                                 0, kMaxVcpusTotal));
  const Json& mem = v["memory_mib"];
  std::string mem_path = path + ".memory_mib";
  if (!mem.is_number_integer() || mem.get<int64_t>() <= 0 ||
      mem.get<int64_t>() % 2 != 0) {
    return Error(mem_path, "must be a positive multiple of 2");
  }
  SSIHV_ASSIGN_OR_RETURN(uint64_t memory_mib,
                         GetUint(mem, mem_path, 2, kMaxNodeMemoryMib));
  node.id = static_cast<uint32_t>(id);
  node.vcpus = static_cast<uint32_t>(vcpus);
  node.memory_mib = memory_mib;
  SSIHV_ASSIGN_OR_RETURN(node.address, ParseAddress(v, path, "address"));
  SSIHV_ASSIGN_OR_RETURN(node.api_address,
                         ParseAddress(v, path, "api_address"));
  return node;
}

// Two listeners of the cluster on the same "host:port" cannot both bind.
// Only equal strings are caught: hosts are not resolved here.
absl::Status CheckDistinctAddresses(const std::vector<NodeConfig>& nodes,
                                    const std::vector<size_t>& position) {
  struct Listener {
    const std::string* address;
    std::string path;
  };
  std::vector<Listener> seen;
  for (const NodeConfig& n : nodes) {
    const std::string node_path = absl::StrCat("nodes[", position[n.id], "]");
    for (auto [key, address] : {std::pair{"address", &n.address},
                                std::pair{"api_address", &n.api_address}}) {
      if (address->empty()) continue;
      const std::string path = absl::StrCat(node_path, ".", key);
      for (const Listener& l : seen) {
        if (*l.address == *address) {
          return Error(path,
                       absl::StrCat("\"", *address, "\" is also ", l.path));
        }
      }
      seen.push_back({address, path});
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeConfig>> ParseNodes(const Json& root) {
  if (!root.contains("nodes")) return Error("nodes", "missing");
  const Json& arr = root["nodes"];
  if (!arr.is_array() || arr.empty()) {
    return Error("nodes", "must be a non-empty array");
  }
  if (arr.size() > kMaxNodes) {
    return Error("nodes", absl::StrCat("at most ", kMaxNodes, " nodes"));
  }
  std::vector<NodeConfig> nodes(arr.size());
  std::vector<size_t> position(arr.size());  // id -> index in the array
  std::vector<bool> seen(arr.size(), false);
  uint64_t total_vcpus = 0;
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string path = absl::StrCat("nodes[", i, "]");
    SSIHV_ASSIGN_OR_RETURN(NodeConfig node, ParseNode(arr[i], path));
    if (node.id >= arr.size()) {
      return Error(path + ".id", absl::StrCat("must be in 0..", arr.size() - 1,
                                             " (ids are exactly 0..N-1)"));
    }
    if (seen[node.id]) {
      return Error(path + ".id", absl::StrCat("duplicate id ", node.id));
    }
    seen[node.id] = true;
    position[node.id] = i;
    total_vcpus += node.vcpus;
    nodes[node.id] = std::move(node);
  }
  if (total_vcpus == 0) {
    return Error("nodes", "the cluster needs at least one vcpu");
  }
  if (total_vcpus > kMaxVcpusTotal) {
    return Error("nodes", absl::StrCat("at most ", kMaxVcpusTotal,
                                       " vcpus in the cluster"));
  }
  SSIHV_RETURN_IF_ERROR(CheckDistinctAddresses(nodes, position));
  return nodes;
}

// Parses an optional N x N matrix at `key`; `check(row, col, value, path)`
// validates each entry.
template <typename T, typename Check>
absl::StatusOr<std::vector<std::vector<T>>> ParseMatrix(
    const Json& root, const char* key, size_t n, T local, T remote,
    Check check) {
  std::vector<std::vector<T>> m(n, std::vector<T>(n, remote));
  for (size_t i = 0; i < n; ++i) m[i][i] = local;
  if (!root.contains(key)) return m;
  const Json& rows = root[key];
  if (!rows.is_array() || rows.size() != n) {
    return Error(key, absl::StrCat("must be an array of ", n, " rows"));
  }
  for (size_t i = 0; i < n; ++i) {
    std::string row_path = absl::StrCat(key, "[", i, "]");
    if (!rows[i].is_array() || rows[i].size() != n) {
      return Error(row_path, absl::StrCat("must be an array of ", n, " values"));
    }
    for (size_t j = 0; j < n; ++j) {
      std::string path = absl::StrCat(row_path, "[", j, "]");
      SSIHV_ASSIGN_OR_RETURN(uint64_t v, check(i, j, rows[i][j], path));
      m[i][j] = static_cast<T>(v);
    }
  }
  return m;
}

absl::StatusOr<TransportKind> ParseTransport(const Json& root) {
  if (!root.contains("transport")) return TransportKind::kAuto;
  const Json& t = root["transport"];
  if (t == "tcp") return TransportKind::kTcp;
  if (t == "rdma") return TransportKind::kRdma;
  if (t == "auto") return TransportKind::kAuto;
  return Error("transport", "must be \"tcp\", \"rdma\" or \"auto\"");
}

absl::StatusOr<std::string> ParseOptionalString(const Json& root,
                                                const char* key) {
  if (!root.contains(key)) return std::string();
  const Json& v = root[key];
  if (!v.is_string() || v.get<std::string>().empty()) {
    return Error(key, "must be a non-empty string");
  }
  return v.get<std::string>();
}

}  // namespace

std::string_view TransportKindName(TransportKind kind) {
  switch (kind) {
    case TransportKind::kTcp:
      return "tcp";
    case TransportKind::kRdma:
      return "rdma";
    case TransportKind::kAuto:
      return "auto";
  }
  return "?";
}

uint32_t ClusterConfig::total_vcpus() const {
  uint32_t total = 0;
  for (const NodeConfig& n : nodes) total += n.vcpus;
  return total;
}

uint64_t ClusterConfig::total_memory_bytes() const {
  uint64_t total = 0;
  for (const NodeConfig& n : nodes) total += n.memory_bytes();
  return total;
}

std::optional<std::pair<uint32_t, uint32_t>> FirstNearRemoteNode(
    const ClusterConfig& config) {
  for (uint32_t i = 0; i < config.distances.size(); ++i) {
    for (uint32_t j = 0; j < config.distances[i].size(); ++j) {
      if (i != j && config.distances[i][j] <= kGuestBalanceDistance) {
        return std::make_pair(i, j);
      }
    }
  }
  return std::nullopt;
}

absl::Status SplitAddress(absl::string_view key, std::string_view address,
                          std::string* host, uint16_t* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 ||
      colon + 1 == address.size()) {
    return Error(key, "must be \"host:port\"");
  }
  std::string_view h = address.substr(0, colon);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') {
      return Error(key, "IPv6 host must be written \"[addr]:port\"");
    }
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return Error(key, "IPv6 host must be written \"[addr]:port\"");
  }
  std::string_view p = address.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || ptr != p.data() + p.size() || value == 0 ||
      value > 65535) {
    return Error(key, "port must be in 1..65535");
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(value);
  return absl::OkStatus();
}

absl::StatusOr<ClusterConfig> ParseClusterConfig(std::string_view json_text) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::parse_error& e) {
    // nlohmann reports "[json.exception.parse_error.101] parse error at line
    // 3, column 5: ..."; keep the position, drop the prefix.
    std::string what = e.what();
    size_t at = what.find("parse error");
    return Error("(json)", at == std::string::npos ? what : what.substr(at));
  }
  if (!root.is_object()) return Error("(root)", "must be a JSON object");
  SSIHV_RETURN_IF_ERROR(CheckKeys(
      root, "",
      {"nodes", "distances", "memory_latency_ns", "memory_bandwidth_mbps",
       "transport", "secret_file", "rdma_device", "api_token_file"}));
  ClusterConfig config;
  SSIHV_ASSIGN_OR_RETURN(config.nodes, ParseNodes(root));
  const size_t n = config.nodes.size();
  SSIHV_ASSIGN_OR_RETURN(
      config.distances,
      ParseMatrix<uint32_t>(
          root, "distances", n, kLocalDistance, kDefaultRemoteDistance,
          [](size_t i, size_t j, const Json& v,
             const std::string& path) -> absl::StatusOr<uint64_t> {
            if (i == j) {
              if (!v.is_number_integer() || v.get<int64_t>() != 10) {
                return Error(path, "diagonal distance must be 10");
              }
              return 10;
            }
            return GetUint(v, path, 11, 255);
          }));
  auto positive = [](size_t, size_t, const Json& v,
                     const std::string& path) -> absl::StatusOr<uint64_t> {
    // Values are stored in 16-bit HMAT entries scaled by a 64-bit base unit;
    // 2^40 keeps every quotient exact enough and far from overflow.
    return GetUint(v, path, 1, uint64_t{1} << 40);
  };
  SSIHV_ASSIGN_OR_RETURN(
      config.memory_latency_ns,
      ParseMatrix<uint64_t>(root, "memory_latency_ns", n,
                            kDefaultLocalLatencyNs, kDefaultRemoteLatencyNs,
                            positive));
  SSIHV_ASSIGN_OR_RETURN(
      config.memory_bandwidth_mbps,
      ParseMatrix<uint64_t>(root, "memory_bandwidth_mbps", n,
                            kDefaultLocalBandwidthMbps,
                            kDefaultRemoteBandwidthMbps, positive));
  SSIHV_ASSIGN_OR_RETURN(config.transport, ParseTransport(root));
  SSIHV_ASSIGN_OR_RETURN(config.secret_file,
                         ParseOptionalString(root, "secret_file"));
  SSIHV_ASSIGN_OR_RETURN(config.rdma_device,
                         ParseOptionalString(root, "rdma_device"));
  SSIHV_ASSIGN_OR_RETURN(config.api_token_file,
                         ParseOptionalString(root, "api_token_file"));
  return config;
}

absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path) {
  SSIHV_ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::string_view DefaultClusterConfigJson() {
  return R"({
  "nodes": [
    {"id": 0, "vcpus": 2, "memory_mib": 1024, "address": "127.0.0.1:7700"},
    {"id": 1, "vcpus": 2, "memory_mib": 1024, "address": "127.0.0.1:7701"}
  ],
  "distances": [[10, 20], [20, 10]],
  "memory_latency_ns": [[100, 5000], [5000, 100]],
  "memory_bandwidth_mbps": [[20000, 3000], [3000, 20000]]
}
)";
}

const ClusterConfig& DefaultClusterConfig() {
  static const ClusterConfig* config =
      new ClusterConfig(*ParseClusterConfig(DefaultClusterConfigJson()));
  return *config;
}

std::string ClusterConfigToJson(const ClusterConfig& config) {
  Json root;
  Json nodes = Json::array();
  for (const NodeConfig& n : config.nodes) {
    Json node = {{"id", n.id}, {"vcpus", n.vcpus}, {"memory_mib", n.memory_mib}};
    if (!n.address.empty()) node["address"] = n.address;
    if (!n.api_address.empty()) node["api_address"] = n.api_address;
    nodes.push_back(node);
  }
  root["nodes"] = nodes;
  root["distances"] = config.distances;
  root["memory_latency_ns"] = config.memory_latency_ns;
  root["memory_bandwidth_mbps"] = config.memory_bandwidth_mbps;
  root["transport"] = std::string(TransportKindName(config.transport));
  if (!config.secret_file.empty()) root["secret_file"] = config.secret_file;
  if (!config.rdma_device.empty()) root["rdma_device"] = config.rdma_device;
  if (!config.api_token_file.empty()) {
    root["api_token_file"] = config.api_token_file;
  }
  return root.dump(2);
}

}  // namespace ssihv::cluster
