#include "perf_trace.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ssihv::testing {
namespace {

// "NAME n" pairs, most first, at most `limit` of them; "-" when none.
std::string MostFirst(const std::map<std::string, double>& counts,
                      size_t limit) {
  std::vector<std::pair<std::string, double>> v(counts.begin(), counts.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second > b.second;
  });
  if (v.size() > limit) v.resize(limit);
  if (v.empty()) return "-";
  return absl::StrJoin(v, ", ", [](std::string* out, const auto& p) {
    absl::StrAppend(out, p.first, " ", p.second);
  });
}

}  // namespace

bool ParseTraceLine(absl::string_view line, GuestTrace* trace) {
  std::vector<absl::string_view> w =
      absl::StrSplit(line, ' ', absl::SkipEmpty());
  int cpu = 0;
  if (w.size() < 4 || w[0] != "SSIHV" || w[1] != "trace" ||
      !absl::ConsumePrefix(&w[2], "cpu=") || !absl::SimpleAtoi(w[2], &cpu) ||
      cpu < 0) {
    return false;
  }
  CpuTrace& t = (*trace)[cpu];
  double n = 0;
  if (absl::ConsumePrefix(&w[3], "ticks=")) {
    if (w.size() != 4 || !absl::SimpleAtod(w[3], &n)) return false;
    t.ticks += n;
    return true;
  }
  if (w.size() != 5 || !absl::ConsumePrefix(&w[4], "n=") ||
      !absl::SimpleAtod(w[4], &n)) {
    return false;
  }
  std::map<std::string, double>* into = nullptr;
  if (absl::ConsumePrefix(&w[3], "tick_kept=")) {
    into = &t.tick_kept;
  } else if (absl::ConsumePrefix(&w[3], "hrtimer=")) {
    into = &t.hrtimers;
  } else if (absl::ConsumePrefix(&w[3], "ran=")) {
    into = &t.ran;
  }
  if (into == nullptr || w[3].empty()) return false;
  (*into)[std::string(w[3])] += n;
  return true;
}

std::string FormatTraceRows(const std::string& run, const GuestTrace& trace,
                            bool header) {
  std::string out;
  if (header) {
    absl::StrAppend(
        &out,
        "\nWhat each guest CPU did during cpubench (init's ftrace, counts "
        "over the run): its ticks, why the tick could not stop (SCHED: "
        "more than one task runnable), other timers, and the tasks it "
        "switched to besides cpubench and the idle task, most first.\n\n"
        "| run | CPU | ticks | tick kept by | other timers | other tasks "
        "switched in |\n| --- | --- | --- | --- | --- | --- |\n");
  }
  for (const auto& [cpu, t] : trace) {
    std::map<std::string, double> others;
    for (const auto& [comm, n] : t.ran) {
      if (comm != "cpubench" && !absl::StartsWith(comm, "swapper/")) {
        others[comm] = n;
      }
    }
    absl::StrAppend(&out, "| ", run, " | ", cpu, " | ", t.ticks, " | ",
                    MostFirst(t.tick_kept, 4), " | ", MostFirst(t.hrtimers, 3),
                    " | ", MostFirst(others, 4), " |\n");
  }
  return out;
}

}  // namespace ssihv::testing
