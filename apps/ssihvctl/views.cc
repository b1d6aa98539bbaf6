// status and top: tables of every node, from /health and two samples of
// /metrics (rates are deltas over the interval).
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ctl.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/control/metrics.h"

namespace ssihv::ctl {
namespace {

using Json = nlohmann::json;
using control::MetricsSummary;

// What one node said in one round.
struct Sample {
  bool reached = false;  // /health answered (200 or 503)
  std::string status;    // "running", ..., or why unreachable
  std::string problem;   // the error, for the notes under the table
  double uptime_s = 0;
  std::optional<MetricsSummary> metrics;
};

std::vector<Sample> SampleAll(const Context& ctx) {
  std::vector<Answer> health = AskAll(ctx, "GET", "/health");
  std::vector<Answer> metrics = AskAll(ctx, "GET", "/metrics");
  std::vector<Sample> out(health.size());
  for (size_t i = 0; i < health.size(); ++i) {
    Sample& s = out[i];
    const Answer& h = health[i];
    Json j = h.response.ok() &&
                     (h.response->status == 200 || h.response->status == 503)
                 ? Json::parse(h.response->body, nullptr, false)
                 : Json();
    if (j.is_object() && j.contains("status")) {
      s.reached = true;
      s.status = j["status"].get<std::string>();
      s.uptime_s = j.value("uptime_s", 0.0);
      if (j.contains("reason")) s.problem = j["reason"].get<std::string>();
    } else {
      s.status = h.address.empty() ? "no-api" : "unreachable";
      s.problem = Describe(h.response);
    }
    const Answer& m = metrics[i];
    if (m.response.ok() && m.response->status == 200) {
      auto parsed = control::ParseTextExposition(m.response->body);
      if (parsed.ok()) s.metrics = control::SummarizeMetrics(*parsed);
    }
  }
  return out;
}

std::string Latency(std::optional<double> seconds) {
  if (!seconds) return "-";
  if (*seconds < 1e-3) return absl::StrFormat("%.1f us", *seconds * 1e6);
  if (*seconds < 1) return absl::StrFormat("%.2f ms", *seconds * 1e3);
  return absl::StrFormat("%.2f s", *seconds);
}

std::string Uptime(double s) {
  const int64_t t = static_cast<int64_t>(s);
  if (t < 60) return absl::StrFormat("%.1fs", s);
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, t / 60 % 60);
}

std::string Rate(const Sample& a, const Sample& b, double seconds,
                 double MetricsSummary::*field) {
  if (!a.metrics || !b.metrics || seconds <= 0) return "-";
  return absl::StrFormat(
      "%.1f",
      std::max(0.0, (*b.metrics).*field - (*a.metrics).*field) / seconds);
}

// The notes under a table: why a node is not shown in full.
std::string Notes(const Context& ctx, const std::vector<Sample>& s) {
  std::string notes;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!s[i].problem.empty()) {
      absl::StrAppend(&notes, "node ", ctx.config.nodes[i].id, ": ",
                      s[i].problem, "\n");
    }
  }
  return notes;
}

int ExitOf(const std::vector<Sample>& s) {
  for (const Sample& x : s) {
    if (x.reached) return kExitOk;  // the others are shown as such
  }
  return kExitNodeDown;
}

// Waits `d` unless `stop` is set meanwhile; false when stopped.
bool Wait(absl::Duration d, const std::atomic<bool>* stop) {
  const absl::Time end = absl::Now() + d;
  while (absl::Now() < end) {
    if (stop != nullptr && stop->load()) return false;
    absl::SleepFor(std::min(absl::Milliseconds(50), end - absl::Now()));
  }
  return stop == nullptr || !stop->load();
}

}  // namespace

int Status(const Context& ctx, std::ostream& out, std::ostream& err) {
  const cluster::GuestLayout layout(ctx.config);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Sample> first = SampleAll(ctx);
  Wait(ctx.options.interval, nullptr);
  std::vector<Sample> second = SampleAll(ctx);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::string table = absl::StrFormat(
      "%-5s %-22s %-4s %-18s %-8s %-6s %-10s %-11s %s\n", "NODE", "API", "UP",
      "STATUS", "UPTIME", "VCPUS", "FAULTS/S", "REMOTE P50", "REMOTE P99");
  for (size_t i = 0; i < second.size(); ++i) {
    const Sample& s = second[i];
    const cluster::NodeConfig& n = ctx.config.nodes[i];
    absl::StrAppendFormat(
        &table, "%-5u %-22s %-4s %-18s %-8s %-6u %-10s %-11s %s\n", n.id,
        n.api_address.empty() ? "-" : n.api_address, s.reached ? "yes" : "no",
        s.status, s.reached ? Uptime(s.uptime_s) : "-",
        layout.VcpusOfNode(n.id),
        Rate(first[i], s, seconds, &MetricsSummary::faults),
        Latency(s.metrics ? s.metrics->remote_p50_s : std::nullopt),
        Latency(s.metrics ? s.metrics->remote_p99_s : std::nullopt));
  }
  out << table << Notes(ctx, second);
  return ExitOf(second);
}

int Top(const Context& ctx, std::ostream& out, std::ostream& err,
        const std::atomic<bool>* stop, bool terminal) {
  std::vector<Sample> prev = SampleAll(ctx);
  auto t_prev = std::chrono::steady_clock::now();
  bool reached = ExitOf(prev) == kExitOk;
  std::vector<std::vector<std::pair<double, double>>> buckets(prev.size());
  for (int frame = 0; ctx.options.count == 0 || frame < ctx.options.count;
       ++frame) {
    if (!Wait(ctx.options.interval, stop)) break;
    std::vector<Sample> now = SampleAll(ctx);
    const auto t_now = std::chrono::steady_clock::now();
    const double seconds =
        std::chrono::duration<double>(t_now - t_prev).count();
    std::string text = absl::StrFormat(
        "ssihvctl top: %d nodes, rates over %.1f s (Ctrl-C quits)\n"
        "%-5s %-18s %-10s %-10s %-8s %-11s %s\n",
        now.size(), seconds, "NODE", "STATUS", "FAULTS/S", "EXITS/S", "IPIS/S",
        "REMOTE P50", "REMOTE P99");
    for (size_t i = 0; i < now.size(); ++i) {
      const Sample& s = now[i];
      std::optional<double> p50, p99;
      if (prev[i].metrics && s.metrics) {
        p50 = control::DeltaQuantile(0.5, prev[i].metrics->remote_buckets,
                                     s.metrics->remote_buckets);
        p99 = control::DeltaQuantile(0.99, prev[i].metrics->remote_buckets,
                                     s.metrics->remote_buckets);
      }
      absl::StrAppendFormat(
          &text, "%-5u %-18s %-10s %-10s %-8s %-11s %s\n",
          ctx.config.nodes[i].id, s.status,
          Rate(prev[i], s, seconds, &MetricsSummary::faults),
          Rate(prev[i], s, seconds, &MetricsSummary::vcpu_exits),
          Rate(prev[i], s, seconds, &MetricsSummary::ipis_sent), Latency(p50),
          Latency(p99));
    }
    // On a terminal: home the cursor and clear, so the view refreshes in
    // place; otherwise one frame after the other (for logs and pipes).
    out << (terminal ? "\x1b[H\x1b[2J" : (frame > 0 ? "\n" : "")) << text
        << Notes(ctx, now) << std::flush;
    reached = reached || ExitOf(now) == kExitOk;
    prev = std::move(now);
    t_prev = t_now;
  }
  return reached ? kExitOk : kExitNodeDown;
}

}  // namespace ssihv::ctl
