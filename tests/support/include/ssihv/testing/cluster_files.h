// A throw-away cluster config for multi-node tests over TCP on 127.0.0.1.
#ifndef SSIHV_TESTING_CLUSTER_FILES_H_
#define SSIHV_TESTING_CLUSTER_FILES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace ssihv::testing {

/// Writes `dir`/secret (mode 0600) and `dir`/cluster.json: `nodes` nodes of
/// 1 vCPU and `memory_mib` MiB each on free loopback ports, transport tcp.
/// Returns the config's path.
absl::StatusOr<std::string> WriteTcpClusterConfig(const std::string& dir,
                                                  int nodes,
                                                  int memory_mib = 2);

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_CLUSTER_FILES_H_
