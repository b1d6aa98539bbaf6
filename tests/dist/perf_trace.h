// What init's ftrace of cpubench (ssihv.trace=1, tests/linux-boot/init)
// says about each guest CPU: how often its tick ran, why it could not
// stop, which other timers fired and which tasks the CPU switched to. The
// tick and the tasks beside the benchmark are what move the guest kernel's
// shared pages between nodes while the benchmark computes on node-local
// data (docs/PERFORMANCE.md). Pure functions, unit-tested on the host
// (perf_report_test.cc).
#ifndef SSIHV_TESTS_DIST_PERF_TRACE_H_
#define SSIHV_TESTS_DIST_PERF_TRACE_H_

#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace ssihv::testing {

/// Counts over the traced run on one guest CPU.
struct CpuTrace {
  double ticks = 0;                         // tick_sched_timer expiries
  std::map<std::string, double> tick_kept;  // tick_stop failures by cause
  std::map<std::string, double> hrtimers;   // other timers, by function
  std::map<std::string, double> ran;        // tasks switched in, by name
};
using GuestTrace = std::map<int, CpuTrace>;  // by CPU

/// One "SSIHV trace cpu=C ticks=N" or "SSIHV trace cpu=C
/// tick_kept|hrtimer|ran=NAME n=N" line into `trace`. False when malformed.
bool ParseTraceLine(absl::string_view line, GuestTrace* trace);

/// The report's table of one run's trace: a header when `header`, then a
/// row per CPU: ticks, causes that kept the tick, other timers and the
/// tasks switched in besides cpubench and the idle task, most first.
std::string FormatTraceRows(const std::string& run, const GuestTrace& trace,
                            bool header);

}  // namespace ssihv::testing

#endif  // SSIHV_TESTS_DIST_PERF_TRACE_H_
