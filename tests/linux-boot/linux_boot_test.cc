// The Linux boot test (label kvm; runs in the lab VM in CI): ssihv-vmm boots
// the Debian kernel with the busybox initramfs of prepare.sh, whose init
// prints what the guest sees (init in this folder); every value must match
// the cluster config: vCPUs, NUMA nodes and their CPUs, memory (SRAT ranges
// exactly, MemTotal within the kernel's own reservations), SLIT rows, HMAT
// access0 initiators and latency/bandwidth. The VMM must exit 0 on the
// guest's reboot and power-off, and its pager must have served faults in
// every node's memory.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "ssihv/cluster/config.h"
#include "guest_report.h"
#include "ssihv/cluster/layout.h"

namespace {

using ssihv::cluster::ClusterConfig;
using ssihv::cluster::GuestLayout;
using ssihv::testing::BootFiles;
using ssihv::testing::GuestReport;
using ssihv::testing::LoadBootEnv;
using ssihv::testing::ParseReport;

struct RunResult {
  int exit_status = -1;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs ssihv-vmm with stdin from /dev/null; past `timeout` it gets SIGQUIT
// (stop and dump the vCPUs' registers), then SIGKILL.
RunResult RunVmm(const std::vector<std::string>& args,
                 std::chrono::seconds timeout) {
  int out_pipe[2], err_pipe[2];
  REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    std::vector<char*> argv;
    std::string vmm = SSIHV_VMM;
    argv.push_back(vmm.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(vmm.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  RunResult r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int signals_sent = 0;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0},
                     {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    ::poll(fds, 2, 1000);
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      } else {
        (i == 0 ? out_open : err_open) = false;
      }
    }
    if (std::chrono::steady_clock::now() >
        deadline + std::chrono::seconds(20 * signals_sent)) {
      r.timed_out = true;
      ::kill(pid, signals_sent == 0 ? SIGQUIT : SIGKILL);
      ++signals_sent;
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_status =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

void BootAndCheck(const std::string& config_json, const std::string& end,
                  const std::string& want_stop) {
  BootFiles files = LoadBootEnv(SSIHV_BOOT_ENV);
  absl::StatusOr<ClusterConfig> parsed =
      ssihv::cluster::ParseClusterConfig(config_json);
  REQUIRE(parsed.ok());
  const ClusterConfig& config = *parsed;
  const GuestLayout layout(config);

  char dir_template[] = "/tmp/ssihv-linux-boot.XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string config_path = dir + "/cluster.json";
  const std::string stats_path = dir + "/stats.json";
  std::ofstream(config_path) << config_json;

  RunResult run = RunVmm({"--kernel", files.kernel, "--initrd", files.initrd,
                          "--config", config_path, "--stats-json", stats_path,
                          "--append", "quiet ssihv.end=" + end},
                         std::chrono::seconds(540));
  INFO("ssihv-vmm stderr:\n" << run.err);
  INFO("guest console (last 3000 bytes):\n"
       << run.out.substr(run.out.size() > 3000 ? run.out.size() - 3000 : 0));
  REQUIRE_FALSE(run.timed_out);
  CHECK(run.exit_status == 0);
  GuestReport g = ParseReport(run.out);
  REQUIRE(g.reached_init);
  REQUIRE(g.done);

  ssihv::testing::CheckGuestMatches(config, g);

  std::ifstream stats_in(stats_path);
  REQUIRE(stats_in.good());
  nlohmann::json stats = nlohmann::json::parse(stats_in);
  INFO("stats: " << stats.dump(1));
  CHECK(stats["stop"]["reason"] == want_stop);
  CHECK(stats["stop"]["guest_panicked"] == false);
  REQUIRE(stats["nodes"].size() == config.num_nodes());
  for (const auto& node : stats["nodes"]) {
    for (const auto& range : node["ranges"]) {
      INFO("node " << node["id"] << " range at " << range["gpa"]);
      CHECK(range["faults"].get<uint64_t>() >= 1);
    }
  }
  CHECK(stats["pager"]["errors"] == 0);
  std::remove(config_path.c_str());
  std::remove(stats_path.c_str());
  ::rmdir(dir.c_str());
}

// Node 1 is split by the [3 GiB, 4 GiB) hole: two SRAT ranges, two e820
// entries above 1 MiB, two pager ranges.
TEST_CASE("Linux boots with 2 NUMA nodes (one split by the hole), reboots") {
  BootAndCheck(R"({
    "nodes": [{"id": 0, "vcpus": 1, "memory_mib": 1536},
              {"id": 1, "vcpus": 1, "memory_mib": 2048}],
    "distances": [[10, 21], [21, 10]],
    "memory_latency_ns": [[90, 250], [260, 110]],
    "memory_bandwidth_mbps": [[20000, 5000], [4000, 18000]]})",
               "reboot", "guest reset");
}

TEST_CASE(
    "Linux boots with 3 asymmetric NUMA nodes (one memory-only), powers off") {
  BootAndCheck(R"({
    "nodes": [{"id": 0, "vcpus": 1, "memory_mib": 192},
              {"id": 1, "vcpus": 1, "memory_mib": 128},
              {"id": 2, "vcpus": 0, "memory_mib": 128}],
    "distances": [[10, 20, 30], [25, 10, 15], [35, 18, 10]],
    "memory_latency_ns": [[100, 200, 300], [250, 110, 150], [350, 180, 120]],
    "memory_bandwidth_mbps": [[20000, 10000, 5000], [8000, 19000, 12000],
                              [4000, 11000, 18000]]})",
               "poweroff", "guest power off");
}

}  // namespace
