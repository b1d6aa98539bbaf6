// The distributed VM's performance run (issue 12; label dist_perf, in the
// lab VM: `tests/lab/lab_ctest.sh build 3600 perf`; docs/PERFORMANCE.md).
// The same guest (4 vCPUs, 704 MiB) booted four ways in one lab boot: one
// process with KVM's irqchip, one process with the VMM's (`--irqchip user`,
// what every node of a distributed guest runs), two processes (2 nodes),
// three processes (3 nodes). Each boot measures, from the host: the time
// to init and the remote faults until then (each node's /metrics at init);
// in the guest (init's ssihv.perf: tests/dist/guest/): a CPU-bound
// benchmark with one thread per CPU on node-local data, IPI round trips
// from CPU 0 to every other CPU, port I/O round trips from every CPU to a
// device of node 0 (and init's ftrace of the benchmark: what each CPU ran
// and why its tick could not stop); then, with the guest idle (ssihv.hold) for
// $SSIHV_DIST_PERF_IDLE seconds (default 30; POST /vm/stop ends it), the
// pages that still move between nodes per second and the hottest of them by
// guest physical address and, inside the kernel image, by symbol (the guest
// runs with nokaslr so that a GPA maps to one; Debian's System.map is a stub,
// so the first boot prints its data symbols from /proc/kallsyms).
//
// Lab timings are not performance figures: only the ratios of one run are
// (docs/PERFORMANCE.md). The test fails when a boot fails or a measurement
// is missing, never on a ratio; it prints the report and writes it to
// $SSIHV_DIST_PERF_REPORT when set, with each boot's node-0 console beside
// it ($SSIHV_DIST_PERF_REPORT.<shape>.console: the guest's own lines, its
// kallsyms block included, for what the report does not tabulate).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cluster_fixture.h"
#include "perf_report.h"
#include "ssihv/base/file_util.h"
#include "ssihv/control/client.h"
#include "ssihv/control/metrics.h"
#include "ssihv/control/prometheus.h"

namespace ssihv::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;
using Json = nlohmann::json;

// Each boot's limit to each of its lines: $SSIHV_DIST_BOOT_TIMEOUT seconds,
// default 1200 (the 3-process shape may need more: docs/LAB.md).
seconds BootTimeout() { return DistBootTimeout(seconds(1200)); }

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string Get(const std::string& address, const std::string& target) {
  auto r = control::HttpCall(address, "GET", target, "", absl::Seconds(10));
  INFO("GET " << address << target);
  REQUIRE(r.ok());
  REQUIRE(r->status == 200);
  return r->body;
}

// Sums of the counters this run compares, over every node of `c`.
struct Counters {
  double remote_faults = 0;    // this node's vCPUs' remote read/write/upgrade
  double requests_served = 0;  // page requests served as home, all peers
  double bytes_sent = 0;       // transport payload bytes, all peers
  double forwarded_io = 0;     // accesses forwarded to node 0, all nodes
  double forwarded_io_s = 0;   // their round trips, summed
  double remote_p50_s = 0;     // remote fault service p50, the slowest node
};

// `running`: the nodes with a process (one process: node 0 only).
Counters Scrape(const TestCluster& c, uint32_t running) {
  Counters sum;
  for (uint32_t k = 0; k < running; ++k) {
    auto samples =
        control::ParseTextExposition(Get(c.api_address(k), "/metrics"));
    REQUIRE(samples.ok());
    const control::MetricsSummary summary = control::SummarizeMetrics(*samples);
    if (summary.remote_p50_s) {
      sum.remote_p50_s = std::max(sum.remote_p50_s, *summary.remote_p50_s);
    }
    for (const control::ParsedSample& s : *samples) {
      const std::string* kind = s.LabelValue("kind");
      if (s.name == "ssihv_page_faults_total" && kind &&
          (*kind == "remote_read" || *kind == "remote_write" ||
           *kind == "upgrade")) {
        sum.remote_faults += s.value;
      } else if (s.name == "ssihv_remote_faults_served_total") {
        sum.requests_served += s.value;
      } else if (s.name == "ssihv_transport_sent_bytes_total") {
        sum.bytes_sent += s.value;
      } else if (s.name == control::kMetricForwardedIo) {
        sum.forwarded_io += s.value;
      } else if (s.name == control::kMetricForwardedIoSeconds) {
        sum.forwarded_io_s += s.value;
      }
    }
  }
  return sum;
}

// Every node's hottest pages (cumulative): gpa -> reads + writes.
std::map<uint64_t, uint64_t> HotPages(const TestCluster& c, uint32_t running) {
  std::map<uint64_t, uint64_t> out;
  for (uint32_t k = 0; k < running; ++k) {
    Json j = Json::parse(Get(c.api_address(k), "/pages/hot?limit=4096"));
    for (const Json& p : j["pages"]) {
      const uint64_t gpa =
          std::stoull(p["gpa"].get<std::string>(), nullptr, 16);
      out[gpa] = p["reads"].get<uint64_t>() + p["writes"].get<uint64_t>();
    }
  }
  return out;
}

// CPU ticks of the node processes' threads by kind, and the machine's idle
// ticks (the lab VM's CPUs: every node runs in it).
struct CpuSample {
  std::map<std::string, uint64_t> by_kind;
  uint64_t idle = 0;
  bool idle_ok = false;
  Clock::time_point at;
};

CpuSample SampleCpu(TestCluster& c, uint32_t running) {
  CpuSample s;
  s.at = Clock::now();
  for (uint32_t k = 0; k < running; ++k) {
    const std::string task =
        "/proc/" + std::to_string(c.node(k).pid()) + "/task";
    DIR* d = ::opendir(task.c_str());
    if (d == nullptr) continue;
    for (dirent* e; (e = ::readdir(d)) != nullptr;) {
      if (e->d_name[0] == '.') continue;
      std::string comm;
      uint64_t ticks = 0;
      // A thread that ended meanwhile reads as "" and is skipped.
      if (ParseTaskStat(
              base::ReadFile(task + "/" + e->d_name + "/stat").value_or(""),
              &comm, &ticks)) {
        s.by_kind[ThreadKind(comm)] += ticks;
      }
    }
    ::closedir(d);
  }
  s.idle_ok =
      ParseIdleTicks(base::ReadFile("/proc/stat").value_or(""), &s.idle);
  return s;
}

// Where the CPUs went between two samples (RunResult::cpubench_cpu,
// cpubench_idle, cpubench_s).
void CpuBetween(const CpuSample& a, const CpuSample& b, RunResult* r) {
  r->cpubench_s = std::chrono::duration<double>(b.at - a.at).count();
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  if (r->cpubench_s <= 0 || hz <= 0) return;
  r->cpubench_cpu = CpuRates(a.by_kind, b.by_kind, r->cpubench_s, hz);
  if (a.idle_ok && b.idle_ok && b.idle >= a.idle) {
    r->cpubench_idle =
        static_cast<double>(b.idle - a.idle) / hz / r->cpubench_s;
  }
}

struct Shape {
  std::string key;  // for $SSIHV_DIST_PERF_SHAPES
  std::string name;
  std::vector<NodeSpec> nodes;
  bool one_process = false;
  std::vector<std::string> vmm_args;
};

RunResult Measure(const Shape& shape, int port_base, const std::string& append,
                  seconds idle_window, const SymbolMap& symbols,
                  std::string* console) {
  std::vector<NodeSpec> nodes = shape.nodes;
  for (size_t k = 0; k < nodes.size(); ++k) {
    nodes[k].api_port = port_base + 50 + static_cast<int>(k);
  }
  const std::string token_file =
      "/tmp/ssihv-dist-perf-token-" + std::to_string(::getpid());
  const std::string token = "dist-perf-token-0123456789";
  std::ofstream(token_file) << token << "\n";
  REQUIRE(::chmod(token_file.c_str(), 0600) == 0);
  struct Remove {
    const std::string& path;
    ~Remove() { std::remove(path.c_str()); }
  } remove_token{token_file};
  TestCluster c(nodes, "tcp", port_base,
                "\"api_token_file\": \"" + token_file + "\", ");
  RunResult r;
  r.name = shape.name;
  r.processes = shape.one_process ? 1 : static_cast<int>(nodes.size());
  r.kvm_irqchip = shape.key == "kernel";
  const uint32_t running = shape.one_process ? 1 : c.size();
  // A boot that does not get there: every node's registers and statistics.
  auto reach = [&](const char* line) {
    if (c.node(0).WaitForOutput(line, BootTimeout())) return;
    c.QuitStuck();
    FAIL(shape.name << ": no \"" << line << "\"\n" << c.Dump());
  };
  const auto t0 = Clock::now();
  if (shape.one_process) {
    c.StartOneProcess(append, shape.vmm_args);
  } else {
    c.StartAll(append, shape.vmm_args);
  }
  reach("SSIHV_INIT_REACHED");
  r.boot_s = Since(t0);
  const Counters at_init = Scrape(c, running);
  r.remote_faults_at_init = at_init.remote_faults;
  r.remote_p50_ms_at_init = at_init.remote_p50_s * 1e3;
  r.boot_hot = HotPagesBetween({}, HotPages(c, running), r.boot_s, symbols, 8);
  std::printf(
      "dist_perf: %s: init after %.1f s, %.0f remote faults (p50 %.2f ms)\n",
      shape.name.c_str(), r.boot_s, r.remote_faults_at_init,
      r.remote_p50_ms_at_init);
  std::fflush(stdout);
  // Booted on fewer CPUs (maxcpus= with ssihv.online=...: docs/VMM.md,
  // "Booting on node 0's CPUs"), init's first line comes before it brings
  // the others online: say when they all were.
  if (append.find("ssihv.online=") != std::string::npos) {
    reach("SSIHV onlined");
    const double online_s = Since(t0);
    std::printf(
        "dist_perf: %s: every CPU online after %.1f s, %.0f remote faults\n",
        shape.name.c_str(), online_s, Scrape(c, running).remote_faults);
    std::fflush(stdout);
  }
  // The lab's CPUs while cpubench runs (from just after its start, when
  // the scrapes above took long, to its end).
  reach("SSIHV perf start");
  const CpuSample cpu_a = SampleCpu(c, running);
  const Counters bench_a = Scrape(c, running);
  const std::map<uint64_t, uint64_t> bench_hot_a = HotPages(c, running);
  const bool late =
      c.node(0).out().find("SSIHV cpubench threads=") != std::string::npos;
  reach("SSIHV cpubench threads=");
  Counters after_bench = bench_a;
  if (!late) {
    CpuBetween(cpu_a, SampleCpu(c, running), &r);
    const Counters bench_b = Scrape(c, running);
    after_bench = bench_b;
    r.cpubench_faults_per_s =
        (bench_b.remote_faults - bench_a.remote_faults) / r.cpubench_s;
    r.cpubench_requests_per_s =
        (bench_b.requests_served - bench_a.requests_served) / r.cpubench_s;
    r.cpubench_hot = HotPagesBetween(bench_hot_a, HotPages(c, running),
                                     r.cpubench_s, symbols, 8);
  }
  // Remote faults of all nodes per IPI round trip, pair by pair: pair 0,c
  // (c >= 2) runs from the line of pair 0,c-1 to its own (its result, or
  // "SSIHV ipi failed cpus=0,c": both name the pair, so a failed pair is
  // a missing figure in the report, not a wait for the boot timeout).
  uint32_t vcpus = 0;
  for (const NodeSpec& n : nodes) vcpus += n.vcpus;
  Counters before_pair;  // set at pair 0,1's line; no window before it
  for (uint32_t cpu = 1; cpu < vcpus; ++cpu) {
    const std::string line = absl::StrCat(" cpus=0,", cpu);
    reach(line.c_str());
    const Counters after_pair = Scrape(c, running);
    if (cpu >= 2) {
      r.ipi_remote_faults[cpu] =
          after_pair.remote_faults - before_pair.remote_faults;
    }
    before_pair = after_pair;
  }
  reach("SSIHV holding");
  const auto idle0 = Clock::now();
  const Counters a = Scrape(c, running);
  const std::map<uint64_t, uint64_t> hot_a = HotPages(c, running);
  if (a.forwarded_io > after_bench.forwarded_io) {
    r.vmm_forwarded_io_us = (a.forwarded_io_s - after_bench.forwarded_io_s) /
                            (a.forwarded_io - after_bench.forwarded_io) * 1e6;
  }
  // The idle window is the measurement's length, not a wait for an event;
  // then the API stops the guest (a hold that ran out would power it off
  // under the second scrape).
  std::this_thread::sleep_for(idle_window);
  const Counters b = Scrape(c, running);
  const std::map<uint64_t, uint64_t> hot_b = HotPages(c, running);
  r.idle_s = Since(idle0);
  auto stop = control::HttpCall(c.api_address(0), "POST", "/vm/stop", token,
                                absl::Seconds(30));
  REQUIRE(stop.ok());
  REQUIRE(stop->status == 200);
  r.idle_requests_per_s = (b.requests_served - a.requests_served) / r.idle_s;
  r.idle_bytes_per_s = (b.bytes_sent - a.bytes_sent) / r.idle_s;
  r.idle_hot = HotPagesBetween(hot_a, hot_b, r.idle_s, symbols, 8);
  for (uint32_t k = 0; k < running; ++k) {
    std::optional<int> st = c.Wait(k, seconds(120));
    if (!st) c.QuitStuck();
    INFO(shape.name << ", node " << k << "\n" << c.Dump());
    REQUIRE(st == 0);
  }
  *console = c.node(0).out();
  if (const char* path = std::getenv("SSIHV_DIST_PERF_REPORT")) {
    std::ofstream(absl::StrCat(path, ".", shape.key, ".console")) << *console;
  }
  INFO(shape.name << "\n" << *console);
  REQUIRE(ParseGuestPerf(*console, &r));
  return r;
}

TEST_CASE("distributed VM performance: 1, 2 and 3 processes, one lab run") {
  const std::string perf_s = Env("SSIHV_DIST_PERF_SECONDS", "10");
  const seconds idle(std::stoi(Env("SSIHV_DIST_PERF_IDLE", "30")));
  // The guest holds far longer than the idle window; the API stops it.
  // $SSIHV_DIST_PERF_APPEND: more kernel parameters, to compare guest
  // settings (docs/PERFORMANCE.md).
  const std::string extra = Env("SSIHV_DIST_PERF_APPEND", "");
  const std::string append =
      "quiet nokaslr ssihv.end=poweroff ssihv.perf=" + perf_s +
      " ssihv.hold=3600 ssihv.trace=1" + (extra.empty() ? "" : " " + extra);
  const std::vector<NodeSpec> two = {{2, 384}, {2, 320}};
  const std::vector<NodeSpec> three = {{1, 256}, {2, 256}, {1, 192}};
  const std::vector<Shape> all = {
      {"kernel", "1 process, KVM irqchip", two, true, {"--irqchip", "kernel"}},
      {"user", "1 process, user irqchip", two, true, {"--irqchip", "user"}},
      {"2", "2 processes (2 nodes)", two, false, {}},
      // As dist_test's 3-process cases (docs/VMM.md, "Three nodes in the
      // lab"): the DSM's threads before the vCPUs on the lab's two CPUs.
      {"3", "3 processes (3 nodes)", three, false, {"--service-nice", "-10"}},
  };
  // $SSIHV_DIST_PERF_SHAPES: some of them (keys, comma-separated), for a
  // shorter run (the ratios are then against the first and second run).
  const std::string keys = Env("SSIHV_DIST_PERF_SHAPES", "kernel,user,2,3");
  std::vector<Shape> shapes;
  for (absl::string_view key : absl::StrSplit(keys, ',')) {
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const Shape& s) { return s.key == key; });
    INFO("SSIHV_DIST_PERF_SHAPES: unknown shape \""
         << key << "\" (kernel, user, 2, 3)");
    REQUIRE(it != all.end());
    shapes.push_back(*it);
  }
  std::vector<RunResult> runs;
  // The first boot also prints the guest's data symbols: the kernel and
  // nokaslr are the same in every boot, so they name every run's pages.
  SymbolMap symbols("");
  int port_base = 7950;
  for (const Shape& s : shapes) {
    const bool first = runs.empty();
    std::string console;
    runs.push_back(Measure(s, port_base,
                           first ? append + " ssihv.kallsyms=1" : append, idle,
                           symbols, &console));
    if (first) {
      const std::string kallsyms = KallsymsFromConsole(console);
      INFO("decoded " << kallsyms.size() << " bytes; "
                      << KallsymsBlockFaults(console));
      CHECK(kallsyms.find(" jiffies_64\n") != std::string::npos);
      symbols = SymbolMap(kallsyms);
      // This boot's own pages were counted before the symbols arrived.
      for (auto* pages : {&runs.back().boot_hot, &runs.back().cpubench_hot,
                          &runs.back().idle_hot}) {
        for (HotPage& p : *pages) p.symbol = symbols.Name(p.gpa);
      }
    }
    port_base += 100;
    const RunResult& r = runs.back();
    CHECK(r.cpubench_threads == 4);
    CHECK(r.ipi.size() == 3);
    CHECK(r.iortt.size() == 4);
    if (r.processes > 1) CHECK(r.remote_faults_at_init > 0);
    if (r.processes == 1) CHECK(r.remote_faults_at_init == 0);
    // What is measured so far, in case a later boot fails.
    std::printf("dist_perf: after %s:\n%s\n", s.name.c_str(),
                FormatReport(runs, append).c_str());
    std::fflush(stdout);
  }
  const std::string report = FormatReport(runs, append);
  std::printf("%s", report.c_str());
  if (const char* path = std::getenv("SSIHV_DIST_PERF_REPORT")) {
    std::ofstream(path) << report;
  }
}

}  // namespace
}  // namespace ssihv::testing
