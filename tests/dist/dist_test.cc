// One guest across several ssihv-vmm processes (issue 12; label kvm, in the
// lab VM; the RDMA case needs rxe0 too): the unmodified Debian kernel boots
// across 2 and 3 processes over TCP and over RDMA with the same guest-side
// checks as linux_boot_test; each node ran only its own vCPUs and moved
// pages; the in-guest coherence stress (tests/dist/guest/coherence.c) is
// exact; a SIGKILLed node is reported by every survivor within 10 s with the
// lost-peer status; start-up errors end with a clear message, never a hang.
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.h"
#include "guest_report.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/control/client.h"
#include "ssihv/testing/device.h"

namespace ssihv::testing {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kExitPeerLost = 5;  // apps/ssihv-vmm/options.h
// A boot to power-off (or to the stress's start): $SSIHV_DIST_BOOT_TIMEOUT
// seconds, default 1800 (the lab's 3-process boots take 15-30 minutes).
seconds BootTimeout() { return DistBootTimeout(seconds(1800)); }

// Coherence rounds per thread per node (the lab is emulated: small).
std::string CoherenceRounds() {
  const char* v = std::getenv("SSIHV_DIST_COHERENCE_ROUNDS");
  return v ? v : "150";
}

// The guest's command line: `base` plus $SSIHV_DIST_APPEND (more kernel
// parameters, to try guest settings in the lab without a rebuild).
std::string Cmdline(const std::string& base) {
  const char* v = std::getenv("SSIHV_DIST_APPEND");
  return v != nullptr && *v != '\0' ? base + " " + v : base;
}

// Three processes of one vCPU each, in the lab (docs/VMM.md, "Three nodes
// in the lab"): the guest's kernel lands in node 0's memory (the SRAT's
// hot-pluggable remote memory; CheckKernelOnNodeZero checks it), where CPU 0
// rewrites the timekeeper and `jiffies` at every tick, and the
// DSM's service threads run before the vCPU threads that wait for them
// (`--service-nice -10`; the lab's two CPUs serve three vCPUs). init's
// report runs on CPU 0 as in the 2-process case (its shell's forks on the
// other nodes' CPUs move pages for nothing the checks read); the coherence
// stress after it runs on every CPU.
const char kThreeNodeBoot[] = "quiet ssihv.end=poweroff ssihv.report_cpu=0";
// The boots to power-off start on node 0's CPU alone and init brings the
// other nodes' CPUs online (docs/VMM.md, "Booting on node 0's CPUs"):
// until fs_initcall every online CPU ticks on the jiffies clock, idle or
// not, and each tick moves the clock's pages between the nodes (over TCP
// in the lab: 1922 s to power-off booting all three, 453 s this way).
// "Every vCPU of 3 processes comes up" keeps the boot-time bring-up. Once
// up, CPUs 1 and 2 run tickless, without NUMA balancing and proactive
// compaction: what --guest-tuning appends, as the README's demo does
// (docs/VMM.md, "Guest settings for a guest across nodes"), so the
// coherence stress's one thread per CPU is not interrupted 250 times a
// second by a tick that reads CPU 0's clock pages: over RDMA in the lab
// the boot to power-off took 149 s with nohz_full=1-2 alone against
// 342-546 s, the SIGKILL case 32 s against ~220 s. The 2-process boot in
// CI keeps Linux's defaults.
const char kThreeNodeGuest[] =
    "quiet ssihv.end=poweroff ssihv.report_cpu=0 maxcpus=1 ssihv.online=cpus";
// The 2-process SIGKILL cases' guest (with --guest-tuning on every node).
const char kTwoNodeGuest[] =
    "quiet ssihv.end=poweroff ssihv.report_cpu=0 maxcpus=2 ssihv.online=cpus";
const std::vector<std::string> kThreeNodeVmm = {"--service-nice", "-10",
                                                "--guest-tuning"};
// Node 0's log line for kThreeNodeVmm's --guest-tuning on 3 vCPUs.
const char kThreeNodeTuning[] =
    "--guest-tuning: appended nohz_full=1-2 numa_balancing=disable "
    "sysctl.vm.compaction_proactiveness=0";

cluster::ClusterConfig Parse(const TestCluster& c) {
  auto parsed = cluster::ParseClusterConfig(c.config_json());
  REQUIRE(parsed.ok());
  return *parsed;
}

// The SRAT marks the other nodes' memory hot-pluggable, so physical KASLR
// must have put the whole kernel image in node 0's memory (docs/VMM.md,
// "Where the kernel lands"), whatever the command line says about KASLR.
void CheckKernelOnNodeZero(const cluster::GuestLayout& layout,
                           const GuestReport& g) {
  REQUIRE(g.kernel_phys.has_value());
  const auto [first, last] = *g.kernel_phys;
  INFO("kernel image at guest-physical 0x" << std::hex << first << "-0x"
                                           << last);
  bool inside = false;
  for (const cluster::GpaRange& r : layout.RangesOfNode(0)) {
    inside = inside || (r.Contains(first) && r.Contains(last));
  }
  CHECK(inside);
  std::printf("dist_test: the kernel's image at guest-physical 0x%llx-0x%llx\n",
              static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(last));
}

uint64_t RemoteFaults(const nlohmann::json& stats) {
  const nlohmann::json& f = stats["pager"]["faults"];
  return f["remote_read"].get<uint64_t>() + f["remote_write"].get<uint64_t>() +
         f["upgrade"].get<uint64_t>();
}

// A node's statistics after an orderly stop: no fault left unresolved, and
// the stop barrier heard every peer's vCPUs stop before this node left.
void CheckOrderlyStop(const nlohmann::json& stats) {
  CHECK(stats["pager"]["errors"] == 0);
  CHECK(stats["stop"]["barrier_silent"] == nlohmann::json::array());
}

// The in-guest coherence stress ran on every CPU of every node and was
// exact (tests/dist/guest/coherence.c).
void CheckStress(const GuestReport& g, int cpus, int nodes) {
  CHECK(g.coherence_exit == 0);
  CHECK_THAT(g.coherence, Catch::StartsWith("SSIHV_COHERENCE ok cpus=" +
                                            std::to_string(cpus) +
                                            " nodes=" + std::to_string(nodes)));
}

// A 3-process boot of kThreeNodeGuest: node 0 appended the guest settings,
// the guest started on node 0's CPU alone, init brought nodes 1 and 2
// online, and the coherence stress was exact.
void CheckThreeNodeStress(TestCluster& c, const GuestReport& g) {
  CHECK_THAT(c.node(0).err(), Catch::Contains(kThreeNodeTuning));
  CHECK(g.booted_online == "0");
  CheckStress(g, 3, 3);
}

// The vCPUs node k runs, in order: the layout gives each node a range.
std::vector<uint32_t> OwnVcpus(const cluster::GuestLayout& layout, uint32_t k) {
  std::vector<uint32_t> own(layout.VcpusOfNode(k));
  std::iota(own.begin(), own.end(), layout.FirstVcpuOfNode(k));
  return own;
}

// What a run cost, printed when it passed too (ctest keeps the output): the
// lab's boots are long and their statistics are the only record.
void PrintCost(TestCluster& c, Clock::time_point start) {
  std::printf("dist_test: every node exited %.0f s after the check began\n",
              std::chrono::duration<double>(Clock::now() - start).count());
  for (uint32_t k = 0; k < c.size(); ++k) {
    const nlohmann::json s = c.Stats(k);
    const nlohmann::json& dsm = s["dsm"]["dsm"];
    auto count = [&dsm](const char* key) {
      return static_cast<unsigned long long>(dsm.value(key, uint64_t{0}));
    };
    std::printf(
        "dist_test: node %u: ran %.1f s, its vCPU threads ended %.1f s "
        "after the stop, it served its peers %.2f s more, its VM's kvmclock "
        "read %.1f s then (-1: unknown); "
        "%llu remote faults, remote read p50 %.2f ms; "
        "grant hold doublings %llu (interrupted writers %llu); background "
        "downgrades %llu (%llu useful, %llu wasted)\n",
        k, s.value("run_seconds", -1.0), s["stop"].value("join_seconds", -1.0),
        s["stop"].value("barrier_seconds", -1.0),
        s.contains("kvm_clock") ? s["kvm_clock"].value("guest_s", -1.0) : -1.0,
        static_cast<unsigned long long>(RemoteFaults(s)),
        s["pager"]["latency_us"]["remote_read"]["p50"].get<double>() / 1000,
        count("hold_escalations"), count("hold_interrupted_writes"),
        count("background_downgrades"), count("background_downgrades_useful"),
        count("background_downgrades_wasted"));
    std::printf(
        "dist_test: node %u: answer lanes: %llu lane calls, %llu answered "
        "there, %llu without a lane; %llu lane requests served; %llu frames "
        "waited for a lane answer\n",
        k, count("lane_calls"), count("lane_answers_taken"),
        count("lane_fallbacks"), count("lane_requests_served"),
        count("frames_parked"));
  }
}

// Seconds after `start` at which node 0's console showed `text`, or -1 if
// it did not by `deadline` (or node 0's output ended first).
double SeenAt(TestCluster& c, const std::string& text, Clock::time_point start,
              Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  if (left.count() <= 0 || !c.node(0).WaitForOutput(text, left)) return -1;
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Every node exits 0 after the guest powered off; the guest saw the
// config's topology; each node ran exactly its own vCPUs and took pages
// from the others. Returns what the guest reported.
GuestReport CheckCleanRun(TestCluster& c) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + BootTimeout();
  // When init and the kernel's last line reached the console, against the
  // guest's own uptimes: the time before the guest's clock began and after
  // its last line, which the uptimes cannot show.
  const double init_at = SeenAt(c, "SSIHV uptime=", start, deadline);
  const double end_at = SeenAt(c, "reboot: ", start, deadline);
  double exit_at = -1;  // node 0's exit, seconds after start
  for (uint32_t k = 0; k < c.size(); ++k) {
    const auto left =
        std::chrono::duration_cast<seconds>(deadline - Clock::now());
    std::optional<int> st = c.Wait(k, std::max(left, seconds(1)));
    if (!st) c.QuitStuck();  // their registers and statistics for the dump
    INFO("node " << k << "\n" << c.Dump());
    REQUIRE(st == 0);
    if (k == 0) {
      exit_at = std::chrono::duration<double>(Clock::now() - start).count();
    }
  }
  INFO(c.Dump());
  const cluster::ClusterConfig config = Parse(c);
  const cluster::GuestLayout layout(config);
  GuestReport g = ParseReport(c.node(0).out());
  REQUIRE(g.reached_init);
  REQUIRE(g.done);
  CheckGuestMatches(config, g);
  CheckKernelOnNodeZero(layout, g);
  for (uint32_t k = 0; k < c.size(); ++k) {
    INFO("node " << k);
    nlohmann::json s = c.Stats(k);
    CHECK(s["stop"]["reason"] == "guest power off");
    CHECK(s["node"] == k);
    CHECK(s["local_vcpus"].get<std::vector<uint32_t>>() == OwnVcpus(layout, k));
    CHECK(RemoteFaults(s) > 0);
    CheckOrderlyStop(s);
    if (k > 0) CHECK(c.node(k).out().empty());  // node 0 owns the console
  }
  std::printf(
      "dist_test: guest uptime %.1f s at init, %.1f s when init's report was "
      "done, %.1f s at the kernel's last line\n",
      g.init_uptime_s, g.done_uptime_s, g.end_uptime_s);
  std::printf(
      "dist_test: node 0's console showed init %.1f s and the kernel's last "
      "line %.1f s after the nodes started; the guest's clock (%s) began "
      "%.1f s after node 0's VM was made (-1: unknown); sched_clock stable: "
      "%d (-1: unknown), the kernel's clocks %.1f s behind kvm-clock then "
      "(nan: unknown)\n",
      init_at, end_at, g.clock_source.c_str(), g.before_clock_s.value_or(-1),
      g.sched_clock_stable,
      g.stable_offset_s ? -*g.stable_offset_s
                        : std::numeric_limits<double>::quiet_NaN());
  // Against each VM's kvmclock at the stop (PrintCost, below) and the
  // guest's last printk stamp: a kernel whose clocks lost ticks before they
  // moved onto kvm-clock carries that loss as an offset from kvm-clock.
  std::printf("dist_test: node 0 exited %.1f s after the nodes started\n",
              exit_at);
  if (!g.cpu_clocks.empty()) {  // SSIHV_DIST_APPEND=ssihv.cpu_clocks=1
    std::printf(
        "dist_test: each CPU's clock at init, one after the other: %s\n",
        g.cpu_clocks.c_str());
  }
  PrintCost(c, start);
  return g;
}

TEST_CASE("Linux boots across 2 processes over TCP") {
  TestCluster c({{2, 384}, {2, 320}}, "tcp", 7850);
  // As the README's demo boots: on node 0's two CPUs, init bringing node
  // 1's online (kThreeNodeGuest's reason; "Every vCPU of 3 processes comes
  // up" keeps the boot-time bring-up across processes). init's report on
  // CPU 0 (node 0): its shell's forks on node 1's CPUs cost a third of
  // this case's lab time, and the checks read the same. The coherence
  // stress after it runs on all four CPUs: the stress in CI goes through
  // this case.
  c.StartAll(
      Cmdline("quiet ssihv.end=poweroff ssihv.report_cpu=0 maxcpus=2 "
              "ssihv.online=cpus ssihv.coherence=" +
              CoherenceRounds()));
  const GuestReport g = CheckCleanRun(c);
  CHECK(g.booted_online == "0-1");
  CheckStress(g, 4, 2);
}

TEST_CASE("Linux boots across 3 processes over TCP, coherence stress exact") {
  TestCluster c({{1, 256}, {1, 256}, {1, 192}}, "tcp", 7860);
  c.StartAll(Cmdline(std::string(kThreeNodeGuest) +
                     " ssihv.coherence=" + CoherenceRounds()),
             kThreeNodeVmm);
  const GuestReport g = CheckCleanRun(c);
  INFO(c.Dump());
  CheckThreeNodeStress(c, g);
}

TEST_CASE("Linux boots across 3 processes over RDMA") {
  if (int rc = CheckDeviceOrSkip("rdma"); rc != 0) {
    // Only outside the lab: under SSIHV_REQUIRE_RDMA=1 rc is 1, a failure.
    REQUIRE(rc == 77);
    WARN("no RDMA device: the RDMA case did not run");
    return;
  }
  TestCluster c({{1, 256}, {1, 256}, {1, 192}}, "rdma", 7870);
  c.StartAll(Cmdline(std::string(kThreeNodeGuest) +
                     " ssihv.coherence=" + CoherenceRounds()),
             kThreeNodeVmm);
  CheckThreeNodeStress(c, CheckCleanRun(c));
  for (uint32_t k = 0; k < c.size(); ++k) {
    CHECK_THAT(c.Stats(k)["dsm"]["transport"]["backend"].dump(),
               Catch::Contains("rdma"));
  }
}

// Node k's /vcpus: every vCPU listed is one of `own` and has exited on HLT
// at least once (it ran kernel code up to its idle loop).
bool VcpusUpAndIdle(const TestCluster& c, uint32_t k,
                    const std::vector<uint32_t>& own) {
  auto r = control::HttpCall(c.api_address(k), "GET", "/vcpus", "",
                             absl::Seconds(10));
  if (!r.ok() || r->status != 200) return false;
  const nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j["vcpus"].is_array()) return false;
  std::vector<uint32_t> listed;
  for (const nlohmann::json& v : j["vcpus"]) {
    const nlohmann::json exits = v.value("exits", nlohmann::json::object());
    if (!v.contains("index") || exits.value("hlt", uint64_t{0}) == 0) {
      return false;
    }
    listed.push_back(v["index"].get<uint32_t>());
  }
  return listed == own;
}

// CI's proof of the 3-process machinery over RDMA (the whole boot to
// power-off takes the lab 30 minutes: "Linux boots across 3 processes over
// RDMA", in lab_dist): the APs of nodes 1 and 2 start from the INIT/SIPI
// that CPU 0 on node 0 sends across, every CPU runs the kernel from memory
// homed on all three nodes up to its idle loop, and every node takes remote
// faults and serves the others'. Then SIGTERM to node 0 stops them all.
TEST_CASE("Every vCPU of 3 processes comes up over RDMA") {
  if (int rc = CheckDeviceOrSkip("rdma"); rc != 0) {
    REQUIRE(rc == 77);  // under SSIHV_REQUIRE_RDMA=1 rc is 1, a failure
    WARN("no RDMA device: the RDMA case did not run");
    return;
  }
  TestCluster c({{1, 256, 7955}, {1, 256, 7956}, {1, 192, 7957}}, "rdma", 7950);
  const Clock::time_point start = Clock::now();
  c.StartAll(Cmdline(kThreeNodeBoot), kThreeNodeVmm);
  const cluster::GuestLayout layout(Parse(c));
  // 51 s in the lab on 2026-12-06: ten minutes means it is broken, and CI
  // should not wait the half hour of a whole boot to say so.
  bool up = false;
  const Clock::time_point deadline =
      Clock::now() + std::min(BootTimeout(), seconds(600));
  while (!up && Clock::now() < deadline) {
    up = true;
    for (uint32_t k = 0; k < c.size() && up; ++k) {
      if (std::optional<int> st = c.Wait(k, seconds(0))) {
        INFO(c.Dump());
        FAIL("node " << k << " stopped on its own, status " << *st);
      }
      up = VcpusUpAndIdle(c, k, OwnVcpus(layout, k));
    }
    if (!up) std::this_thread::sleep_for(seconds(1));  // polling, not timing
  }
  const double took =
      std::chrono::duration<double>(Clock::now() - start).count();
  if (!up) c.QuitStuck();
  INFO(c.Dump());
  REQUIRE(up);
  std::printf("dist_test: every vCPU of 3 processes up after %.0f s\n", took);
  c.node(0).Signal(SIGTERM);  // every node stops with it
  for (uint32_t k = 0; k < c.size(); ++k) {
    INFO("node " << k << "\n" << c.Dump());
    REQUIRE(c.Wait(k, seconds(60)) == 130);
    const nlohmann::json s = c.Stats(k);
    CHECK(s["local_vcpus"].get<std::vector<uint32_t>>() == OwnVcpus(layout, k));
    CHECK_THAT(s["dsm"]["transport"]["backend"].dump(),
               Catch::Contains("rdma"));
    CHECK(RemoteFaults(s) > 0);
    uint64_t served = 0;
    for (const nlohmann::json& p : s["dsm"]["dsm"]["requests_served"]) {
      served += p["reads"].get<uint64_t>() + p["writes"].get<uint64_t>();
    }
    CHECK(served > 0);
    CheckOrderlyStop(s);
    if (k > 0) CHECK(c.node(k).out().empty());  // node 0 owns the console
  }
  PrintCost(c, start);
}

// Kills `victim` once the coherence stress runs; every survivor must stop
// with the lost-peer status within 10 s, naming the victim.
void KillDuringStress(uint32_t victim, int port_base,
                      std::vector<NodeSpec> nodes = {
                          {1, 256}, {1, 256}, {1, 192}}) {
  TestCluster c(std::move(nodes), "tcp", port_base);
  const bool three = c.size() == 3;
  // Two processes boot as the README's demo does: on node 0's two CPUs,
  // init bringing node 1's online, with --guest-tuning.
  c.StartAll(
      Cmdline(std::string(three ? kThreeNodeGuest : kTwoNodeGuest) +
              " ssihv.coherence=100000"),
      three ? kThreeNodeVmm : std::vector<std::string>{"--guest-tuning"});
  const bool started =
      c.node(0).WaitForOutput("SSIHV_COHERENCE start", BootTimeout());
  INFO(c.Dump());
  REQUIRE(started);
  const auto killed_at = Clock::now();
  c.node(victim).Signal(SIGKILL);
  REQUIRE(c.Wait(victim, seconds(30)) == 128 + SIGKILL);
  for (uint32_t k = 0; k < c.size(); ++k) {
    if (k == victim) continue;
    std::optional<int> st = c.Wait(k, seconds(30));
    const double took =
        std::chrono::duration<double>(Clock::now() - killed_at).count();
    // A survivor that did not stop: where its threads are, then SIGQUIT.
    const std::string threads = st ? "" : c.Threads(k);
    if (!st) c.QuitStuck();
    // Catch prints an optional as {?}: the status in words (CI's failure of
    // 2026-12-07 said only {?}; the lab's reproduction was a VMM error).
    INFO("survivor " << k << ": "
                     << (st ? "exit status " + std::to_string(*st)
                            : std::string("still running after 30 s"))
                     << "\n"
                     << c.Dump() << threads);
    REQUIRE(st == kExitPeerLost);
    std::printf("dist_test: node %u killed; node %u exited %.1f s later\n",
                victim, k, took);
    CHECK(took <= 10.0);
    CHECK_THAT(c.node(k).err(),
               Catch::Contains("node " + std::to_string(victim) + " was lost"));
  }
}

TEST_CASE("SIGKILL of node 2 during the stress: the others stop, status 5") {
  KillDuringStress(2, 7880);
}

TEST_CASE("SIGKILL of node 0 during the stress: the others stop, status 5") {
  KillDuringStress(0, 7890);
}

// The same over two processes (the 2+2 guest of the first case).
TEST_CASE("SIGKILL of node 1 during the stress across 2 processes: status 5") {
  KillDuringStress(1, 7820, {{2, 384}, {2, 320}});
}

TEST_CASE("SIGKILL of node 0 during the stress across 2 processes: status 5") {
  KillDuringStress(0, 7830, {{2, 384}, {2, 320}});
}

TEST_CASE("start-up errors: a clear message, never a hang") {
  SECTION("a peer that never starts") {
    TestCluster c({{1, 128}, {1, 128}}, "tcp", 7900);
    c.Start(0, "quiet", {"--peer-timeout", "3"});
    REQUIRE(c.Wait(0, seconds(60)) == 3);
    CHECK_THAT(c.node(0).err(), Catch::Contains("node 1"));
    CHECK_THAT(c.node(0).err(), Catch::Contains("127.0.0.1:7901"));
  }
  SECTION("two processes with the same node id") {
    TestCluster c({{1, 128}, {1, 128}}, "tcp", 7910);
    c.Start(0, "quiet", {"--peer-timeout", "20"});
    REQUIRE(c.node(0).WaitForOutput("waiting for", seconds(60)));
    TestCluster twin({{1, 128}, {1, 128}}, "tcp", 7910);
    twin.Start(0, "quiet", {"--peer-timeout", "20"});
    REQUIRE(twin.Wait(0, seconds(60)) == 3);
    CHECK_THAT(twin.node(0).err(), Catch::Contains("127.0.0.1:7910"));
    CHECK_THAT(twin.node(0).err(), Catch::Contains("in use"));
  }
  SECTION("nodes with different configs refuse each other") {
    TestCluster a({{1, 128}, {1, 128}}, "tcp", 7920);
    TestCluster b({{1, 128}, {1, 192}}, "tcp", 7920);
    a.Start(0, "quiet", {"--peer-timeout", "30"});
    b.Start(1, "quiet", {"--peer-timeout", "30"});
    REQUIRE(a.Wait(0, seconds(90)) == 3);
    REQUIRE(b.Wait(1, seconds(90)) == 3);
    CHECK_THAT(a.node(0).err(), Catch::Contains("different cluster config"));
    CHECK_THAT(b.node(1).err(), Catch::Contains("different cluster config"));
  }
  SECTION("--node outside the config") {
    TestCluster c({{1, 128}, {1, 128}}, "tcp", 7930);
    c.Start(0, "quiet", {"--node", "7"});  // the last --node wins
    REQUIRE(c.Wait(0, seconds(60)) == 3);
    CHECK_THAT(c.node(0).err(), Catch::Contains("--node 7: the config has 2"));
  }
}

}  // namespace
}  // namespace ssihv::testing
