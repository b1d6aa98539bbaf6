// The pure part of `ssihvctl calibrate`: where in each node's RAM the
// measurement pages lie, the pattern they hold, and the config written from
// the measured matrices (docs/API.md, "Calibration").
#ifndef SSIHV_APPS_SSIHVCTL_CALIBRATE_MODEL_H_
#define SSIHV_APPS_SSIHVCTL_CALIBRATE_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ssihv/cluster/config.h"

namespace ssihv::ctl {

inline constexpr uint64_t kCalibratePage = 4096;

/// Which pages of a node's RAM (page indices from its first byte, in RAM
/// offset order) serve what. Page 0 is the node's control page; then one
/// window of `window_pages` per initiator (the pages that initiator reads
/// remotely: the first `latency_pages` one at a time for latency, the rest
/// by several threads for bandwidth); then the local buffer.
struct CalibrationPlan {
  uint32_t nodes = 0;
  uint64_t window_pages = 0;
  uint64_t latency_pages = 0;
  uint64_t local_bytes = 0;

  uint64_t WindowPage(uint32_t initiator, uint64_t i) const {
    return 1 + initiator * window_pages + i;
  }
  uint64_t LocalFirstPage() const { return 1 + nodes * window_pages; }
};

/// Fits `pages` remote pages per pair and `local_mib` of local buffer into
/// the smallest node, shrinking both when it is small. InvalidArgument when
/// a node is too small to measure anything meaningful (names the node).
absl::StatusOr<CalibrationPlan> PlanCalibration(
    const cluster::ClusterConfig& config, uint64_t pages, uint64_t local_mib);

/// What word 0 of window page `i` of `home`'s window for `initiator` holds.
inline uint64_t CalibrationPattern(uint32_t home, uint32_t initiator,
                                   uint64_t i) {
  return 0x55A1C0DE00000000ull ^ (uint64_t{home} << 48) ^
         (uint64_t{initiator} << 40) ^ i;
}

/// The measurement: row = initiator node, column = memory node.
struct Measurements {
  std::vector<std::vector<double>> latency_ns;
  std::vector<std::vector<double>> bandwidth_mbps;
};

/// 10 x remote / local latency, rounded, clamped to 11..255 (the SLIT).
uint32_t DistanceOf(double remote_ns, double local_ns);

/// `config` with memory_latency_ns, memory_bandwidth_mbps (rounded, at
/// least 1) and distances from `m`, re-validated by ParseClusterConfig.
absl::StatusOr<cluster::ClusterConfig> MeasuredConfig(
    const cluster::ClusterConfig& config, const Measurements& m);

/// The three matrices as aligned text, for the user.
std::string FormatMeasurements(const cluster::ClusterConfig& measured);

}  // namespace ssihv::ctl

#endif  // SSIHV_APPS_SSIHVCTL_CALIBRATE_MODEL_H_
