#include "ssihv/control/prometheus.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::control {
namespace {

bool IsNameStart(char c, bool colon_ok) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (colon_ok && c == ':');
}
bool IsNameChar(char c, bool colon_ok) {
  return IsNameStart(c, colon_ok) || (c >= '0' && c <= '9');
}

// Metric names may hold ':' (reserved for recording rules); label names not.
bool ValidName(absl::string_view s, bool colon_ok) {
  if (s.empty() || !IsNameStart(s[0], colon_ok)) return false;
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return IsNameChar(c, colon_ok); });
}

absl::Status Invalid(absl::string_view metric, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("metric ", metric, ": ", what));
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);  // shortest
  return std::string(buf, end);
}

void AppendEscaped(std::string* out, absl::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (quote && c == '"') {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

absl::Status CheckLabels(absl::string_view metric,
                         const std::vector<Label>& labels) {
  std::set<absl::string_view> seen;
  for (const Label& l : labels) {
    if (!ValidName(l.name, false)) {
      return Invalid(metric,
                     absl::StrCat("invalid label name \"", l.name, "\""));
    }
    if (absl::StartsWith(l.name, "__")) {
      return Invalid(
          metric, absl::StrCat("label ", l.name, " is reserved (__ prefix)"));
    }
    if (l.name == "le") {
      return Invalid(metric, "label le is reserved for histogram buckets");
    }
    if (!seen.insert(l.name).second) {
      return Invalid(metric, absl::StrCat("label ", l.name, " given twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHistogram(absl::string_view metric, const Histogram& h) {
  if (h.bounds.size() != h.counts.size()) {
    return Invalid(metric, "one cumulative count per bucket bound expected");
  }
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    if (!std::isfinite(h.bounds[i])) {
      return Invalid(metric, "bucket bounds must be finite (+Inf is implied)");
    }
    if (i > 0 && !(h.bounds[i] > h.bounds[i - 1])) {
      return Invalid(metric, "bucket bounds must be strictly ascending");
    }
    if (i > 0 && h.counts[i] < h.counts[i - 1]) {
      return Invalid(metric, "cumulative bucket counts must not decrease");
    }
  }
  if (!h.counts.empty() && h.count < h.counts.back()) {
    return Invalid(metric, "count is below the last bucket's count");
  }
  return absl::OkStatus();
}

// `name{labels[,le="x"]} value\n`.
void AppendSample(std::string* out, absl::string_view name,
                  const std::vector<Label>& labels, const std::string* le,
                  double value) {
  out->append(name.data(), name.size());
  if (!labels.empty() || le != nullptr) {
    out->push_back('{');
    bool first = true;
    for (const Label& l : labels) {
      if (!first) out->push_back(',');
      first = false;
      absl::StrAppend(out, l.name, "=\"");
      AppendEscaped(out, l.value, true);
      out->push_back('"');
    }
    if (le != nullptr)
      absl::StrAppend(out, first ? "" : ",", "le=\"", *le, "\"");
    out->push_back('}');
  }
  absl::StrAppend(out, " ", FormatValue(value), "\n");
}

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

absl::Status AppendFamily(std::string* out, const MetricFamily& f) {
  if (!ValidName(f.name, true)) {
    return Invalid(f.name, "invalid metric name");
  }
  if (f.type == MetricType::kCounter && !absl::EndsWith(f.name, "_total")) {
    return Invalid(f.name, "a counter's name must end in _total");
  }
  if (f.type != MetricType::kHistogram && !f.histograms.empty()) {
    return Invalid(f.name, "histogram samples in a non-histogram family");
  }
  if (f.type == MetricType::kHistogram && !f.samples.empty()) {
    return Invalid(f.name, "plain samples in a histogram family");
  }
  out->append("# HELP ").append(f.name).push_back(' ');
  AppendEscaped(out, f.help, false);
  absl::StrAppend(out, "\n# TYPE ", f.name, " ", TypeName(f.type), "\n");
  for (const Sample& s : f.samples) {
    SSIHV_RETURN_IF_ERROR(CheckLabels(f.name, s.labels));
    AppendSample(out, f.name, s.labels, nullptr, s.value);
  }
  const std::string bucket = f.name + "_bucket";
  for (const HistogramSample& s : f.histograms) {
    SSIHV_RETURN_IF_ERROR(CheckLabels(f.name, s.labels));
    const Histogram& h = s.histogram;
    SSIHV_RETURN_IF_ERROR(CheckHistogram(f.name, h));
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      const std::string le = FormatValue(h.bounds[i]);
      AppendSample(out, bucket, s.labels, &le,
                   static_cast<double>(h.counts[i]));
    }
    const std::string inf = "+Inf";
    AppendSample(out, bucket, s.labels, &inf, static_cast<double>(h.count));
    AppendSample(out, f.name + "_sum", s.labels, nullptr, h.sum);
    AppendSample(out, f.name + "_count", s.labels, nullptr,
                 static_cast<double>(h.count));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> WriteTextExposition(
    const std::vector<MetricFamily>& families) {
  std::string out;
  std::set<absl::string_view> names;
  for (const MetricFamily& f : families) {
    if (!names.insert(f.name).second) {
      return Invalid(f.name, "family given twice");
    }
    SSIHV_RETURN_IF_ERROR(AppendFamily(&out, f));
  }
  return out;
}

std::optional<double> HistogramQuantile(
    double q, const std::vector<std::pair<double, double>>& buckets) {
  if (buckets.empty() || buckets.back().second <= 0) return std::nullopt;
  const double rank = std::clamp(q, 0.0, 1.0) * buckets.back().second;
  size_t i = 0;
  while (i + 1 < buckets.size() && buckets[i].second < rank) ++i;
  if (std::isinf(buckets[i].first)) {
    // The rank lies above every finite bound: the highest one is all we know.
    return i == 0 ? std::nullopt : std::optional(buckets[i - 1].first);
  }
  const double lower = i == 0 ? 0.0 : buckets[i - 1].first;
  const double below = i == 0 ? 0.0 : buckets[i - 1].second;
  const double in_bucket = buckets[i].second - below;
  if (in_bucket <= 0) return buckets[i].first;
  return lower + (buckets[i].first - lower) * (rank - below) / in_bucket;
}

}  // namespace ssihv::control
