// ssihvctl's API commands in-process against real HTTP servers on
// 127.0.0.1, each serving a fake node: tables, unreachable nodes, tokens,
// refusals and exit statuses.
#include "ctl.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "fake_vm_node.h"
#include "ssihv/base/file_util.h"
#include "ssihv/control/prometheus.h"
#include "ssihv/control/server.h"

namespace ssihv::ctl {
namespace {

using control::testing::FakeVmNode;

constexpr char kToken[] = "ctl-test-token-0123";

// `n` fake nodes (2 vCPUs each) behind real servers, and the config file
// that names their api_address and the token file.
class TestCluster {
 public:
  explicit TestCluster(int n, bool with_token = true,
                       mode_t token_mode = 0600) {
    char tmpl[] = "/tmp/ssihvctl_test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    std::string nodes;
    for (int k = 0; k < n; ++k) {
      auto s = control::HttpServer::Bind("127.0.0.1", 0);
      REQUIRE(s.ok());
      absl::StrAppend(&nodes, k ? "," : "", R"({"id": )", k,
                      R"(, "vcpus": 2, "memory_mib": 64, "api_address": ")",
                      (*s)->address(), "\"}");
      servers_.push_back(*std::move(s));
    }
    std::string json = absl::StrCat(R"({"nodes": [)", nodes, "]");
    if (with_token) {
      const std::string token = dir_ + "/token";
      REQUIRE(
          base::WriteFileAtomically(token, std::string(kToken) + "\n").ok());
      REQUIRE(::chmod(token.c_str(), token_mode) == 0);
      absl::StrAppend(&json, R"(, "api_token_file": ")", token, "\"");
    }
    json += "}";
    config_path_ = dir_ + "/cluster.json";
    REQUIRE(base::WriteFileAtomically(config_path_, json).ok());
    auto config = cluster::ParseClusterConfig(json);
    REQUIRE(config.ok());
    for (int k = 0; k < n; ++k) {
      nodes_.push_back(std::make_unique<FakeVmNode>(k, n, 2 * k, 2));
      handlers_.push_back(std::make_unique<control::ApiHandler>(
          *config, k, nodes_.back().get(),
          control::ApiAuth{with_token ? kToken : "", false}));
      control::ApiHandler* h = handlers_.back().get();
      REQUIRE(servers_.back() != nullptr);
      REQUIRE(servers_[k]
                  ->Serve([h](const control::HttpRequest& r) {
                    return h->Handle(r);
                  })
                  .ok());
    }
  }
  ~TestCluster() {
    for (auto& s : servers_) s->Stop();
    for (const char* f : {"/token", "/cluster.json"})
      ::unlink((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
  }

  struct Run {
    int exit = -1;
    std::string out;
    std::string err;
  };
  Run Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--config", config_path_, "--interval", "0.05"});
    auto options = ParseCtlArgs(args);
    REQUIRE(options.ok());
    std::ostringstream out, err;
    Run r;
    r.exit = RunCommand(*options, out, err);
    r.out = out.str();
    r.err = err.str();
    INFO(r.out << r.err);
    return r;
  }
  /// Node k stops answering (its port is closed).
  void Kill(int k) { servers_[k]->Stop(); }
  FakeVmNode& node(int k) { return *nodes_[k]; }
  const std::string& config_path() const { return config_path_; }
  std::string address(int k) const { return servers_[k]->address(); }

 private:
  std::string dir_;
  std::string config_path_;
  std::vector<std::unique_ptr<control::HttpServer>> servers_;
  std::vector<std::unique_ptr<FakeVmNode>> nodes_;
  std::vector<std::unique_ptr<control::ApiHandler>> handlers_;
};

// The line of the table that starts with node `k`.
std::string Row(const std::string& table, int k) {
  std::istringstream in(table);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(std::to_string(k) + " ", 0) == 0) return line;
  }
  return "";
}

// Column `i` (from 0) of a table row split at runs of spaces.
std::string Column(const std::string& row, size_t i) {
  std::istringstream in(row);
  std::string word;
  for (size_t k = 0; in >> word; ++k) {
    if (k == i) return word;
  }
  return "";
}

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("status: one row per node, rates and remote latency") {
  TestCluster c(3);
  c.node(1).AdvanceFaultsPerCall(1000);
  c.node(2).SetHealth({control::NodeStatus::kPaused, 7200, ""});
  auto r = c.Ctl({"status"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(r.out, "NODE  API"));
  CHECK(Has(Row(r.out, 0), c.address(0)));
  CHECK(Has(Row(r.out, 0), " running "));
  CHECK(Has(Row(r.out, 0), " 12.5s "));
  CHECK(Column(Row(r.out, 0), 2) == "yes");
  CHECK(Column(Row(r.out, 0), 6) == "0.0");  // no faults in between
  // 300 remote reads at 30 us and 400 remote writes at 45 us: both in the
  // (20, 50] us bucket: p50 35.0 us, p99 49.7 us.
  CHECK(Has(Row(r.out, 0), "35.0 us"));
  CHECK(Has(Row(r.out, 0), "49.7 us"));
  CHECK(std::stod(Column(Row(r.out, 1), 6)) > 0);  // node 1 faults meanwhile
  CHECK(Has(Row(r.out, 2), " paused "));
  CHECK(Has(Row(r.out, 2), " 2h00m "));
  CHECK(r.err.empty());
}

TEST_CASE("status: a node that does not answer is shown, not an error") {
  TestCluster c(3);
  c.Kill(1);
  c.node(2).SetHealth({control::NodeStatus::kFailed, 3, "node 1 lost"});
  auto r = c.Ctl({"status"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(Row(r.out, 0), " running "));
  CHECK(Has(Row(r.out, 1), " unreachable "));
  CHECK(Column(Row(r.out, 1), 2) == "no");
  CHECK(Has(r.out, "node 1: connect " + c.address(1) + ": Connection refused"));
  CHECK(Has(Row(r.out, 2), " failed "));
  CHECK(Has(r.out, "node 2: node 1 lost"));
  c.Kill(0);
  c.Kill(2);
  r = c.Ctl({"status"});
  CHECK(r.exit == kExitNodeDown);  // nobody answered
  CHECK(Has(Row(r.out, 2), " unreachable "));
}

TEST_CASE("pages: every node's state, the home's directory") {
  TestCluster c(2);
  c.node(0).SetPage(control::PageInfo{
      "shared", control::DirectoryInfo{"shared", std::nullopt, {0, 1}, false}});
  c.node(1).SetPage(control::PageInfo{"shared", std::nullopt});
  auto r = c.Ctl({"pages", "0x1234"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(r.out, "GPA 0x1234 (page 0x1000), home node 0"));
  CHECK(Has(Row(r.out, 0), "shared, owner -, sharers 0,1"));
  CHECK(Row(r.out, 1) == "1     shared");

  c.Kill(1);
  r = c.Ctl({"pages", "1000"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(Row(r.out, 1), "Connection refused"));

  r = c.Ctl({"pages", "0xzz"});
  CHECK(r.exit == kExitRefused);
  CHECK(Has(r.err, "bad GPA \"0xzz\""));
  r = c.Ctl({"pages", "0xc0000000"});
  CHECK(r.exit == kExitRefused);
  CHECK(Has(r.err, "is in the MMIO hole"));
}

TEST_CASE("pages hot: each node's hottest pages, one row each") {
  TestCluster c(2);
  c.node(0).SetHotPages({{0x3000, 9, 2, 1, 4}, {0x5000, 3, 0, 0, 0}});
  c.node(1).SetHotPages({{0x4001000, 5, 5, 5, 5}});
  auto r = c.Ctl({"pages", "hot"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(r.out, "HOME  GPA               READS   WRITES    INVAL    MOVED"));
  CHECK(Has(r.out, "0     0x3000                9        2        1        4"));
  CHECK(Has(r.out, "0     0x5000                3        0        0        0"));
  CHECK(Has(r.out, "1     0x4001000             5        5        5        5"));
  r = c.Ctl({"pages", "hot", "--node", "1"});
  CHECK_FALSE(Has(r.out, "0x3000"));
  CHECK(Has(r.out, "0x4001000"));
  c.Kill(0);
  c.Kill(1);
  r = c.Ctl({"pages", "hot"});
  CHECK(r.exit == kExitNodeDown);
  CHECK(Has(r.err, "pages hot: node 1: "));
}

TEST_CASE("pause/resume/stop: the token, through the first node that answers") {
  TestCluster c(3);
  c.node(0).SetActionResult(std::vector<control::NodeActionResult>{
      {0, absl::OkStatus()}, {1, absl::OkStatus()}, {2, absl::OkStatus()}});
  auto r = c.Ctl({"pause"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(
      r.out,
      "pause (through node 0):\n  node 0: ok\n  node 1: ok\n  node 2: ok\n"));
  CHECK(c.node(0).actions() ==
        std::vector<control::VmAction>{control::VmAction::kPause});
  CHECK(c.node(1).actions().empty());  // node 0 forwards, not ssihvctl

  c.Kill(0);
  c.node(1).SetActionResult(std::vector<control::NodeActionResult>{
      {0, absl::UnavailableError("node 0 is not connected")},
      {1, absl::OkStatus()},
      {2, absl::OkStatus()}});
  r = c.Ctl({"stop"});
  CHECK(r.exit == kExitNodeDown);
  CHECK(Has(r.out, "stop (through node 1):"));
  CHECK(Has(r.out, "node 0: FAILED: node 0 is not connected"));

  c.node(1).SetActionResult(
      absl::FailedPreconditionError("the guest is not running"));
  r = c.Ctl({"resume"});
  CHECK(r.exit == kExitRefused);
  CHECK(Has(r.err, "HTTP 409: resume: the guest is not running"));

  c.Kill(1);
  c.Kill(2);
  r = c.Ctl({"stop"});
  CHECK(r.exit == kExitNodeDown);
  CHECK(Has(r.err, "stop: no node answered"));
}

TEST_CASE("pause without a usable token: refused before asking") {
  TestCluster none(2, /*with_token=*/false);
  auto r = none.Ctl({"pause"});
  CHECK(r.exit == kExitConfig);
  CHECK(Has(r.err, "the config has no api_token_file"));
  CHECK(none.node(0).actions().empty());

  TestCluster open(2, true, 0644);
  r = open.Ctl({"stop"});
  CHECK(r.exit == kExitConfig);
  CHECK(Has(r.err, "run chmod 600"));
  // Reads still work on a loopback API, with a warning.
  r = open.Ctl({"status"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(r.err, "warning: api_token_file"));
}

TEST_CASE("metrics: every node merged into one valid exposition") {
  TestCluster c(3);
  auto r = c.Ctl({"metrics"});
  CHECK(r.exit == kExitOk);
  auto samples = control::ParseTextExposition(r.out);
  REQUIRE(samples.ok());
  std::set<std::string> nodes;
  for (const auto& s : *samples) nodes.insert(*s.LabelValue("node"));
  CHECK(nodes == std::set<std::string>{"0", "1", "2"});
  size_t headers = 0;
  for (size_t at = 0; (at = r.out.find("# TYPE ssihv_page_faults_total", at)) !=
                      std::string::npos;
       ++at) {
    ++headers;
  }
  CHECK(headers == 1);

  r = c.Ctl({"metrics", "--node", "2"});
  CHECK(r.exit == kExitOk);
  samples = control::ParseTextExposition(r.out);
  for (const auto& s : *samples) CHECK(*s.LabelValue("node") == "2");

  c.Kill(2);
  r = c.Ctl({"metrics"});
  CHECK(r.exit == kExitOk);
  CHECK(Has(r.err, "metrics: node 2: connect"));
  r = c.Ctl({"metrics", "--node", "2"});
  CHECK(r.exit == kExitNodeDown);
  r = c.Ctl({"metrics", "--node", "5"});
  CHECK(r.exit == kExitUsage);
}

TEST_CASE("top: frames of rates per node") {
  TestCluster c(2);
  c.node(0).AdvanceFaultsPerCall(500);
  auto r = c.Ctl({"top", "--count", "2"});
  CHECK(r.exit == kExitOk);
  size_t frames = 0;
  for (size_t at = 0;
       (at = r.out.find("ssihvctl top:", at)) != std::string::npos; ++at) {
    ++frames;
  }
  CHECK(frames == 2);
  CHECK_FALSE(Has(r.out, "\x1b["));  // not a terminal: no escape codes
  // NODE STATUS FAULTS/S EXITS/S IPIS/S REMOTE-P50 ...
  CHECK(Column(Row(r.out, 0), 1) == "running");
  CHECK(std::stod(Column(Row(r.out, 0), 2)) > 0);  // node 0 faults meanwhile
  CHECK(Column(Row(r.out, 1), 2) == "0.0");
  CHECK(Column(Row(r.out, 1), 3) == "0.0");
  // No remote fault happened within the interval: no quantile.
  CHECK(Column(Row(r.out, 1), 5) == "-");
}

TEST_CASE("config problems: exit 3 with the reason") {
  TestCluster c(1);
  std::ostringstream out, err;
  auto o = ParseCtlArgs({"--config", "/nonexistent.json", "status"});
  CHECK(RunCommand(*o, out, err) == kExitConfig);
  CHECK(Has(err.str(),
            "--config: open /nonexistent.json: No such file or directory"));

  char tmpl[] = "/tmp/ssihvctl_noapi_XXXXXX";
  int fd = ::mkstemp(tmpl);
  ::close(fd);
  REQUIRE(base::WriteFileAtomically(
              tmpl, R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 2}]})")
              .ok());
  o = ParseCtlArgs({"--config", tmpl, "status"});
  std::ostringstream err2;
  CHECK(RunCommand(*o, out, err2) == kExitConfig);
  CHECK(Has(err2.str(), "no node has an api_address"));
  ::unlink(tmpl);
}

}  // namespace
}  // namespace ssihv::ctl
