// The performance run's parsing, naming and report (perf_report.h), on
// hand-made guest output and a hand-made System.map: no VM.
#include "perf_report.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "guest_report.h"

namespace ssihv::testing {
namespace {

constexpr char kConsole[] =
    "SSIHV_INIT_REACHED\n"
    "SSIHV cpu_nodes cpu0=0 cpu1=0 cpu2=1 cpu3=1\n"
    "[   12.5] random: crng init done\n"
    "SSIHV cpubench cpu=0 node=0 mops=205.0\n"
    "SSIHV cpubench cpu=1 node=0 mops=210.0\n"
    "SSIHV cpubench cpu=2 node=1 mops=200.1\n"
    "SSIHV cpubench cpu=3 node=1 mops=197.4\n"
    "SSIHV cpubench threads=4 seconds=10 ops_per_s=812.500 min_thread=200.1 "
    "max_thread=210.0\n"
    "SSIHV cpubench-clock cpu=0 node=0 mops=150.0\n"
    "SSIHV cpubench-clock threads=4 seconds=10 ops_per_s=300.250 "
    "min_thread=50.0 max_thread=150.0\n"
    "SSIHV ipi rounds=200 cpus=0,1 rtt_ns_median=40000 rtt_ns_mean=41000 "
    "rtt_ns_p90=50000\n"
    "SSIHV ipi rounds=200 cpus=0,3 rtt_ns_median=90000 rtt_ns_mean=91000 "
    "rtt_ns_p90=99000\n"
    "SSIHV iortt cpu=0 port=0x64 rounds=200 ns_median=20000 ns_p90=30000 "
    "ns_min=15000\r\n"
    "SSIHV iortt cpu=3 port=0x64 rounds=200 ns_median=120000 ns_p90=150000 "
    "ns_min=100000\n";

TEST_CASE("the guest's perf lines: cpubench, IPI pairs by node, port I/O") {
  RunResult r;
  REQUIRE(ParseGuestPerf(kConsole, &r));
  CHECK(r.cpubench_threads == 4);
  CHECK(r.cpubench_mops == Approx(812.5));
  CHECK(r.cpubench_clock_mops == Approx(300.25));
  REQUIRE(r.cpubench_node_mops.size() == 2);  // the clocked run's not added
  CHECK(r.cpubench_node_mops[0] == Approx(415.0));
  CHECK(r.cpubench_node_mops[1] == Approx(397.5));
  REQUIRE(r.ipi.size() == 2);
  CHECK(r.ipi[0].same_node);
  CHECK_FALSE(r.ipi[1].same_node);
  CHECK(r.ipi[1].cpu_b == 3);
  CHECK(r.ipi[1].median_ns == Approx(90000));
  CHECK(r.ipi[1].rounds == 200);
  REQUIRE(r.iortt.size() == 2);
  CHECK(r.iortt[0].node == 0);
  CHECK(r.iortt[1].node == 1);
  CHECK(r.iortt[1].median_ns == Approx(120000));
  // No "SSIHV uptime=" nor "SSIHV clock" line: the guest's clock unknown.
  CHECK(r.guest_init_uptime_s == -1);
  CHECK(r.guest_before_clock_s == -1);
  RunResult c;
  REQUIRE(ParseGuestPerf(
      std::string("SSIHV uptime=146.20 kernel=6.1.0-57-amd64\n"
                  "SSIHV clock source=kvm-clock sched_offset_ns=7500000000 "
                  "sched_clock_stable=1\n") +
          kConsole,
      &c));
  CHECK(c.guest_init_uptime_s == Approx(146.2));
  CHECK(c.guest_before_clock_s == Approx(7.5));
}

TEST_CASE("the guest report: init's uptimes, or -1 without a number") {
  const GuestReport g = ParseReport(
      "SSIHV uptime=146.20 kernel=6.1.0-57-amd64\n"
      "SSIHV report_done uptime=151.75\nSSIHV_DONE\n"
      "[  160.500001] reboot: Power down\r\n");
  CHECK(g.init_uptime_s == Approx(146.2));
  CHECK(g.done_uptime_s == Approx(151.75));
  CHECK(g.end_uptime_s == Approx(160.500001));
  CHECK(ParseReport("[ 9.5] reboot: Restarting system\n").end_uptime_s ==
        Approx(9.5));
  CHECK(ParseReport("reboot: Power down\n").end_uptime_s == -1);
  CHECK(ParseReport(kConsole).init_uptime_s == -1);
  CHECK(ParseReport(kConsole).done_uptime_s == -1);
  const GuestReport bad =
      ParseReport("SSIHV uptime=soon kernel=6.1.0-57-amd64\n");
  CHECK(bad.init_uptime_s == -1);
}

TEST_CASE("the guest report: where the kernel's image is, if readable") {
  const GuestReport g =
      ParseReport("SSIHV kernel_phys start=1a000000 end=1cbfffff\n");
  REQUIRE(g.kernel_phys.has_value());
  CHECK(g.kernel_phys->first == 0x1a000000);
  CHECK(g.kernel_phys->second == 0x1cbfffff);
  // /proc/iomem without its addresses (not root): zeros, or nothing.
  CHECK_FALSE(ParseReport("SSIHV kernel_phys start= end=\n").kernel_phys);
  CHECK_FALSE(ParseReport("SSIHV kernel_phys start=00000000 end=00000000\n")
                  .kernel_phys.has_value());
  CHECK_FALSE(ParseReport("SSIHV kernel_phys start=2000 end=1000\n")
                  .kernel_phys.has_value());
  CHECK_FALSE(ParseReport(kConsole).kernel_phys.has_value());
}

TEST_CASE("the guest report: the clock, and the time before it began") {
  const GuestReport g = ParseReport(
      "SSIHV clock source=kvm-clock sched_offset_ns=2500000000 "
      "sched_clock_stable=0\n");
  CHECK(g.clock_source == "kvm-clock");
  CHECK(g.sched_clock_stable == 0);
  REQUIRE(g.before_clock_s.has_value());
  CHECK(*g.before_clock_s == Approx(2.5));
  CHECK_FALSE(g.stable_offset_s.has_value());  // not in this line
  // The kernel's offset when it marked sched_clock stable, negative when
  // its timekeeping had fallen behind kvm-clock.
  const GuestReport behind = ParseReport(
      "SSIHV clock source=kvm-clock sched_offset_ns=5400000000 "
      "sched_clock_stable=1 stable_offset_ns=-53046000000\n");
  REQUIRE(behind.stable_offset_s.has_value());
  CHECK(*behind.stable_offset_s == Approx(-53.046));
  CHECK_FALSE(ParseReport("SSIHV clock source=kvm-clock stable_offset_ns=\n")
                  .stable_offset_s.has_value());
  // A kernel that did not say (no kvm-clock): no figure, not a zero.
  const GuestReport none =
      ParseReport("SSIHV clock source=tsc sched_offset_ns=\n");
  CHECK(none.clock_source == "tsc");
  CHECK(none.sched_clock_stable == -1);
  CHECK_FALSE(none.before_clock_s.has_value());
  CHECK_FALSE(ParseReport(kConsole).before_clock_s.has_value());
  CHECK(ParseReport("SSIHV cpu_clocks cpu0=243.1 cpu2=180.5 \n").cpu_clocks ==
        "cpu0=243.1 cpu2=180.5");
}

TEST_CASE("interrupts per CPU during cpubench, from the lines around it") {
  RunResult r;
  REQUIRE(ParseGuestPerf(
      std::string("SSIHV irqs before uptime=100.00 LOC: 1000 10 20 30\n"
                  "SSIHV irqs before uptime=100.00 RES: 5 5 5 5\n") +
          kConsole +
          "SSIHV irqs after uptime=110.00 LOC: 3500 20 30 40\n"
          "SSIHV irqs after uptime=110.00 RES: 15 25 5 5\n",
      &r));
  REQUIRE(r.cpubench_irqs_per_s.size() == 2);
  CHECK(r.cpubench_irqs_per_s["LOC"] ==
        std::vector<double>{250.0, 1.0, 1.0, 1.0});
  CHECK(r.cpubench_irqs_per_s["RES"] ==
        std::vector<double>{1.0, 2.0, 0.0, 0.0});
  r.name = "2 processes";
  const std::string report = FormatReport({r}, "");
  CHECK(report.find("| 2 processes | 250.0, 1.0, 1.0, 1.0 | 1.0, 2.0, 0.0, "
                    "0.0 | - | - |") != std::string::npos);
  // Without the line after cpubench (or with a CPU missing): no rates.
  RunResult half;
  REQUIRE(
      ParseGuestPerf(std::string("SSIHV irqs before uptime=1.00 LOC: 1 2\n") +
                         kConsole + "SSIHV irqs after uptime=2.00 LOC: 3\n",
                     &half));
  CHECK(half.cpubench_irqs_per_s.empty());
  CHECK(FormatReport({half}, "").find("Interrupts per CPU") ==
        std::string::npos);
  RunResult bad;
  CHECK_FALSE(ParseGuestPerf(
      std::string(kConsole) + "SSIHV irqs after uptime=x LOC: 1\n", &bad));
}

TEST_CASE("init's trace of cpubench: per CPU ticks, causes, timers, tasks") {
  RunResult r;
  REQUIRE(ParseGuestPerf(std::string(kConsole) +
                             "SSIHV trace cpu=2 ticks=312\n"
                             "SSIHV trace cpu=2 tick_kept=SCHED n=196\n"
                             "SSIHV trace cpu=2 tick_kept=RCU n=6\n"
                             "SSIHV trace cpu=2 ran=kcompactd1 n=30\n"
                             "SSIHV trace cpu=2 ran=cpubench n=23\n"
                             "SSIHV trace cpu=2 ran=swapper/2 n=9\n"
                             "SSIHV trace cpu=2 ran=ksoftirqd/2 n=24\n"
                             "SSIHV trace cpu=0 hrtimer=watchdog_timer_fn n=4\n"
                             "SSIHV trace cpu=0 ticks=1444\n",
                         &r));
  REQUIRE(r.cpubench_trace.size() == 2);
  CHECK(r.cpubench_trace[2].ticks == 312);
  CHECK(r.cpubench_trace[2].tick_kept["SCHED"] == 196);
  CHECK(r.cpubench_trace[2].ran["kcompactd1"] == 30);
  CHECK(r.cpubench_trace[0].hrtimers["watchdog_timer_fn"] == 4);
  r.name = "2 processes";
  const std::string report = FormatReport({r}, "");
  // Most first; cpubench and the idle task are not "other tasks".
  CHECK(report.find("| 2 processes | 2 | 312 | SCHED 196, RCU 6 | - | "
                    "kcompactd1 30, ksoftirqd/2 24 |") != std::string::npos);
  CHECK(report.find("| 2 processes | 0 | 1444 | - | watchdog_timer_fn 4 | - "
                    "|") != std::string::npos);
  // No trace lines: no table.
  RunResult plain;
  REQUIRE(ParseGuestPerf(kConsole, &plain));
  CHECK(FormatReport({plain}, "").find("What each guest CPU did") ==
        std::string::npos);
  // Malformed lines fail the parse.
  for (const char* bad :
       {"SSIHV trace cpu=x ticks=1\n", "SSIHV trace cpu=1 ticks=\n",
        "SSIHV trace cpu=1 ran=a\n", "SSIHV trace cpu=1 other=a n=1\n",
        "SSIHV trace cpu=1 ran= n=1\n"}) {
    RunResult b;
    CHECK_FALSE(ParseGuestPerf(std::string(kConsole) + bad, &b));
  }
}

TEST_CASE("a missing or failed measurement is not a result") {
  RunResult r;
  std::string no_cpubench = kConsole;
  no_cpubench.erase(no_cpubench.find("SSIHV cpubench threads"), 5);
  CHECK_FALSE(ParseGuestPerf(no_cpubench, &r));
  RunResult r1;  // a thread's line without its node
  CHECK_FALSE(ParseGuestPerf(
      std::string(kConsole) + "SSIHV cpubench cpu=1 mops=3.0\n", &r1));
  RunResult r2;
  CHECK_FALSE(ParseGuestPerf(
      std::string(kConsole) + "SSIHV iortt failed: cpu=2: EPERM\n", &r2));
  RunResult r3;  // a CPU the guest did not place on a node
  CHECK_FALSE(ParseGuestPerf(
      std::string(kConsole) + "SSIHV ipi rounds=2 cpus=0,9 rtt_ns_median=1\n",
      &r3));
}

TEST_CASE("where the lab's CPUs go: thread kinds, task stat, idle ticks") {
  CHECK(ThreadKind("vcpu12") == "vcpu");
  CHECK(ThreadKind("ssihv-fault0") == "ssihv-fault");
  CHECK(ThreadKind("rdmax-data") == "rdmax-data");
  CHECK(ThreadKind("42") == "");
  std::string comm;
  uint64_t ticks = 0;
  // utime 700 and stime 55 (fields 14 and 15); a name with a space and a
  // parenthesis.
  REQUIRE(
      ParseTaskStat("812 (a (b) c) S 1 812 812 0 -1 4194560 100 0 0 0 "
                    "700 55 0 0 20 0 9 0 1234 0 0",
                    &comm, &ticks));
  CHECK(comm == "a (b) c");
  CHECK(ticks == 755);
  CHECK_FALSE(ParseTaskStat("812 (x) S 1 2", &comm, &ticks));
  CHECK_FALSE(ParseTaskStat("812 x S", &comm, &ticks));
  uint64_t idle = 0;
  REQUIRE(ParseIdleTicks("cpu  10 0 20 300 7 0 1 0 0 0\ncpu0 5 0 10 150 3\n",
                         &idle));
  CHECK(idle == 307);
  CHECK_FALSE(ParseIdleTicks("intr 5\n", &idle));
  // 200 ticks of vcpu in 2 s at 100 Hz: 1 CPU; one new kind; one too small.
  const auto rates = CpuRates(
      {{"vcpu", 100}, {"dsm-defer", 7}},
      {{"vcpu", 300}, {"dsm-defer", 7}, {"rdmax-data", 40}}, 2.0, 100.0);
  REQUIRE(rates.size() == 2);
  CHECK(rates.at("vcpu") == Approx(1.0));
  CHECK(rates.at("rdmax-data") == Approx(0.2));
}

constexpr char kSystemMap[] =
    "0000000000000000 D fixed_percpu_data\n"
    "ffffffff81000000 T _text\n"
    "ffffffff81000000 T startup_64\n"
    "ffffffff82a05000 D jiffies_64\n"
    "ffffffff82a05000 D jiffies\n"
    "ffffffff82a05040 D other\n"
    "ffffffff83400000 B _end\n";

TEST_CASE("System.map names a nokaslr kernel's pages by symbol") {
  const SymbolMap map(kSystemMap);
  CHECK(map.Name(0x1000000) == "_text+0x0, startup_64");
  CHECK(map.Name(0x2a05000) == "jiffies_64+0x0, jiffies, other");
  CHECK(map.Name(0x2a06000) == "other+0xfc0");
  const SymbolMap crowded(
      "ffffffff81000000 T _text\nffffffff81001000 D a\nffffffff81001100 D b\n"
      "ffffffff81001200 D c\nffffffff81001300 D d\nffffffff81001400 D e\n"
      "ffffffff81001500 D f\nffffffff81002000 D g\nffffffff81003000 B _end\n");
  CHECK(crowded.Name(0x1001000) == "a+0x0, b, c, d, e, ...");
  CHECK(crowded.Name(0x1000000) == "_text+0x0");
  CHECK(map.Name(0xfff000).empty());   // below the image
  CHECK(map.Name(0x3400000).empty());  // _end and beyond
  CHECK(SymbolMap("").Name(0x1000000).empty());
}

TEST_CASE("the guest's kallsyms block decodes; a broken one is empty") {
  char dir[] = "/tmp/perf_report_test.XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string plain = std::string(dir) + "/syms";
  std::ofstream(plain) << kSystemMap;
  const std::string b64 = std::string(dir) + "/b64";
  REQUIRE(std::system(
              ("gzip -9c '" + plain + "' | base64 > '" + b64 + "'").c_str()) ==
          0);
  std::ifstream in(b64);
  std::stringstream encoded;
  encoded << in.rdbuf();
  std::string console = "SSIHV_INIT_REACHED\nSSIHV_KALLSYMS_BEGIN\r\n";
  // Kernel messages may land between the lines; CRLF from the tty.
  std::string body = encoded.str();
  body.insert(body.find('\n') + 1, "[   3.1] kernel says hi\n");
  for (size_t at;
       (at = body.find("\n")) != std::string::npos && body[at - 1] != '\r';) {
    body.replace(at, 1, "\r\n");
  }
  console += body + "SSIHV_KALLSYMS_END\r\nSSIHV nproc=4\n";
  CHECK(KallsymsFromConsole(console) == kSystemMap);
  // What a failed check would show: the lines that are not base64.
  CHECK_THAT(KallsymsBlockFaults(console),
             Catch::Contains("not base64 (the marker first): "
                             "SSIHV_KALLSYMS_BEGIN | [   3.1] kernel says hi"));
  CHECK(KallsymsFromConsole("SSIHV_INIT_REACHED\n").empty());
  CHECK(KallsymsBlockFaults("SSIHV_KALLSYMS_BEGIN\nQUJD\n") ==
        "no complete block (begin marker 1, end marker 0)");
  std::string broken = console;
  broken.erase(broken.find("SSIHV_KALLSYMS_BEGIN") + 30, 8);
  CHECK(KallsymsFromConsole(broken).empty());
  std::system(("rm -rf '" + std::string(dir) + "'").c_str());
}

TEST_CASE("idle hot pages: what grew between two snapshots, hottest first") {
  const SymbolMap symbols(kSystemMap);
  const std::map<uint64_t, uint64_t> before = {
      {0x2a05000, 100}, {0x5000, 7}, {0x9000, 3}};
  const std::map<uint64_t, uint64_t> after = {
      {0x2a05000, 400}, {0x5000, 7}, {0x9000, 13}, {0x7000, 20}};
  std::vector<HotPage> hot = HotPagesBetween(before, after, 10.0, symbols, 2);
  REQUIRE(hot.size() == 2);
  CHECK(hot[0].gpa == 0x2a05000);
  CHECK(hot[0].per_s == Approx(30.0));
  CHECK(hot[0].symbol == "jiffies_64+0x0, jiffies, other");
  CHECK(hot[1].gpa == 0x7000);  // new in the second snapshot: 20 / 10 s
  CHECK(hot[1].symbol.empty());
  CHECK(HotPagesBetween(before, before, 10.0, symbols, 8).empty());
}

TEST_CASE("the report: ratios against the one-process runs") {
  RunResult kvm, user, two;
  kvm.name = "1 process, KVM irqchip";
  kvm.kvm_irqchip = true;
  kvm.boot_s = 50;
  kvm.cpubench_mops = 100;
  user.name = "1 process, user irqchip";
  user.boot_s = 100;
  user.cpubench_mops = 80;
  user.cpubench_clock_mops = 60;
  two.name = "2 processes (2 nodes)";
  two.processes = 2;
  two.boot_s = 400;
  two.remote_faults_at_init = 8000;
  two.remote_p50_ms_at_init = 4.5;
  two.cpubench_mops = 72;
  two.cpubench_node_mops = {{0, 40}, {1, 32}};
  two.cpubench_clock_mops = 15;
  two.cpubench_cpu = {{"vcpu", 1.25}, {"rdmax-data", 0.5}};
  two.cpubench_idle = 0.25;
  two.cpubench_faults_per_s = 12.5;
  two.cpubench_requests_per_s = 20;
  two.cpubench_s = 10;
  two.cpubench_hot = {{0x3fd4000, 7.5, "tk_core+0x0"}};
  two.ipi = {{0, 1, true, 40000, 200}, {0, 2, false, 120000, 200}};
  two.ipi_remote_faults = {{2, 5000}};
  two.iortt = {{0, 0, 20000}, {3, 1, 100000}};
  two.vmm_forwarded_io_us = 62.5;
  two.idle_hot = {{0x2a05000, 12.5, "jiffies_64+0x0"}};
  two.idle_s = 30;
  two.guest_init_uptime_s = 300;
  two.guest_before_clock_s = 7.5;
  two.guest_stable_offset_s = -90.0;
  user.guest_init_uptime_s = 90;
  const std::string text = FormatReport({kvm, user, two}, "quiet");
  CAPTURE(text);
  // Boot 8.00x KVM's, 4.00x user irqchip's; 20 faults/s, p50 4.5 ms; CPU
  // 0.90.
  CHECK(text.find("| 2 processes (2 nodes) | 400.0 | 8.00 | 4.00 | 8000 | 20 "
                  "| 4.50 | 72.0 | 0.90 |") != std::string::npos);
  CHECK(text.find(
            "| 2 processes (2 nodes) | 0: 40.0, 1: 32.0 | 15.0 | "
            "0.25 | vcpu 1.25, rdmax-data 0.50, idle 0.25 | 12.5 | 20.0 |") !=
        std::string::npos);
  CHECK(text.find("| 1 process, KVM irqchip | - | - | - | - |") !=
        std::string::npos);
  // IPIs, port I/O local and forwarded, and the VMM's own round trip.
  CHECK(text.find("| 2 processes (2 nodes) | 40.0 | 120.0 | 3.00 | 20.0 | "
                  "100.0 | 5.00 | 62.5 | 25.0 |") != std::string::npos);
  CHECK(text.find("| 0x2a05000 | 12.50 | jiffies_64+0x0 |") !=
        std::string::npos);
  CHECK(text.find("Hottest pages during cpubench, 2 processes (2 nodes) "
                  "(10 s):") != std::string::npos);
  CHECK(text.find("| 0x3fd4000 | 7.50 | tk_core+0x0 |") != std::string::npos);
  // The guest's clock at init: 400 s of wall time, 300 s of uptime after
  // 7.5 s before the clock began, so 92.5 s not counted, 90 of them as the
  // kernel's offset from kvm-clock; "-" where a run's guest did not say.
  CHECK(text.find("| 2 processes (2 nodes) | 400.0 | 300.0 | 7.5 | 92.5 | "
                  "90.0 |") != std::string::npos);
  CHECK(text.find("| 1 process, user irqchip | 100.0 | 90.0 | - | - | - |") !=
        std::string::npos);
  // A subset of the shapes without KVM's irqchip ($SSIHV_DIST_PERF_SHAPES=
  // user,2): the user irqchip's run is still the reference, the KVM
  // column says "-".
  const std::string subset = FormatReport({user, two}, "quiet");
  CAPTURE(subset);
  CHECK(subset.find("| 2 processes (2 nodes) | 400.0 | - | 4.00 | 8000 | 20 "
                    "| 4.50 | 72.0 | 0.90 |") != std::string::npos);
  CHECK(subset.find("| 1 process, user irqchip | 100.0 | - | 1.00 |") !=
        std::string::npos);
  CHECK(subset.find("\"(not run)\" (KVM irqchip)") != std::string::npos);
}

}  // namespace
}  // namespace ssihv::testing
