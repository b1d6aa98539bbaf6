// A throw-away cluster config for multi-node tests on 127.0.0.1.
#ifndef SSIHV_TESTING_CLUSTER_FILES_H_
#define SSIHV_TESTING_CLUSTER_FILES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace ssihv::testing {

/// Writes `dir`/secret (mode 0600) and `dir`/cluster.json: `nodes` nodes of
/// 1 vCPU and `memory_mib` MiB each on distinct free loopback ports, over
/// `transport` ("tcp", "rdma"). Returns the config's path.
absl::StatusOr<std::string> WriteClusterConfig(
    const std::string& dir, int nodes, int memory_mib = 2,
    const std::string& transport = "tcp");

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_CLUSTER_FILES_H_
