// What the distributed VM's performance run (dist_perf.cc) measures, how it
// reads the guest's lines and the kernel's System.map, and its report.
// Pure functions, unit-tested on the host (perf_report_test.cc).
#ifndef SSIHV_TESTS_DIST_PERF_REPORT_H_
#define SSIHV_TESTS_DIST_PERF_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "perf_trace.h"

namespace ssihv::testing {

struct IpiSample {
  uint32_t cpu_a = 0, cpu_b = 0;
  bool same_node = false;
  double median_ns = 0;
  double rounds = 0;
};

struct IoSample {
  uint32_t cpu = 0;
  uint32_t node = 0;  // the CPU's NUMA node (0: the devices' node)
  double median_ns = 0;
};

struct HotPage {
  uint64_t gpa = 0;
  double per_s = 0;    // transactions on the page per second while idle
  std::string symbol;  // "jiffies+0x40", or empty outside the kernel image
};

struct RunResult {
  std::string name;
  int processes = 1;
  bool kvm_irqchip = false;  // KVM's in-kernel irqchip (else the user one)
  double boot_s = 0;         // start of the processes to init's first line
  // The guest's own clock at init (-1: not printed): its uptime when init
  // began its report, and how long the VM ran before that clock began
  // (kvm-clock's sched offset). With boot_s they say how much of the
  // lab's wall time the guest's clock did not count.
  double guest_init_uptime_s = -1;
  double guest_before_clock_s = -1;
  // What the kernel added to sched_clock when it marked it stable: minus
  // how far its timekeeping had fallen behind kvm-clock (not printed: none).
  std::optional<double> guest_stable_offset_s;
  double remote_faults_at_init = 0;
  double remote_p50_ms_at_init = 0;  // fault service p50, slowest node
  std::vector<HotPage> boot_hot;     // the pages most requested until init
  int cpubench_threads = 0;
  double cpubench_mops = 0;  // millions of operations per second, all CPUs
  std::map<int, double> cpubench_node_mops;  // the same by NUMA node
  double cpubench_clock_mops = 0;  // cpubench --clock, all CPUs (0: not run)
  // Where the lab's CPUs went while cpubench ran: CPU seconds per second
  // by thread kind (ThreadKind), summed over the node processes, and the
  // machine's idle CPUs.
  std::map<std::string, double> cpubench_cpu;
  double cpubench_idle = -1;  // -1: not measured
  // The DSM's traffic in the same window: page requests the homes served
  // and the nodes' remote faults per second, and the pages that moved.
  double cpubench_requests_per_s = -1;
  double cpubench_faults_per_s = -1;
  double cpubench_s = 0;
  std::vector<HotPage> cpubench_hot;
  // Interrupts each guest CPU took per second of the guest's clock while
  // cpubench ran (init's "SSIHV irqs" lines around it), by kind: LOC (the
  // local timer: the tick), RES, CAL, TLB (IPIs). Empty: not printed.
  std::map<std::string, std::vector<double>> cpubench_irqs_per_s;
  // init's ftrace of cpubench by CPU ("SSIHV trace" lines); empty: none.
  GuestTrace cpubench_trace;
  std::vector<IpiSample> ipi;
  // dist_perf: remote faults of all nodes while pair 0,c ran (c >= 2; the
  // window between the guest's lines of pairs 0,c-1 and 0,c), by c.
  std::map<uint32_t, double> ipi_remote_faults;
  std::vector<IoSample> iortt;
  double idle_s = 0;
  // The VMM's own mean round trip of forwarded I/O (request sent to answer
  // received, ssihv_forwarded_io_seconds_total) between the end of
  // cpubench and the idle hold: the window of the guest's iortt. 0: none.
  double vmm_forwarded_io_us = 0;
  double idle_requests_per_s = 0;  // page requests served, all homes
  double idle_bytes_per_s = 0;     // transport payload bytes, all nodes
  std::vector<HotPage> idle_hot;
};

/// Fills the guest-side fields of `r` from the console (init's "SSIHV
/// cpubench", "SSIHV ipi", "SSIHV iortt" lines; each CPU's node from
/// "SSIHV cpu_nodes"; "SSIHV cpubench-clock" and "SSIHV trace" when
/// present; the guest's clock at init from "SSIHV uptime=" and "SSIHV
/// clock", -1 when absent).
/// False when a perf line is missing or malformed.
bool ParseGuestPerf(const std::string& console, RunResult* r);

/// The guest's data symbols from its console (init's ssihv.kallsyms=1: the
/// lines between SSIHV_KALLSYMS_BEGIN and _END, base64 of gzip of
/// "address type name" lines), decoded with the host's base64 and gzip;
/// empty when the block is missing or does not decode.
std::string KallsymsFromConsole(const std::string& console);
/// Why a block would not decode, for a failed check: whether both markers
/// came, how many lines lay between them and the first that are not base64
/// (other console output that broke a line of the block).
std::string KallsymsBlockFaults(const std::string& console);

/// System.map or /proc/kallsyms text ("address type name" lines), for
/// naming guest-physical addresses of a kernel booted with nokaslr
/// (virtual = physical + __START_KERNEL_map).
class SymbolMap {
 public:
  explicit SymbolMap(const std::string& text);
  /// "name+0xoff" for a GPA inside [_text, _end), else empty.
  std::string Name(uint64_t gpa) const;

 private:
  std::multimap<uint64_t, std::string> symbols_;  // address -> names
  uint64_t text_ = 0, end_ = 0;
};

/// The `n` pages whose transaction counts grew most between two snapshots
/// of /pages/hot (gpa -> reads + writes) taken `seconds` apart, named
/// from `symbols`.
std::vector<HotPage> HotPagesBetween(const std::map<uint64_t, uint64_t>& before,
                                     const std::map<uint64_t, uint64_t>& after,
                                     double seconds, const SymbolMap& symbols,
                                     size_t n);

/// A thread's kind from its name: the name without its trailing digits
/// ("vcpu3" -> "vcpu", "ssihv-fault0" -> "ssihv-fault").
std::string ThreadKind(absl::string_view comm);

/// One /proc/PID/task/TID/stat line: the thread's name and its user plus
/// system time in clock ticks. False when malformed.
bool ParseTaskStat(absl::string_view stat, std::string* comm, uint64_t* ticks);

/// The "cpu" line of /proc/stat: idle plus iowait ticks of all CPUs.
bool ParseIdleTicks(absl::string_view proc_stat, uint64_t* ticks);

/// CPU ticks by thread kind: `after` minus `before`, per second of
/// `seconds`, with `hz` ticks per second; kinds below 0.005 left out.
std::map<std::string, double> CpuRates(
    const std::map<std::string, uint64_t>& before,
    const std::map<std::string, uint64_t>& after, double seconds, double hz);

/// The Markdown report: one table of the runs, ratios against the first
/// one-process run with KVM's irqchip and the first with the user irqchip
/// ("-" when a shape was not run), the idle hot pages of the multi-process
/// runs.
std::string FormatReport(const std::vector<RunResult>& runs,
                         const std::string& append);

}  // namespace ssihv::testing

#endif  // SSIHV_TESTS_DIST_PERF_REPORT_H_
