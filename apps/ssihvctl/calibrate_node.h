// One node's side of `ssihvctl calibrate`: a DsmNode over the cluster's
// transport, the same path a guest fault takes, measuring its row of the
// latency and bandwidth matrices. The nodes coordinate through their own
// guest memory (docs/API.md, "Calibration"): node 0 conducts, gathers the
// rows and writes the measured config.
#ifndef SSIHV_APPS_SSIHVCTL_CALIBRATE_NODE_H_
#define SSIHV_APPS_SSIHVCTL_CALIBRATE_NODE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "calibrate_model.h"
#include "ssihv/cluster/config.h"

namespace ssihv::ctl {

struct NodeRunOptions {
  CalibrationPlan plan;
  /// The cluster secret; empty: the config's secret_file.
  std::string secret;
  /// Node 0: where to write the measured config.
  std::string out;
  int threads = 4;
  /// The whole run; past it the process exits (a peer that died leaves
  /// faults blocked for good, so nothing else could end it).
  absl::Duration timeout = absl::Seconds(300);
};

/// Runs node `self`. Node 0 returns once the config is written and every
/// peer has left; the others once node 0 said it is finished.
absl::Status RunCalibrationNode(const cluster::ClusterConfig& config,
                                uint32_t self, const NodeRunOptions& options);

}  // namespace ssihv::ctl

#endif  // SSIHV_APPS_SSIHVCTL_CALIBRATE_NODE_H_
