// A cluster of DsmNodes in one process over librdmax's loopback fabric, for
// the DSM node's tests: each node has its own guest RAM, pager and uffd.
#ifndef SSIHV_PAGER_TESTS_DSM_CLUSTER_H_
#define SSIHV_PAGER_TESTS_DSM_CLUSTER_H_

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/loopback.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::pager::testing {

/// j[a][b] as a number (a statistics group's counter).
inline uint64_t JsonU64(const nlohmann::json& j, const char* a, const char* b) {
  return j[a][b].get<uint64_t>();
}

inline constexpr char kSecret[] = "0123456789abcdef-dsm-test-secret";

inline cluster::ClusterConfig Config(int nodes, int mib_per_node = 2) {
  std::string json = R"({"nodes": [)";
  for (int i = 0; i < nodes; ++i) {
    absl::StrAppend(&json, i ? "," : "", R"({"id": )", i,
                    R"(, "vcpus": 1, "memory_mib": )", mib_per_node,
                    R"(, "address": "127.0.0.1:)", 7800 + i, R"("})");
  }
  json += "]}";
  auto config = cluster::ParseClusterConfig(json);
  REQUIRE(config.ok());
  return *config;
}

/// N DsmNodes on one loopback fabric, started.
struct Cluster {
  explicit Cluster(int n, int fault_threads = 1,
                   std::function<void(int, DsmOptions&)> customize = {})
      : config(Config(n)) {
    auto fabric = rdmax::LoopbackFabric::Create(config);
    for (int i = 0; i < n; ++i) {
      rdmax::TransportOptions topt = DsmTransportOptions();
      topt.secret = kSecret;
      auto t = fabric->CreateTransport(i, topt);
      REQUIRE(t.ok());
      DsmOptions opt;
      opt.fault_threads = fault_threads;
      opt.on_error = [this](const absl::Status& st) {
        errors.fetch_add(1);
        UNSCOPED_INFO(st.ToString());
      };
      if (customize) customize(i, opt);
      auto node = DsmNode::Create(config, i, *std::move(t), opt);
      REQUIRE(node.ok());
      nodes.push_back(*std::move(node));
    }
    // Start concurrently: each waits for all of its peers.
    std::vector<std::thread> starters;
    std::atomic<int> failed{0};
    for (auto& node : nodes) {
      starters.emplace_back([&] { failed += !node->Start().ok(); });
    }
    for (auto& t : starters) t.join();
    REQUIRE(failed == 0);
  }
  ~Cluster() {
    for (auto& node : nodes) node->Stop();
  }
  /// Host address of `gpa` on node `n`.
  template <typename T = uint64_t>
  volatile T* At(int n, uint64_t gpa) {
    return reinterpret_cast<volatile T*>(nodes[n]->HostAddress(gpa));
  }
  uint64_t HomeBase(int n) {
    return cluster::GuestLayout(config).RangesOfNode(n)[0].gpa;
  }
  uint64_t Faults(int n, FaultKind k) {
    return nodes[n]->PagerStatistics().faults[static_cast<size_t>(k)];
  }
  /// Counter `key` of node `n`'s "dsm" statistics.
  uint64_t DsmStat(int n, const char* key) {
    return JsonU64(nodes[n]->StatsJson(), "dsm", key);
  }

  cluster::ClusterConfig config;
  std::vector<std::unique_ptr<DsmNode>> nodes;
  std::atomic<int> errors{0};
};

}  // namespace ssihv::pager::testing

#endif  // SSIHV_PAGER_TESTS_DSM_CLUSTER_H_
