#include "cluster_fixture.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "guest_report.h"
#include "ssihv/base/file_util.h"
#include "ssihv/testing/host.h"

namespace ssihv::testing {
namespace {

// Every remote node at SLIT distance 100, as docs/CLUSTER_CONFIG.md advises
// for a guest across processes (above 30, Linux stops moving tasks between
// the nodes on fork, exec and wake-up); SSIHV_DIST_DISTANCE=D sets D
// instead (docs/LAB.md: 20, the config's default, to compare).
std::string Distances(size_t nodes) {
  const char* env = std::getenv("SSIHV_DIST_DISTANCE");
  const std::string v = env != nullptr && *env != '\0' ? env : "100";
  std::ostringstream d;
  d << "\"distances\": [";
  for (size_t i = 0; i < nodes; ++i) {
    d << (i ? ", [" : "[");
    for (size_t j = 0; j < nodes; ++j) {
      d << (j ? ", " : "") << (i == j ? "10" : v);
    }
    d << "]";
  }
  d << "], ";
  return d.str();
}

}  // namespace

std::chrono::seconds DistBootTimeout(std::chrono::seconds fallback) {
  const char* v = std::getenv("SSIHV_DIST_BOOT_TIMEOUT");
  const int s = v != nullptr ? std::atoi(v) : 0;
  return s > 0 ? std::chrono::seconds(s) : fallback;
}

TestCluster::TestCluster(std::vector<NodeSpec> nodes,
                         const std::string& transport, int port_base,
                         const std::string& extra_config)
    : specs_(std::move(nodes)) {
  char t[] = "/tmp/ssihv-dist-test.XXXXXX";
  REQUIRE(::mkdtemp(t) != nullptr);
  dir_ = t;
  const std::string secret = dir_ + "/secret";
  {
    std::ofstream(secret) << "dist-test-secret-0123456789abcdef\n";
    ::chmod(secret.c_str(), 0600);
  }
  std::ostringstream c;
  c << "{\"transport\": \"" << transport << "\", \"secret_file\": \"" << secret
    << "\", " << extra_config << Distances(specs_.size()) << "\"nodes\": [";
  for (size_t k = 0; k < specs_.size(); ++k) {
    c << (k ? ", " : "") << "{\"id\": " << k
      << ", \"vcpus\": " << specs_[k].vcpus
      << ", \"memory_mib\": " << specs_[k].memory_mib
      << ", \"address\": \"127.0.0.1:" << port_base + static_cast<int>(k)
      << "\"";
    if (specs_[k].api_port != 0) {
      c << ", \"api_address\": \"" << api_address(k) << "\"";
    }
    c << "}";
  }
  c << "]}";
  config_json_ = c.str();
  config_path_ = dir_ + "/cluster.json";
  std::ofstream(config_path_) << config_json_;
  procs_.resize(specs_.size());
}

TestCluster::~TestCluster() {
  for (auto& p : procs_) {
    if (p) p->Signal(SIGKILL);
  }
  procs_.clear();
  std::system(("rm -rf '" + dir_ + "'").c_str());
}

std::string TestCluster::api_address(uint32_t k) const {
  const int port = specs_.at(k).api_port;
  return port == 0 ? "" : "127.0.0.1:" + std::to_string(port);
}

void TestCluster::Launch(std::optional<uint32_t> k, const std::string& append,
                         const std::vector<std::string>& extra) {
  BootFiles files = LoadBootEnv(SSIHV_BOOT_ENV);
  const uint32_t slot = k.value_or(0);
  std::vector<std::string> argv = {
      SSIHV_VMM,
      "--config",
      config_path_,
      "--kernel",
      files.kernel,
      "--initrd",
      files.initrd,
      "--append",
      append,
      "--stats-json",
      dir_ + "/stats-" + std::to_string(slot) + ".json"};
  if (k) argv.insert(argv.end(), {"--node", std::to_string(*k)});
  // $SSIHV_DIST_VMM_ARGS: more ssihv-vmm arguments for every node (words
  // split at spaces), to try VMM settings in the lab without a rebuild.
  if (const char* more = std::getenv("SSIHV_DIST_VMM_ARGS")) {
    std::istringstream words(more);
    for (std::string w; words >> w;) argv.push_back(w);
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = Subprocess::Start(argv);
  REQUIRE(p.ok());
  procs_.at(slot) = std::move(*p);
}

void TestCluster::Start(uint32_t k, const std::string& append,
                        const std::vector<std::string>& extra) {
  Launch(k, append, extra);
}

void TestCluster::StartOneProcess(const std::string& append,
                                  const std::vector<std::string>& extra) {
  Launch(std::nullopt, append, extra);
}

void TestCluster::StartAll(const std::string& append,
                           const std::vector<std::string>& extra) {
  for (uint32_t k = 0; k < specs_.size(); ++k) Start(k, append, extra);
}

std::optional<int> TestCluster::Wait(uint32_t k, std::chrono::seconds timeout) {
  return procs_.at(k)->Wait(timeout);
}

namespace {

// The first line of a /proc file ("?" when it cannot be read).
std::string FirstLine(const std::string& path) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) return "?";
  return text->substr(0, text->find('\n'));
}

}  // namespace

std::string TestCluster::Threads(uint32_t k) const {
  if (!procs_.at(k) || procs_[k]->Wait(std::chrono::seconds(0))) {
    return "node " + std::to_string(k) + " is not running\n";
  }
  const std::string pid = std::to_string(procs_[k]->pid());
  std::ostringstream out;
  out << "---- node " << k << " (pid " << pid << ") threads: name, state, "
      << "wchan\n";
  std::error_code ec;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + pid + "/task", ec)) {
    const std::string dir = t.path().string();
    const std::string stat = FirstLine(dir + "/stat");
    const size_t paren = stat.rfind(')');
    out << "  " << t.path().filename().string() << " "
        << FirstLine(dir + "/comm") << " "
        << (paren != std::string::npos && paren + 2 < stat.size()
                ? stat.substr(paren + 2, 1)
                : "?")
        << " " << FirstLine(dir + "/wchan") << "\n";
  }
  // gdb, where installed: every thread's stack (a debugging aid for a hang;
  // the check does not depend on it).
  if (RunShell("command -v gdb").exit != 0) return out.str();
  const std::string stacks = RunShell("gdb -p " + pid +
                                      " -batch -nx -ex 'set pagination off' "
                                      "-ex 'thread apply all bt 25'")
                                 .output;
  out << stacks.substr(0, 60000);
  return out.str();
}

void TestCluster::QuitStuck() {
  for (auto& p : procs_) {
    if (p && !p->Wait(std::chrono::seconds(0))) p->Signal(SIGQUIT);
  }
  for (auto& p : procs_) {
    if (p) p->Wait(std::chrono::seconds(20));
  }
}

nlohmann::json TestCluster::Stats(uint32_t k) const {
  std::ifstream in(dir_ + "/stats-" + std::to_string(k) + ".json");
  INFO("node " << k << " stats");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::string TestCluster::Dump() const {
  std::string out;
  for (size_t k = 0; k < procs_.size(); ++k) {
    if (!procs_[k]) continue;
    const std::string o = procs_[k]->out(), e = procs_[k]->err();
    out += "---- node " + std::to_string(k) + " stdout (last 3000 bytes):\n" +
           o.substr(o.size() > 3000 ? o.size() - 3000 : 0) + "\n---- node " +
           std::to_string(k) + " stderr:\n" +
           e.substr(e.size() > 6000 ? e.size() - 6000 : 0) + "\n";
  }
  return out;
}

}  // namespace ssihv::testing
