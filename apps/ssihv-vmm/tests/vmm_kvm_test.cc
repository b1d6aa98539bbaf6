// ssihv-vmm end to end on real KVM without Linux (label kvm): fake bzImages
// (fake_kernels.S) drive the console, reset, power off, panic detection and
// the pager, and bad inputs must fail with exit status 3 and a message.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pty.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_bzimage.h"
#include "ssihv/control/client.h"
#include "ssihv/testing/device.h"
#include "ssihv/testing/host.h"
#include "ssihv/testing/subprocess.h"
#include "ssihv/testing/temp_dir.h"

#define DECLARE_KERNEL(name) \
  extern "C" const uint8_t name##_start[], name##_end[];
DECLARE_KERNEL(vmm_kernel_hello_reset)
DECLARE_KERNEL(vmm_kernel_poweroff)
DECLARE_KERNEL(vmm_kernel_panic)
DECLARE_KERNEL(vmm_kernel_echo)
DECLARE_KERNEL(vmm_kernel_touch)
DECLARE_KERNEL(vmm_kernel_spin)
DECLARE_KERNEL(vmm_kernel_jump_unbacked)
#define KERNEL(name) std::vector<uint8_t>(name##_start, name##_end)

namespace {

using ssihv::testing::TempDir;

struct Result {
  int status = -1;
  std::string out, err;
};

// Runs ssihv-vmm with `input` on stdin (a pipe, closed after writing).
Result Run(const std::vector<std::string>& args,
           const std::string& input = "") {
  std::vector<std::string> argv{SSIHV_VMM};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = ssihv::testing::Subprocess::Start(argv, {}, input);
  REQUIRE(p.ok());
  // Within the test's own CTest timeout (300 s).
  std::optional<int> status = (*p)->Wait(std::chrono::seconds(240));
  REQUIRE(status.has_value());
  return Result{*status, (*p)->out(), (*p)->err()};
}

const char kConfig[] = R"({"nodes": [
  {"id": 0, "vcpus": 1, "memory_mib": 256},
  {"id": 1, "vcpus": 1, "memory_mib": 256}]})";

struct Fixture {
  TempDir dir{"ssihv-vmm-test"};
  std::string config = dir.Write("cluster.json", std::string(kConfig));
  std::string initrd = dir.Write("initrd", std::string("initrd"));
  std::string stats = dir.path + "/stats.json";
  std::vector<std::string> extra;

  Result Boot(const std::vector<uint8_t>& payload,
              const std::string& input = "") {
    ssihv::kvm::testing::FakeBzImageOptions o;
    o.payload = payload;
    std::string kernel =
        dir.Write("bzImage", ssihv::kvm::testing::MakeFakeBzImage(o));
    std::vector<std::string> args = {"--kernel", kernel, "--initrd",     initrd,
                                     "--config", config, "--stats-json", stats};
    args.insert(args.end(), extra.begin(), extra.end());
    return Run(args, input);
  }
  nlohmann::json Stats() {
    std::ifstream in(stats);
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }
};

TEST_CASE("console output, then an i8042 reset: exit 0") {
  Fixture f;
  Result r = f.Boot(KERNEL(vmm_kernel_hello_reset));
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.out == "hello\n");
  CHECK_THAT(r.err, Catch::Contains("guest reset"));
  nlohmann::json s = f.Stats();
  CHECK(s["stop"]["reason"] == "guest reset");
  CHECK(s["vcpus"] == 2);
  CHECK(s["boot"]["protocol"] == "2.15");
}

TEST_CASE("ACPI S5 power off: exit 0") {
  Fixture f;
  Result r = f.Boot(KERNEL(vmm_kernel_poweroff));
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(f.Stats()["stop"]["reason"] == "guest power off");
}

TEST_CASE("a kernel panic before the reset: exit 4") {
  Fixture f;
  Result r = f.Boot(KERNEL(vmm_kernel_panic));
  CHECK(r.status == 4);
  CHECK_THAT(r.err, Catch::Contains("panicked"));
  CHECK(f.Stats()["stop"]["guest_panicked"] == true);
}

TEST_CASE("stdin reaches the guest through COM1") {
  Fixture f;
  Result r = f.Boot(KERNEL(vmm_kernel_echo), "abc");
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.out == "abc!\n");
}

TEST_CASE("--irqchip user: console, stdin, reset, power off, panic") {
  Fixture f;
  f.extra = {"--irqchip", "user"};
  Result r = f.Boot(KERNEL(vmm_kernel_hello_reset));
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.out == "hello\n");
  nlohmann::json s = f.Stats();
  CHECK(s["stop"]["reason"] == "guest reset");
  CHECK(s["irqchip"] == "user");
  CHECK(s["apic"]["ipis"] == 0);
  CHECK_THAT(r.err, Catch::Contains("ssihv-vmm: user irqchip: "));
  r = f.Boot(KERNEL(vmm_kernel_echo), "abc");
  CHECK(r.status == 0);
  CHECK(r.out == "abc!\n");
  r = f.Boot(KERNEL(vmm_kernel_poweroff));
  CHECK(r.status == 0);
  CHECK(f.Stats()["stop"]["reason"] == "guest power off");
  r = f.Boot(KERNEL(vmm_kernel_panic));
  CHECK(r.status == 4);
  CHECK(f.Stats()["stop"]["guest_panicked"] == true);
  f.extra.clear();
  r = f.Boot(KERNEL(vmm_kernel_hello_reset));
  CHECK(f.Stats()["irqchip"] == "kernel");
}

TEST_CASE("more than 254 vCPUs: refused with --irqchip kernel, run with user") {
  Fixture f;
  f.config = f.dir.Write(
      "big.json",
      std::string(R"({"nodes": [{"id": 0, "vcpus": 150, "memory_mib": 256},)"
                  R"({"id": 1, "vcpus": 150, "memory_mib": 256}]})"));
  Result r = f.Boot(KERNEL(vmm_kernel_hello_reset));
  CHECK(r.status == 3);
  CHECK_THAT(r.err, Catch::Contains("300 vCPUs; with --irqchip kernel") &&
                        Catch::Contains("--irqchip user"));
  f.extra = {"--irqchip", "user"};
  r = f.Boot(KERNEL(vmm_kernel_hello_reset));
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.out == "hello\n");
  nlohmann::json s = f.Stats();
  CHECK(s["vcpus"] == 300);
  CHECK(s["stop"]["reason"] == "guest reset");
}

TEST_CASE("every node's memory is served by the pager, zero-filled") {
  Fixture f;
  SECTION("with fault-around (default): one fault per touched 2 MiB block") {
    Result r = f.Boot(KERNEL(vmm_kernel_touch));
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(r.out == "0\n");
    nlohmann::json s = f.Stats();
    // 2-MiB steps: 112 on node 0 (from 32 MiB), 127 on node 1, each a new
    // block; the loader's blocks (boot structures, kernel, initrd) on top.
    CHECK(s["nodes"][0]["faults"].get<uint64_t>() >= 112 + 2);
    CHECK(s["nodes"][1]["faults"].get<uint64_t>() >= 127 + 1);
    CHECK(s["pager"]["pages_filled_ahead"].get<uint64_t>() >= 239 * 500);
    CHECK(s["pager"]["errors"] == 0);
  }
  SECTION("without: one fault per page") {
    f.extra = {"--fault-around", "0"};
    Result r = f.Boot(KERNEL(vmm_kernel_touch));
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(r.out == "0\n");
    nlohmann::json s = f.Stats();
    CHECK(s["nodes"][0]["faults"].get<uint64_t>() >= 112 + 4);
    CHECK(s["nodes"][1]["faults"].get<uint64_t>() >= 127 + 1);
    CHECK(s["pager"]["pages_filled_ahead"] == 0);
    CHECK(s["pager"]["faults"]["local_zero"].get<uint64_t>() >= 239 + 5);
  }
}

TEST_CASE(
    "KVM_EXIT_INTERNAL_ERROR: exit 1, the exit, suberror and registers on "
    "stderr") {
  Fixture f;
  Result r = f.Boot(KERNEL(vmm_kernel_jump_unbacked));
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.out == "up\n");
  CHECK_THAT(r.err, Catch::Contains("ssihv-vmm: error after"));
  CHECK_THAT(r.err,
             Catch::Contains("ssihv-vmm: KVM_EXIT_INTERNAL_ERROR on vCPU 0: "
                             "suberror 1 (KVM_INTERNAL_ERROR_EMULATION: "
                             "instruction emulation failed)"));
  // The registers of the vCPU that stopped: where it jumped to.
  CHECK_THAT(r.err, Catch::Contains("vCPU 0 state:\nrip=00000000d0000000"));
  CHECK_THAT(r.err, Catch::Contains("cs   sel=0010"));
  nlohmann::json s = f.Stats();
  CHECK(s["stop"]["reason"] == "error");
  CHECK(s["stop"]["vcpu"] == 0);
  CHECK_THAT(s["stop"]["error"].get<std::string>(),
             Catch::StartsWith("KVM_EXIT_INTERNAL_ERROR on vCPU 0"));
  // vCPU 1, an AP waiting for its SIPI inside KVM_RUN, was stopped too: the
  // VMM exited and accounted for both vCPUs.
  CHECK(s["vcpus"] == 2);
}

// Starts ssihv-vmm on a spinning kernel with `stdin_fd` as its stdin, waits
// for the guest's "up" line, runs `poke`, and collects the exit status and
// stderr.
Result RunSpinning(Fixture& f, int stdin_fd,
                   const std::function<void(pid_t)>& poke) {
  ssihv::kvm::testing::FakeBzImageOptions o;
  o.payload = KERNEL(vmm_kernel_spin);
  std::string kernel =
      f.dir.Write("bzImage", ssihv::kvm::testing::MakeFakeBzImage(o));
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  std::string err_path = f.dir.path + "/stderr";
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(stdin_fd, 0);
    ::dup2(out[1], 1);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(err, 2);
    std::string vmm = SSIHV_VMM;
    std::vector<std::string> a = {vmm,        "--kernel",     kernel,
                                  "--initrd", f.initrd,       "--config",
                                  f.config,   "--stats-json", f.stats};
    std::vector<char*> argv;
    for (auto& x : a) argv.push_back(x.data());
    argv.push_back(nullptr);
    ::execv(vmm.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  Result r;
  char buf[256];
  while (r.out.find("up\n") == std::string::npos) {
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    REQUIRE(n > 0);
    r.out.append(buf, static_cast<size_t>(n));
  }
  poke(pid);
  while (::read(out[0], buf, sizeof(buf)) > 0) {
  }
  ::close(out[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  std::ifstream err_in(err_path);
  r.err.assign(std::istreambuf_iterator<char>(err_in), {});
  return r;
}

TEST_CASE("SIGTERM stops a running guest cleanly: exit 130, stats written") {
  Fixture f;
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  Result r = RunSpinning(f, null_fd, [](pid_t pid) { ::kill(pid, SIGTERM); });
  ::close(null_fd);
  INFO(r.err);
  CHECK(r.status == 130);
  CHECK_THAT(r.err, Catch::Contains("stopped by the VMM"));
  nlohmann::json s = f.Stats();
  CHECK(s["stop"]["reason"] == "stopped by the VMM");
  CHECK_THAT(s["stop"]["error"].get<std::string>(),
             Catch::Contains("Terminated"));
}

TEST_CASE(
    "on a terminal: raw mode while running, Ctrl-A x stops, mode restored") {
  Fixture f;
  int master = -1, slave = -1;
  REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
  termios before{};
  REQUIRE(::tcgetattr(slave, &before) == 0);
  REQUIRE((before.c_lflag & ICANON));
  Result r = RunSpinning(f, slave, [&](pid_t) {
    // Raw mode is set before the vCPUs start, so it is in force now.
    termios during{};
    REQUIRE(::tcgetattr(slave, &during) == 0);
    CHECK_FALSE((during.c_lflag & (ICANON | ECHO | ISIG)));
    const char escape[] = {0x01, 'x'};
    REQUIRE(::write(master, escape, 2) == 2);
  });
  INFO(r.err);
  CHECK(r.status == 130);
  CHECK_THAT(r.err, Catch::Contains("Ctrl-A x"));
  termios after{};
  REQUIRE(::tcgetattr(slave, &after) == 0);
  CHECK(after.c_lflag == before.c_lflag);
  CHECK(after.c_iflag == before.c_iflag);
  ::close(master);
  ::close(slave);
}

TEST_CASE("bad inputs fail before the guest runs, with exit 3") {
  Fixture f;
  SECTION("not a kernel") {
    std::string junk = f.dir.Write("junk", std::string(5000, 'x'));
    Result r =
        Run({"--kernel", junk, "--initrd", f.initrd, "--config", f.config});
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("bzImage"));
  }
  SECTION("missing initrd") {
    Result r = Run({"--kernel", f.config, "--initrd", f.dir.path + "/nope",
                    "--config", f.config});
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("--initrd"));
  }
  SECTION("too little memory for the kernel") {
    std::string small = f.dir.Write(
        "small.json",
        std::string(R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 16}]})"));
    ssihv::kvm::testing::FakeBzImageOptions o;
    std::string kernel =
        f.dir.Write("bz", ssihv::kvm::testing::MakeFakeBzImage(o));
    Result r =
        Run({"--kernel", kernel, "--initrd", f.initrd, "--config", small});
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("too little memory"));
  }
  SECTION("bad config") {
    std::string bad = f.dir.Write("bad.json", std::string(R"({"nodes": []})"));
    Result r =
        Run({"--kernel", f.config, "--initrd", f.initrd, "--config", bad});
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("--config"));
  }
  SECTION("usage") {
    CHECK(Run({"--bogus"}).status == 2);
    Result help = Run({"--help"});
    CHECK(help.status == 0);
    CHECK_THAT(help.out, Catch::Contains("--kernel"));
  }
}

}  // namespace

// ---- The control API of a running ssihv-vmm (docs/API.md) ----

namespace api_test {

constexpr auto kHttpTimeout = absl::Seconds(5);

// A port free on 127.0.0.1 now (the config wants a real port; ssihv-vmm
// binds it a moment later, and fails loudly if someone took it meanwhile).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  socklen_t len = sizeof(a);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string ApiConfig(const std::string& token_file, int nodes) {
  std::string json = R"({"nodes": [
  {"id": 0, "vcpus": 1, "memory_mib": 256, "api_address": "127.0.0.1:)" +
                     std::to_string(FreePort()) + "\"}";
  if (nodes == 2) json += R"(, {"id": 1, "vcpus": 1, "memory_mib": 256})";
  return json + "], \"api_token_file\": \"" + token_file + "\"}";
}

ssihv::control::ClientResponse Http(const std::string& address,
                                    const std::string& method,
                                    const std::string& target,
                                    const std::string& token = "") {
  auto r =
      ssihv::control::HttpCall(address, method, target, token, kHttpTimeout);
  INFO(method << " " << target);
  REQUIRE(r.ok());
  return *r;
}

nlohmann::json Json(const ssihv::control::ClientResponse& r) {
  INFO(r.body);
  return nlohmann::json::parse(r.body);
}

// Polls GET `target` until `pred` holds on its JSON (or 30 s pass).
bool PollJson(const std::string& address, const std::string& target,
              const std::function<bool(const nlohmann::json&)>& pred) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = ssihv::control::HttpCall(address, "GET", target, "", kHttpTimeout);
    if (r.ok() && !r->body.empty() && pred(nlohmann::json::parse(r->body))) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool AllVcpus(const nlohmann::json& j, const std::string& state) {
  if (!j.contains("vcpus") || j["vcpus"].size() != 2) return false;
  for (const auto& v : j["vcpus"]) {
    if (v["state"] != state) return false;
  }
  return true;
}

}  // namespace api_test

TEST_CASE("the control API: health, vCPUs, pages, metrics, pause, stop") {
  using namespace api_test;
  Fixture f;
  const std::string token = "test-token-0123456789";
  const std::string token_file = f.dir.Write("api-token", token + "\n");
  REQUIRE(::chmod(token_file.c_str(), 0600) == 0);
  const std::string config =
      f.dir.Write("api.json", api_test::ApiConfig(token_file, 2));
  ssihv::kvm::testing::FakeBzImageOptions o;
  o.payload = KERNEL(vmm_kernel_spin);
  const std::string kernel =
      f.dir.Write("bzImage", ssihv::kvm::testing::MakeFakeBzImage(o));
  auto p = ssihv::testing::Subprocess::Start(
      {SSIHV_VMM, "--kernel", kernel, "--initrd", f.initrd, "--config", config,
       "--stats-json", f.stats},
      {}, "");
  REQUIRE(p.ok());
  ssihv::testing::Subprocess& vmm = **p;
  REQUIRE(vmm.WaitForOutput("up\n", std::chrono::seconds(60)));
  // ssihv-vmm logs where its API listens.
  const std::string marker = "control API on http://";
  const std::string err = vmm.err();
  const size_t at = err.find(marker);
  INFO(err);
  REQUIRE(at != std::string::npos);
  const std::string address = err.substr(
      at + marker.size(),
      err.find_first_of("\n ", at + marker.size()) - at - marker.size());

  // /health: 200, running.
  auto health = Http(address, "GET", "/health");
  CHECK(health.status == 200);
  CHECK(Json(health)["status"] == "running");
  CHECK(Json(health)["node"] == 0);

  // /vcpus: both of the one-process VM's vCPUs, with IDs, states, exits.
  nlohmann::json vcpus = Json(Http(address, "GET", "/vcpus"));
  REQUIRE(vcpus["vcpus"].size() == 2);
  for (int i = 0; i < 2; ++i) {
    const nlohmann::json& v = vcpus["vcpus"][i];
    CHECK(v["index"] == i);
    CHECK(v["apic_id"] == i);
    CHECK(v["exits"].contains("io"));
    CHECK(v["exits"].contains("hlt"));
  }
  // vCPU 0 printed "up" through COM1: port I/O exits were counted.
  CHECK(vcpus["vcpus"][0]["exits"]["io"].get<uint64_t>() >= 3);

  // /pages: RAM (the kernel was loaded at 1 MiB: mapped) and the hole.
  auto ram = Http(address, "GET", "/pages/0x100000");
  CHECK(ram.status == 200);
  CHECK(Json(ram)["state"] == "modified");
  CHECK(Json(ram)["home"] == 0);
  // The local APIC page: not RAM (the MMIO hole, or beyond 512 MiB).
  auto hole = Http(address, "GET", "/pages/0xfee00000");
  CHECK(hole.status == 404);
  CHECK(Http(address, "GET", "/pages/0x7fff0000000").status == 404);

  // /metrics: the exposition; promtool's verdict when it is installed.
  auto metrics = Http(address, "GET", "/metrics");
  CHECK(metrics.status == 200);
  CHECK_THAT(metrics.body, Catch::Contains("ssihv_page_faults_total{node=\"0\""
                                           ",kind=\"local_zero\"}"));
  CHECK_THAT(metrics.body, Catch::Contains("ssihv_vcpu_exits_total"));
  CHECK_THAT(metrics.body, Catch::Contains("ssihv_dsm_pages"));
  const char* require = std::getenv("SSIHV_REQUIRE_PROMTOOL");
  if (ssihv::testing::ProbePromtool().ok() ||
      (require != nullptr && std::string(require) == "1")) {
    const std::string m = f.dir.Write("metrics.txt", metrics.body);
    auto check = ssihv::testing::RunShell("promtool check metrics < " + m);
    INFO(check.output);
    CHECK(check.exit == 0);
  } else {
    WARN("promtool not installed: /metrics not linted");
  }

  // Pause: every vCPU held outside KVM_RUN, /health 503 "paused".
  CHECK(Http(address, "POST", "/vm/pause").status == 401);
  auto pause = Http(address, "POST", "/vm/pause", token);
  INFO(pause.body);
  CHECK(pause.status == 200);
  CHECK(AllVcpus(Json(Http(address, "GET", "/vcpus")), "paused"));
  auto paused = Http(address, "GET", "/health");
  CHECK(paused.status == 503);
  CHECK(Json(paused)["status"] == "paused");
  // Held means no exits at all: the counts stand still.
  const nlohmann::json before = Json(Http(address, "GET", "/vcpus"));
  const nlohmann::json after = Json(Http(address, "GET", "/vcpus"));
  CHECK(before == after);
  // The guest's clock stands still too: 3 s of real time pass paused, and
  // the guest's kvmclock at the end (counted from the VM's creation, a
  // moment before the run began) must be short of the run by about that.
  const auto paused_at = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - paused_at <
         std::chrono::seconds(3)) {
    CHECK(Json(Http(address, "GET", "/health"))["status"] == "paused");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  // Resume: running again.
  CHECK(Http(address, "POST", "/vm/resume", token).status == 200);
  CHECK(PollJson(address, "/vcpus", [](const nlohmann::json& j) {
    return AllVcpus(j, "running");
  }));
  CHECK(Json(Http(address, "GET", "/health"))["status"] == "running");

  // Stop: refused without the token; with it, the process exits 0.
  CHECK(Http(address, "POST", "/vm/stop").status == 401);
  CHECK(Http(address, "POST", "/vm/stop", "wrong").status == 401);
  auto stop = Http(address, "POST", "/vm/stop", token);
  INFO(stop.body);
  CHECK(stop.status == 200);
  CHECK(Json(stop)["action"] == "stop");
  std::optional<int> status = vmm.Wait(std::chrono::seconds(60));
  REQUIRE(status.has_value());
  INFO(vmm.err());
  CHECK(*status == 0);
  CHECK_THAT(vmm.err(), Catch::Contains("api stop"));
  nlohmann::json s = f.Stats();
  CHECK(s["stop"]["reason"] == "api stop");
  INFO("stats: " << s.dump());
  CHECK(s["kvm_clock"]["guest_s"].get<double>() <
        s["run_seconds"].get<double>() - 1.5);
}

TEST_CASE("the control API refuses to start with a bad token file: exit 3") {
  Fixture f;
  const std::string token_file = f.dir.Write("api-token", std::string("t\n"));
  REQUIRE(::chmod(token_file.c_str(), 0644) == 0);  // readable by others
  f.config = f.dir.Write("api.json", api_test::ApiConfig(token_file, 1));
  Result r = f.Boot(KERNEL(vmm_kernel_spin));
  CHECK(r.status == 3);
  CHECK_THAT(r.err, Catch::Contains("api_token_file"));
  CHECK(r.out.empty());  // the guest never ran
}
