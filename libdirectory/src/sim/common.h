// Helpers shared by the random runs and the explorer.
#ifndef SSIHV_DIRECTORY_SRC_SIM_COMMON_H_
#define SSIHV_DIRECTORY_SRC_SIM_COMMON_H_

#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "ssihv/directory/node.h"
#include "ssihv/directory/sim.h"

namespace ssihv::directory::sim::internal {

/// The config's pages spread evenly over its nodes' ranges.
absl::StatusOr<PageSpace> SpaceFor(const Config& c);
/// One Node per node id, with the config's options.
std::vector<Node> MakeNodes(const Config& c, const PageSpace& space);
/// 128-bit hash of a canonical state string.
absl::uint128 Hash128(const std::string& s);

}  // namespace ssihv::directory::sim::internal

#endif  // SSIHV_DIRECTORY_SRC_SIM_COMMON_H_
