// The text format writer (byte-exact output, escaping, refusals), the
// parser, and histogram quantiles.
#include "ssihv/control/prometheus.h"

#include <catch2/catch.hpp>
#include <cmath>

namespace ssihv::control {
namespace {

std::string Write(const std::vector<MetricFamily>& f) {
  auto text = WriteTextExposition(f);
  REQUIRE(text.ok());
  return *text;
}

std::string ErrorOf(const std::vector<MetricFamily>& f) {
  auto text = WriteTextExposition(f);
  REQUIRE_FALSE(text.ok());
  CHECK(text.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(text.status().message());
}

TEST_CASE("counters and gauges: HELP, TYPE, labels, values") {
  MetricFamily c{"x_total",
                 "Things.",
                 MetricType::kCounter,
                 {{{{"node", "0"}, {"kind", "a"}}, 12},
                  {{{"node", "0"}, {"kind", "b"}}, 0}},
                 {}};
  MetricFamily g{
      "x_seconds",
      "Time\nand \\ more.",
      MetricType::kGauge,
      {{{}, 0.25}, {{{"peer", "1"}}, 1e-7}, {{{"peer", "2"}}, 123456789012}},
      {}};
  CHECK(Write({c, g}) ==
        "# HELP x_total Things.\n"
        "# TYPE x_total counter\n"
        "x_total{node=\"0\",kind=\"a\"} 12\n"
        "x_total{node=\"0\",kind=\"b\"} 0\n"
        "# HELP x_seconds Time\\nand \\\\ more.\n"
        "# TYPE x_seconds gauge\n"
        "x_seconds 0.25\n"
        "x_seconds{peer=\"1\"} 1e-07\n"
        "x_seconds{peer=\"2\"} 123456789012\n");
}

TEST_CASE("label values are escaped: backslash, quote, newline") {
  MetricFamily g{"g",
                 "",
                 MetricType::kGauge,
                 {{{{"reason", "a\"b\\c\nd"}}, INFINITY},
                  {{{"reason", "n"}}, NAN},
                  {{{"reason", "m"}}, -INFINITY}},
                 {}};
  CHECK(Write({g}) ==
        "# HELP g \n# TYPE g gauge\n"
        "g{reason=\"a\\\"b\\\\c\\nd\"} +Inf\n"
        "g{reason=\"n\"} NaN\n"
        "g{reason=\"m\"} -Inf\n");
}

TEST_CASE("histograms: cumulative _bucket with le, +Inf, _sum, _count") {
  MetricFamily h{"lat_seconds",
                 "Latency.",
                 MetricType::kHistogram,
                 {},
                 {{{{"kind", "r"}}, {{1e-6, 0.5, 1}, {1, 3, 3}, 4, 2.75}}}};
  CHECK(Write({h}) ==
        "# HELP lat_seconds Latency.\n"
        "# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{kind=\"r\",le=\"1e-06\"} 1\n"
        "lat_seconds_bucket{kind=\"r\",le=\"0.5\"} 3\n"
        "lat_seconds_bucket{kind=\"r\",le=\"1\"} 3\n"
        "lat_seconds_bucket{kind=\"r\",le=\"+Inf\"} 4\n"
        "lat_seconds_sum{kind=\"r\"} 2.75\n"
        "lat_seconds_count{kind=\"r\"} 4\n");
  MetricFamily bare{
      "b", "", MetricType::kHistogram, {}, {{{}, {{}, {}, 0, 0}}}};
  CHECK(Write({bare}) ==
        "# HELP b \n# TYPE b histogram\nb_bucket{le=\"+Inf\"} 0\nb_sum "
        "0\nb_count 0\n");
}

TEST_CASE("the writer refuses what Prometheus would reject or misread") {
  auto gauge = [](std::string name, std::vector<Label> labels = {}) {
    return MetricFamily{
        std::move(name), "", MetricType::kGauge, {{std::move(labels), 1}}, {}};
  };
  CHECK(ErrorOf({gauge("9lives")}) == "metric 9lives: invalid metric name");
  CHECK(ErrorOf({gauge("a-b")}) == "metric a-b: invalid metric name");
  CHECK(ErrorOf({gauge("")}) == "metric : invalid metric name");
  CHECK(ErrorOf({MetricFamily{
            "faults", "", MetricType::kCounter, {{{}, 1}}, {}}}) ==
        "metric faults: a counter's name must end in _total");
  CHECK(ErrorOf({gauge("g", {{"a:b", "x"}})}) ==
        "metric g: invalid label name \"a:b\"");
  CHECK(ErrorOf({gauge("g", {{"__name__", "x"}})}) ==
        "metric g: label __name__ is reserved (__ prefix)");
  CHECK(ErrorOf({gauge("g", {{"le", "1"}})}) ==
        "metric g: label le is reserved for histogram buckets");
  CHECK(ErrorOf({gauge("g", {{"a", "1"}, {"a", "2"}})}) ==
        "metric g: label a given twice");
  CHECK(ErrorOf({gauge("g"), gauge("g")}) == "metric g: family given twice");
  auto hist = [](Histogram h) {
    return MetricFamily{
        "h", "", MetricType::kHistogram, {}, {{{}, std::move(h)}}};
  };
  CHECK(ErrorOf({hist({{1, 0.5}, {1, 1}, 1, 0})}) ==
        "metric h: bucket bounds must be strictly ascending");
  CHECK(ErrorOf({hist({{1, INFINITY}, {1, 1}, 1, 0})}) ==
        "metric h: bucket bounds must be finite (+Inf is implied)");
  CHECK(ErrorOf({hist({{1, 2}, {2, 1}, 2, 0})}) ==
        "metric h: cumulative bucket counts must not decrease");
  CHECK(ErrorOf({hist({{1, 2}, {1, 2}, 1, 0})}) ==
        "metric h: count is below the last bucket's count");
  CHECK(ErrorOf({hist({{1, 2}, {1}, 1, 0})}) ==
        "metric h: one cumulative count per bucket bound expected");
  CHECK(ErrorOf({MetricFamily{
            "g", "", MetricType::kGauge, {}, {{{}, {{1}, {1}, 1, 0}}}}}) ==
        "metric g: histogram samples in a non-histogram family");
}

TEST_CASE("the parser reads what the writer writes") {
  MetricFamily c{"x_total",
                 "h",
                 MetricType::kCounter,
                 {{{{"node", "0"}, {"reason", "a\"b\\c\nd"}}, 12}},
                 {}};
  MetricFamily h{"lat_seconds",
                 "",
                 MetricType::kHistogram,
                 {},
                 {{{{"kind", "r"}}, {{1e-6, 0.5}, {1, 3}, 4, 2.75}}}};
  auto samples = ParseTextExposition(Write({c, h}));
  REQUIRE(samples.ok());
  REQUIRE(samples->size() == 6);
  CHECK((*samples)[0].name == "x_total");
  CHECK(*(*samples)[0].LabelValue("reason") == "a\"b\\c\nd");
  CHECK((*samples)[0].value == 12);
  CHECK((*samples)[0].LabelValue("nope") == nullptr);
  CHECK(*(*samples)[1].LabelValue("le") == "1e-06");
  CHECK(*(*samples)[3].LabelValue("le") == "+Inf");
  CHECK((*samples)[3].value == 4);
  CHECK((*samples)[4].name == "lat_seconds_sum");
  CHECK((*samples)[4].value == 2.75);
}

TEST_CASE("the parser takes other writers' forms and names bad lines") {
  auto ok = ParseTextExposition(
      "  # comment\n\nm{a=\"1\",} 1.5e3 1700000000000\r\nm +Inf\nm{} -2\n");
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 3);
  CHECK((*ok)[0].value == 1500);
  CHECK(std::isinf((*ok)[1].value));
  CHECK((*ok)[2].value == -2);
  auto err = [](const char* text) {
    auto r = ParseTextExposition(text);
    REQUIRE_FALSE(r.ok());
    return std::string(r.status().message());
  };
  CHECK(err("m 1\nm{a=1} 2\n") ==
        "line 2: expected '\"' to open a label value");
  CHECK(err("m{a} 2") == "line 1: expected '=' after label name");
  CHECK(err("m{a=\"x} 2") == "line 1: unterminated label value");
  CHECK(err("m{a=\"\\t\"} 2") == "line 1: unknown escape \\t");
  CHECK(err("m{a=\"x\" b=\"y\"} 2") ==
        "line 1: expected ',' or '}' after a label value");
  CHECK(err("m one") == "line 1: bad value \"one\"");
  CHECK(err("m") == "line 1: expected a space before the value");
  CHECK(err("m 1 2 3") == "line 1: unexpected text after the sample");
  CHECK(err("m 1 x") == "line 1: bad timestamp \"x\"");
  CHECK(err("{a=\"1\"} 1") == "line 1: expected a metric name");
}

TEST_CASE("HistogramQuantile interpolates like histogram_quantile()") {
  const double inf = INFINITY;
  // 10 observations in (0, 1], 10 in (1, 2]: the median is at the boundary.
  std::vector<std::pair<double, double>> b = {{1, 10}, {2, 20}, {inf, 20}};
  CHECK(*HistogramQuantile(0.5, b) == Approx(1.0));
  CHECK(*HistogramQuantile(0.25, b) == Approx(0.5));
  CHECK(*HistogramQuantile(0.75, b) == Approx(1.5));
  CHECK(*HistogramQuantile(1.0, b) == Approx(2.0));
  // Ranks in the +Inf bucket: the highest finite bound.
  CHECK(*HistogramQuantile(0.99, {{1, 1}, {2, 2}, {inf, 100}}) == 2.0);
  CHECK_FALSE(HistogramQuantile(0.5, {{inf, 5}}).has_value());
  CHECK_FALSE(HistogramQuantile(0.5, {{1, 0}, {inf, 0}}).has_value());
  CHECK_FALSE(HistogramQuantile(0.5, {}).has_value());
  // An empty bucket before the rank is skipped.
  CHECK(*HistogramQuantile(0.5, {{1, 0}, {2, 0}, {4, 10}, {inf, 10}}) ==
        Approx(3.0));
}

}  // namespace
}  // namespace ssihv::control

namespace ssihv::control {
namespace {

TEST_CASE("MergeExpositions: one header per family, every node's samples") {
  auto node = [](const char* id) {
    MetricFamily c{
        "x_total", "X.", MetricType::kCounter, {{{{"node", id}}, 1}}, {}};
    MetricFamily g{"y", "Y.", MetricType::kGauge, {{{{"node", id}}, 2}}, {}};
    return Write({c, g});
  };
  CHECK(MergeExpositions({node("0"), node("1"), ""}) ==
        "# HELP x_total X.\n# TYPE x_total counter\n"
        "x_total{node=\"0\"} 1\nx_total{node=\"1\"} 1\n"
        "# HELP y Y.\n# TYPE y gauge\n"
        "y{node=\"0\"} 2\ny{node=\"1\"} 2\n");
  CHECK(MergeExpositions({}) == "");
  // A family only the second text has keeps its header.
  MetricFamily z{"z", "Z.", MetricType::kGauge, {{{}, 3}}, {}};
  CHECK(MergeExpositions({node("0"), Write({z})})
            .ends_with("# HELP z Z.\n# TYPE z gauge\nz 3\n"));
}

}  // namespace
}  // namespace ssihv::control
