#include "calibrate_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ssihv::ctl {

namespace {
// Below this many remote pages per pair, a median and a bandwidth say
// little; below 1 MiB, the local buffer measures a cache, not memory.
constexpr uint64_t kMinWindowPages = 16;
constexpr uint64_t kMinLocalBytes = 1 << 20;
}  // namespace

absl::StatusOr<CalibrationPlan> PlanCalibration(
    const cluster::ClusterConfig& config, uint64_t pages, uint64_t local_mib) {
  CalibrationPlan plan;
  plan.nodes = static_cast<uint32_t>(config.num_nodes());
  uint64_t smallest = UINT64_MAX;
  uint32_t smallest_node = 0;
  for (const cluster::NodeConfig& n : config.nodes) {
    if (n.memory_bytes() / kCalibratePage < smallest) {
      smallest = n.memory_bytes() / kCalibratePage;
      smallest_node = n.id;
    }
  }
  // Remote windows first (the point of the exercise), at most half the
  // node; the local buffer gets what is left, up to local_mib.
  const uint64_t usable = smallest - 1;
  plan.window_pages = std::min<uint64_t>(pages, usable / 2 / plan.nodes);
  plan.latency_pages = std::max<uint64_t>(plan.window_pages / 4, 1);
  plan.local_bytes = std::min<uint64_t>(
      local_mib << 20,
      (usable - plan.nodes * plan.window_pages) * kCalibratePage);
  if (plan.window_pages < kMinWindowPages ||
      plan.local_bytes < kMinLocalBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nodes[", smallest_node, "].memory_mib: too small to calibrate ",
        plan.nodes, " nodes (needs ", kMinWindowPages,
        " pages per node pair and 1 MiB of local buffer)"));
  }
  return plan;
}

uint32_t DistanceOf(double remote_ns, double local_ns) {
  const double d = local_ns > 0 ? std::round(10 * remote_ns / local_ns) : 255;
  return static_cast<uint32_t>(std::clamp(d, 11.0, 255.0));
}

absl::StatusOr<cluster::ClusterConfig> MeasuredConfig(
    const cluster::ClusterConfig& config, const Measurements& m) {
  const size_t n = config.num_nodes();
  if (m.latency_ns.size() != n || m.bandwidth_mbps.size() != n) {
    return absl::InternalError("calibration: a row per node expected");
  }
  cluster::ClusterConfig out = config;
  auto positive = [](double v) {
    return static_cast<uint64_t>(std::max(1.0, std::round(v)));
  };
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      out.memory_latency_ns[i][j] = positive(m.latency_ns[i][j]);
      out.memory_bandwidth_mbps[i][j] = positive(m.bandwidth_mbps[i][j]);
      out.distances[i][j] =
          i == j ? cluster::kLocalDistance
                 : DistanceOf(m.latency_ns[i][j], m.latency_ns[i][i]);
    }
  }
  // What is written must be what a node accepts.
  absl::StatusOr<cluster::ClusterConfig> check =
      cluster::ParseClusterConfig(cluster::ClusterConfigToJson(out));
  if (!check.ok()) {
    return absl::InternalError(absl::StrCat(
        "calibration produced an invalid config: ", check.status().message()));
  }
  return check;
}

std::string FormatMeasurements(const cluster::ClusterConfig& c) {
  std::string out;
  auto matrix = [&](const char* title, auto value) {
    absl::StrAppend(&out, title,
                    " (row: initiator node, column: memory node)\n");
    for (size_t i = 0; i < c.num_nodes(); ++i) {
      absl::StrAppendFormat(&out, "  %2d:", i);
      for (size_t j = 0; j < c.num_nodes(); ++j) {
        absl::StrAppendFormat(&out, " %10d", value(i, j));
      }
      absl::StrAppend(&out, "\n");
    }
  };
  matrix("memory_latency_ns",
         [&](size_t i, size_t j) { return c.memory_latency_ns[i][j]; });
  matrix("memory_bandwidth_mbps",
         [&](size_t i, size_t j) { return c.memory_bandwidth_mbps[i][j]; });
  matrix("distances", [&](size_t i, size_t j) {
    return static_cast<uint64_t>(c.distances[i][j]);
  });
  return out;
}

}  // namespace ssihv::ctl
