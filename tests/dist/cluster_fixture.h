// One guest across several ssihv-vmm processes, for the distributed VM's
// tests: writes a cluster config (loopback addresses, a 0600 secret, the
// transport asked for), starts one `ssihv-vmm --node K` per node with the
// Linux boot test's kernel and initramfs, and collects each node's exit
// status, output and statistics.
#ifndef SSIHV_TESTS_DIST_CLUSTER_FIXTURE_H_
#define SSIHV_TESTS_DIST_CLUSTER_FIXTURE_H_

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ssihv/testing/subprocess.h"

namespace ssihv::testing {

/// A boot's time limit: $SSIHV_DIST_BOOT_TIMEOUT seconds when set to a
/// positive number, else `fallback` (each test's own default).
std::chrono::seconds DistBootTimeout(std::chrono::seconds fallback);

struct NodeSpec {
  uint32_t vcpus = 1;
  uint64_t memory_mib = 256;
  /// The node's HTTP API on 127.0.0.1:api_port (0: none).
  int api_port = 0;
};

class TestCluster {
 public:
  /// `transport`: "tcp" or "rdma"; `port_base`: node K listens on
  /// 127.0.0.1:port_base + K (each test case its own range).
  TestCluster(std::vector<NodeSpec> nodes, const std::string& transport,
              int port_base, const std::string& extra_config = "");
  ~TestCluster();  // kills what still runs, removes the files

  const std::string& config_path() const { return config_path_; }
  const std::string& config_json() const { return config_json_; }
  size_t size() const { return specs_.size(); }

  /// Starts node `k` (`append`: kernel command line additions; `extra`:
  /// more ssihv-vmm arguments).
  void Start(uint32_t k, const std::string& append = "quiet",
             const std::vector<std::string>& extra = {});
  void StartAll(const std::string& append = "quiet",
                const std::vector<std::string>& extra = {});
  /// The whole guest of the config in one process (no --node), as node 0.
  void StartOneProcess(const std::string& append = "quiet",
                       const std::vector<std::string>& extra = {});
  /// 127.0.0.1:api_port of node k (empty without an API).
  std::string api_address(uint32_t k) const;
  Subprocess& node(uint32_t k) { return *procs_.at(k); }
  /// Waits for node k's exit; nullopt past `timeout`.
  std::optional<int> Wait(uint32_t k, std::chrono::seconds timeout);
  /// A boot that did not end: SIGQUIT to every node still running (each
  /// stops, dumps its vCPUs' registers and prints its statistics), up to
  /// 20 s each for that, so Dump() shows where every node was.
  void QuitStuck();
  /// Where a running node k's threads are (name, state, wait channel, and
  /// with gdb installed, their stacks): for a node that should have
  /// stopped and did not.
  std::string Threads(uint32_t k) const;
  /// Node k's --stats-json (REQUIREs that it exists).
  nlohmann::json Stats(uint32_t k) const;
  /// Everything each node printed, for failure messages.
  std::string Dump() const;

 private:
  /// Node k (nullopt: every node, one process) into slot k (or 0).
  void Launch(std::optional<uint32_t> k, const std::string& append,
              const std::vector<std::string>& extra);

  std::vector<NodeSpec> specs_;
  std::string dir_;
  std::string config_path_;
  std::string config_json_;
  std::vector<std::unique_ptr<Subprocess>> procs_;
};

}  // namespace ssihv::testing

#endif  // SSIHV_TESTS_DIST_CLUSTER_FIXTURE_H_
