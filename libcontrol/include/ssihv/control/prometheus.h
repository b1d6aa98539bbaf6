// The Prometheus text exposition format 0.0.4: a writer that refuses what
// Prometheus would reject or misread (bad names, `le` outside histograms,
// unordered buckets), and a parser for the same format, which ssihvctl uses
// to read the nodes' /metrics.
// https://prometheus.io/docs/instrumenting/exposition_formats/
#ifndef SSIHV_CONTROL_PROMETHEUS_H_
#define SSIHV_CONTROL_PROMETHEUS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ssihv/control/vm_node.h"

namespace ssihv::control {

/// The Content-Type of the format.
inline constexpr char kPrometheusContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram };

struct Label {
  std::string name;
  std::string value;
  bool operator==(const Label&) const = default;
};

struct Sample {
  std::vector<Label> labels;
  double value = 0;
};

struct HistogramSample {
  std::vector<Label> labels;
  Histogram histogram;
};

/// One metric: `# HELP`, `# TYPE` and its samples. A counter's name ends in
/// `_total`; a histogram's samples are `name_bucket{le=...}` (one per bound
/// and +Inf), `name_sum` and `name_count`.
struct MetricFamily {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<Sample> samples;              ///< counter and gauge
  std::vector<HistogramSample> histograms;  ///< histogram
};

/// The families as text. InvalidArgument (naming the metric) for an
/// invalid metric or label name, a counter not named `*_total`, a label
/// `le` or `__*`, a histogram whose bounds are not ascending and finite or
/// whose counts decrease, or a name used twice.
absl::StatusOr<std::string> WriteTextExposition(
    const std::vector<MetricFamily>& families);

/// One sample line of a parsed exposition.
struct ParsedSample {
  std::string name;  ///< as written: `x_bucket`, `x_sum`, ...
  std::vector<Label> labels;
  double value = 0;

  /// The value of label `name`, or nullptr.
  const std::string* LabelValue(absl::string_view name) const;
};

/// Parses the sample lines (comments and blank lines are skipped; a
/// timestamp after the value is accepted and dropped). InvalidArgument
/// names the line: "line 7: expected '=' after label name".
absl::StatusOr<std::vector<ParsedSample>> ParseTextExposition(
    absl::string_view text);

/// Several expositions as one (the /metrics of every node, whose samples
/// differ by their node label): each family's HELP and TYPE once, from the
/// first text that has them, then its samples from every text in order.
/// Families keep the order of their first appearance.
std::string MergeExpositions(const std::vector<std::string>& texts);

/// The q-quantile (0 <= q <= 1) of a cumulative histogram given as
/// (upper bound, cumulative count) pairs in ascending bound order, the last
/// bound +Inf, as Prometheus's histogram_quantile() computes it: linear
/// interpolation inside the bucket holding the rank (from 0 for the first
/// bucket); a rank in the +Inf bucket gives the highest finite bound.
/// nullopt without observations.
std::optional<double> HistogramQuantile(
    double q, const std::vector<std::pair<double, double>>& buckets);

}  // namespace ssihv::control

#endif  // SSIHV_CONTROL_PROMETHEUS_H_
