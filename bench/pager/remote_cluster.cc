#include "remote_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/base/file_util.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::bench {

void PrintStats(pager::DsmNode& node) {
  if (getenv("SSIHV_BENCH_STATS") != nullptr) {  // where the time goes
    fprintf(stderr, "%s\n", node.StatsJson().dump().c_str());
  }
}

namespace {

// A command to the home that asks for one of these counters of node 0's
// (DsmNode::StatsJson()["dsm"]) instead of a rewrite.
constexpr uint64_t kStatCommand = ~uint64_t{0};
constexpr const char* kHomeStats[] = {"background_downgrades",
                                      "background_downgrades_useful",
                                      "background_downgrades_wasted"};

bool WriteAll(int fd, const void* p, size_t n) {
  return write(fd, p, n) == static_cast<ssize_t>(n);
}
bool ReadAll(int fd, void* p, size_t n, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  return poll(&pfd, 1, timeout_ms) == 1 &&
         read(fd, p, n) == static_cast<ssize_t>(n);
}

volatile uint64_t* PageOf(pager::DsmNode& node, uint64_t base, uint64_t page) {
  return reinterpret_cast<volatile uint64_t*>(
      node.HostAddress(base + page * kPage));
}

/// The home process: node 0, plus node 2 when `shared`. Command r (pages
/// [first, first + count)) writes Pattern(r, page) into those pages of node
/// 0's memory; node 2 then reads them, so node 0 holds them Shared. Answers
/// 'k'; exits on end of file.
[[noreturn]] void HomeMain(const cluster::ClusterConfig& config, bool shared,
                           absl::Duration downgrade, int cmd, int report) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::vector<std::unique_ptr<pager::DsmNode>> nodes;
  for (uint32_t id :
       shared ? std::vector<uint32_t>{0, 2} : std::vector<uint32_t>{0}) {
    auto t = rdmax::CreateTransport(config, id, pager::DsmTransportOptions());
    if (!t.ok()) _exit(1);
    pager::DsmOptions options;
    options.background_downgrade = downgrade;
    auto node = pager::DsmNode::Create(config, id, *std::move(t), options);
    if (!node.ok()) _exit(1);
    nodes.push_back(*std::move(node));
  }
  // Start() waits for every peer, node 1 included: start them together.
  std::vector<std::thread> starters;
  std::atomic<bool> ok{true};
  for (auto& n : nodes) {
    starters.emplace_back([&] { ok = ok && n->Start().ok(); });
  }
  for (auto& t : starters) t.join();
  if (!ok) _exit(1);
  const uint64_t base = cluster::GuestLayout(config).RangesOfNode(0)[0].gpa;
  uint64_t range[2];
  uint64_t round = 0;
  while (ReadAll(cmd, range, sizeof(range), -1)) {
    if (range[0] == kStatCommand) {  // range[1]: which counter
      const uint64_t v = nodes[0]->StatsJson()["dsm"].value(
          kHomeStats[std::min<uint64_t>(range[1], std::size(kHomeStats) - 1)],
          uint64_t{0});
      if (!WriteAll(report, &v, sizeof(v))) break;
      continue;
    }
    ++round;
    const uint64_t end = std::min(range[0] + range[1], kHomePages);
    for (uint64_t p = range[0]; p < end; ++p) {
      *PageOf(*nodes[0], base, p) = Pattern(round, p);
    }
    if (shared) {
      for (uint64_t p = range[0]; p < end; ++p) {
        (void)*PageOf(*nodes[1], base, p);
      }
    }
    const char k = 'k';
    if (!WriteAll(report, &k, 1)) break;
  }
  PrintStats(*nodes[0]);  // the home's side too
  for (auto& node : nodes) node->Stop();
  _exit(0);
}

/// Node 1 in this process, the home (node 0, and node 2 with `shared`) in a
/// forked one.

}  // namespace

absl::StatusOr<cluster::ClusterConfig> RemoteConfig(const char* transport,
                                                    int nodes,
                                                    const std::string& dir) {
  const std::string secret = dir + "/secret";
  absl::Status st = base::WriteFileAtomically(
      secret, absl::StrCat("pager-bench-secret-", getpid(), "-0123456789"));
  if (!st.ok()) return st;
  chmod(secret.c_str(), 0600);
  std::string list;
  for (int i = 0; i < nodes; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    absl::StrAppend(&list, i ? "," : "", R"({"id": )", i,
                    R"(, "vcpus": 1, "memory_mib": )", i == 0 ? kHomeMib : 2,
                    R"(, "address": "127.0.0.1:)", ntohs(a.sin_port), R"("})");
  }
  return cluster::ParseClusterConfig(
      absl::StrCat(R"({"transport": ")", transport, R"(", "secret_file": ")",
                   secret, R"(", "nodes": [)", list, "]}"));
}

std::unique_ptr<RemoteCluster> RemoteCluster::Start(
    benchmark::State& state, const RemoteOptions& options) {
  std::unique_ptr<RemoteCluster> c(new RemoteCluster);
  absl::Status st = c->Init(options);
  if (!st.ok()) {
    state.SkipWithError(std::string(st.message()).c_str());
    return nullptr;
  }
  return c;
}

RemoteCluster::~RemoteCluster() {
  if (node_ != nullptr) node_->Stop();
  node_.reset();
  if (cmd_ >= 0) close(cmd_);  // the home exits on end of file
  if (report_ >= 0) close(report_);
  if (pid_ > 0) waitpid(pid_, nullptr, 0);
  unlink((dir_ + "/secret").c_str());
  rmdir(dir_.c_str());
}

uint64_t RemoteCluster::Rewrite(uint64_t first, uint64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t range[2] = {first, count};
  char c = 0;
  const bool ok = WriteAll(cmd_, range, sizeof(range)) &&
                  ReadAll(report_, &c, 1, 120000) && c == 'k';
  ++round_;
  return ok ? round_ : 0;
}

uint64_t RemoteCluster::HomeStat(HomeCounter counter) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t command[2] = {kStatCommand, static_cast<uint64_t>(counter)};
  uint64_t v = 0;
  if (!WriteAll(cmd_, command, sizeof(command)) ||
      !ReadAll(report_, &v, sizeof(v), 120000)) {
    return 0;
  }
  return v;
}

volatile uint64_t* RemoteCluster::At(uint64_t page) {
  return PageOf(*node_, base_, page);
}

absl::Status RemoteCluster::Init(const RemoteOptions& o) {
  const char* transport = o.transport;
  const bool shared = o.shared;
  if (std::string(transport) == "rdma" && !rdmax::ProbeRdmaDevice("", 1).ok()) {
    return absl::UnavailableError("no RDMA device with an active port");
  }
  char tmpl[] = "/tmp/ssihv-pager-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp");
  dir_ = tmpl;
  auto config = RemoteConfig(transport, shared ? 3 : 2, dir_);
  if (!config.ok()) return config.status();
  int to_home[2], from_home[2];
  if (pipe2(to_home, O_CLOEXEC) != 0 || pipe2(from_home, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe2");
  }
  pid_ = fork();  // before any thread of this process's node
  if (pid_ == 0) {
    close(to_home[1]);  // or the home never sees end of file
    close(from_home[0]);
    HomeMain(*config, shared, o.home_downgrade, to_home[0], from_home[1]);
  }
  close(to_home[0]);
  close(from_home[1]);
  cmd_ = to_home[1];
  report_ = from_home[0];
  base_ = cluster::GuestLayout(*config).RangesOfNode(0)[0].gpa;
  auto t = rdmax::CreateTransport(*config, 1, pager::DsmTransportOptions());
  if (!t.ok()) return t.status();
  pager::DsmOptions options;
  options.read_ahead_pages = o.read_ahead;
  options.write_run_pages = o.write_runs;
  options.read_refresh = o.refresh;
  // Diagnostics: another read-ahead bound for the runs that have one.
  if (const char* v = std::getenv("SSIHV_BENCH_READ_AHEAD_PAGES");
      v != nullptr && o.read_ahead != 0) {
    options.read_ahead_pages =
        static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  }
  auto node = pager::DsmNode::Create(*config, 1, *std::move(t), options);
  if (!node.ok()) return node.status();
  node_ = *std::move(node);
  return node_->Start();
}

}  // namespace ssihv::bench
