// Remote faults through the DSM node, against floors in the same binary and
// run (docs/PERFORMANCE.md, "Pager"):
//
//   BM_RemoteFault/tcp         a read fault on a page the home holds
//                              Modified (it must write-protect it: the
//                              protocol's downgrade); read against
//                              BM_Bound/tcp_lane_wp (remote_bound.cc)
//   BM_RemoteFault/tcp_shared  the same, the home holding the page Shared
//                              (a third node read it first: no downgrade);
//                              against BM_Bound/tcp_lane
//   BM_RemoteFault/rdma        (lab VM) against BM_Floor/uffd_copy +
//                              BM_Floor/ib_read_4k
//   BM_RemoteUpgrade/tcp       a write to a page this node and its home
//                              both hold Shared (read first, untimed): the
//                              home drops its copy (a zap) and grants; the
//                              tick-time pattern of a distributed boot, one
//                              node writing what another reads
//   BM_RemoteTick/tcp          the home rewrites one page and this node
//                              reads it back, in turn, each iteration
//                              timed whole (the guest's timekeeper and
//                              jiffies at every tick: one node writes, the
//                              others read); the grant hold must not grow
//   BM_RemoteTickRead/tcp      the home writes one page, this node reads
//                              it 1 ms later, the read timed: with read
//                              refresh the page is back here by then
//                              (/tcp_no_refresh: a remote miss each time)
//   BM_RemoteSequentialRead/tcp  64 MiB homed on the other node read once,
//                              page after page; bytes/s against
//                              BM_Floor/tcp_stream (with the default remote
//                              read-ahead; /tcp_no_read_ahead without);
//                              also the home's rewrite between walks per
//                              page (rewrite_us_per_page: one invalidation
//                              of our copy each; rewrite_first_us_per_page:
//                              the first, with nothing to take back)
//   BM_RemoteFaultThroughput/tcp/threads:N  N threads reading distinct
//                              remote pages; faults/s
//   BM_RemoteFirstTouch/tcp    64 MiB homed on the other node and never
//                              touched, written once, page after page (a
//                              guest zeroing remote memory it allocated);
//                              bytes/s, with the default first-touch write
//                              runs (/tcp_no_write_runs without); one
//                              iteration per fresh cluster
//
// The home is a forked process running DsmNode 0 (and for tcp_shared
// DsmNode 2, the third node); this process is node 1. Between rounds the
// home rewrites the pages (timing paused), which invalidates node 1's
// copies. SSIHV_BENCH_STATS=1 prints node 1's DsmNode::StatsJson() after
// each run, and the home's when it exits; SSIHV_BENCH_READ_AHEAD_PAGES=N
// replaces the default read-ahead bound of the benchmarks that read ahead.
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
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench_util.h"
#include "ssihv/base/file_util.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::bench {
namespace {

constexpr uint64_t kRemoteWindow = 2048;  // pages read before a rewrite
constexpr uint64_t kHomeMib = 64;
constexpr uint64_t kHomePages = kHomeMib * 1024 * 1024 / kPage;

uint64_t Pattern(uint64_t round, uint64_t page) { return round << 32 | page; }

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

void PrintStats(pager::DsmNode& node) {
  if (getenv("SSIHV_BENCH_STATS") != nullptr) {  // where the time goes
    fprintf(stderr, "%s\n", node.StatsJson().dump().c_str());
  }
}

/// The home process: node 0, plus node 2 when `shared`. Command r (pages
/// [first, first + count)) writes Pattern(r, page) into those pages of node
/// 0's memory; node 2 then reads them, so node 0 holds them Shared. Answers
/// 'k'; exits on end of file.
[[noreturn]] void HomeMain(const cluster::ClusterConfig& config, bool shared,
                           int cmd, int report) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::vector<std::unique_ptr<pager::DsmNode>> nodes;
  for (uint32_t id :
       shared ? std::vector<uint32_t>{0, 2} : std::vector<uint32_t>{0}) {
    auto t = rdmax::CreateTransport(config, id, pager::DsmTransportOptions());
    if (!t.ok()) _exit(1);
    auto node = pager::DsmNode::Create(config, id, *std::move(t));
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
  for (uint64_t round = 1; ReadAll(cmd, range, sizeof(range), -1); ++round) {
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

/// Node 1 in this process, the home (node 0, and node 2 with `shared`) in a
/// forked one.
class RemoteCluster {
 public:
  /// `read_ahead`: node 1's DsmOptions::read_ahead_pages (0 for the
  /// benchmarks of one fault: their walks through the window would be
  /// served ahead).
  /// `write_runs`: node 1's DsmOptions::write_run_pages.
  /// `refresh`: node 1's DsmOptions::read_refresh (off but for
  /// BM_RemoteTickRead: the others read pages their home rewrote, which
  /// would soon be refreshed instead of missed).
  static std::unique_ptr<RemoteCluster> Start(
      benchmark::State& state, const char* transport, bool shared,
      uint32_t read_ahead = 0,
      uint32_t write_runs = pager::DsmOptions().write_run_pages,
      bool refresh = false) {
    std::unique_ptr<RemoteCluster> c(new RemoteCluster);
    absl::Status st =
        c->Init(transport, shared, read_ahead, write_runs, refresh);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      return nullptr;
    }
    return c;
  }
  ~RemoteCluster() {
    if (node_ != nullptr) node_->Stop();
    node_.reset();
    if (cmd_ >= 0) close(cmd_);  // the home exits on end of file
    if (report_ >= 0) close(report_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    unlink((dir_ + "/secret").c_str());
    rmdir(dir_.c_str());
  }

  /// The home writes the next round into pages [first, first + count)
  /// (invalidating node 1's copies); any thread. The round, or 0 when the
  /// home did not answer.
  uint64_t Rewrite(uint64_t first, uint64_t count) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t range[2] = {first, count};
    char c = 0;
    const bool ok = WriteAll(cmd_, range, sizeof(range)) &&
                    ReadAll(report_, &c, 1, 120000) && c == 'k';
    ++round_;
    return ok ? round_ : 0;
  }
  volatile uint64_t* At(uint64_t page) { return PageOf(*node_, base_, page); }
  static bool Check(uint64_t round, uint64_t page, uint64_t v) {
    return v == Pattern(round, page);
  }
  pager::DsmNode& node() { return *node_; }

 private:
  RemoteCluster() = default;
  absl::Status Init(const char* transport, bool shared, uint32_t read_ahead,
                    uint32_t write_runs, bool refresh) {
    if (std::string(transport) == "rdma" &&
        !rdmax::ProbeRdmaDevice("", 1).ok()) {
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
      HomeMain(*config, shared, to_home[0], from_home[1]);
    }
    close(to_home[0]);
    close(from_home[1]);
    cmd_ = to_home[1];
    report_ = from_home[0];
    base_ = cluster::GuestLayout(*config).RangesOfNode(0)[0].gpa;
    auto t = rdmax::CreateTransport(*config, 1, pager::DsmTransportOptions());
    if (!t.ok()) return t.status();
    pager::DsmOptions options;
    options.read_ahead_pages = read_ahead;
    options.write_run_pages = write_runs;
    options.read_refresh = refresh;
    // Diagnostics: another read-ahead bound for the runs that have one.
    if (const char* v = std::getenv("SSIHV_BENCH_READ_AHEAD_PAGES");
        v != nullptr && read_ahead != 0) {
      options.read_ahead_pages =
          static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    }
    auto node = pager::DsmNode::Create(*config, 1, *std::move(t), options);
    if (!node.ok()) return node.status();
    node_ = *std::move(node);
    return node_->Start();
  }

  std::string dir_;
  pid_t pid_ = -1;
  int cmd_ = -1;
  int report_ = -1;
  uint64_t base_ = 0;
  std::mutex mu_;
  uint64_t round_ = 0;
  std::unique_ptr<pager::DsmNode> node_;
};

// The loop of the single-fault benchmarks. Every kRemoteWindow iterations
// (and before the first) the home rewrites the window, timing paused, which
// invalidates our copies. kRead: each iteration times the read of the next
// page. kWrite: node 1 first reads the whole window (paused), so that both
// nodes hold every page Shared; each iteration times a write (an upgrade).
enum class Access { kRead, kWrite };

void WindowLoop(benchmark::State& state, RemoteCluster& c, Access access) {
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t page = kRemoteWindow, round = 0, wrong = 0;
  for (auto _ : state) {
    if (page == kRemoteWindow) {
      state.PauseTiming();
      page = 0;
      round = c.Rewrite(0, kRemoteWindow);
      if (round == 0) {
        state.SkipWithError("the home node stopped answering");
        break;
      }
      if (access == Access::kWrite) {
        for (uint64_t p = 0; p < kRemoteWindow; ++p) {
          wrong += !RemoteCluster::Check(round, p, *c.At(p));
        }
      }
      state.ResumeTiming();
    }
    volatile uint64_t* p = c.At(page);
    if (access == Access::kRead) {
      const int64_t t0 = NowNs();
      const uint64_t v = *p;
      ns.push_back(NowNs() - t0);
      wrong += !RemoteCluster::Check(round, page, v);
    } else {
      const int64_t t0 = NowNs();
      *p = 0;
      ns.push_back(NowNs() - t0);
    }
    ++page;
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  SetPercentiles(state, ns);
  PrintStats(c.node());
}

void BM_RemoteFault(benchmark::State& state, const char* transport,
                    bool shared) {
  auto c = RemoteCluster::Start(state, transport, shared);
  if (c) WindowLoop(state, *c, Access::kRead);
}

void BM_RemoteUpgrade(benchmark::State& state) {
  auto c = RemoteCluster::Start(state, "tcp", false);
  if (c) WindowLoop(state, *c, Access::kWrite);
}

// One page, written by the home and read here in turn, each round timed
// whole: the home's write (an upgrade that takes our copy) and our read
// miss (a downgrade of the home's copy), plus the command to the home.
void BM_RemoteTick(benchmark::State& state) {
  auto c = RemoteCluster::Start(state, "tcp", false);
  if (!c) return;
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t wrong = 0;
  for (auto _ : state) {
    const int64_t t0 = NowNs();
    const uint64_t round = c->Rewrite(0, 1);
    if (round == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    wrong += !RemoteCluster::Check(round, 0, *c->At(0));
    ns.push_back(NowNs() - t0);
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  SetPercentiles(state, ns);
  PrintStats(c->node());
}

// The tick seen from a reader: the home writes one page (timing paused),
// and this node reads it kTickGap later, the read timed (a guest CPU's
// tick reading jiffies some time after the timekeeping CPU wrote it).
// With read refresh the page is back here by then and the read takes it
// locally; without, the read is a remote miss. write_us: the home's write
// per tick, the command to it included (an upgrade that takes our copy
// either way, as the page was read after every write).
constexpr absl::Duration kTickGap = absl::Milliseconds(1);

void BM_RemoteTickRead(benchmark::State& state, bool refresh) {
  auto c = RemoteCluster::Start(state, "tcp", false, 0,
                                pager::DsmOptions().write_run_pages, refresh);
  if (!c) return;
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t wrong = 0;
  int64_t write_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const int64_t w0 = NowNs();
    const uint64_t round = c->Rewrite(0, 1);
    write_ns += NowNs() - w0;
    if (round == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    absl::SleepFor(kTickGap);
    state.ResumeTiming();
    const int64_t t0 = NowNs();
    const uint64_t v = *c->At(0);
    ns.push_back(NowNs() - t0);
    wrong += !RemoteCluster::Check(round, 0, v);
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  SetPercentiles(state, ns);
  state.counters["write_us"] = static_cast<double>(write_ns) / 1e3 /
                               static_cast<double>(state.iterations());
  PrintStats(c->node());
}

// 64 MiB homed on node 0, read once per iteration, one access per page.
// bytes_per_s is over the wall time of the reads only (the rewrites that
// invalidate our copies between iterations are not counted).
void BM_RemoteSequentialRead(benchmark::State& state, uint32_t read_ahead) {
  auto c = RemoteCluster::Start(state, "tcp", false, read_ahead);
  if (!c) return;
  uint64_t wrong = 0;
  int64_t read_ns = 0;
  // The home's rewrite takes every page back from us (one invalidation per
  // page): timed apart from the reads, the first one (nothing to take back)
  // as its reference.
  int64_t first_rewrite_ns = 0;
  int64_t rewrite_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const int64_t r0 = NowNs();
    const uint64_t round = c->Rewrite(0, kHomePages);
    (round == 1 ? first_rewrite_ns : rewrite_ns) += NowNs() - r0;
    state.ResumeTiming();
    if (round == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    const int64_t t0 = NowNs();
    for (uint64_t page = 0; page < kHomePages; ++page) {
      wrong += !RemoteCluster::Check(round, page, *c->At(page));
    }
    read_ns += NowNs() - t0;
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  state.counters["bytes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kHomePages * kPage) * 1e9 /
      static_cast<double>(read_ns));
  state.counters["rewrite_first_us_per_page"] =
      static_cast<double>(first_rewrite_ns) / 1e3 / kHomePages;
  if (state.iterations() > 1) {
    state.counters["rewrite_us_per_page"] =
        static_cast<double>(rewrite_ns) / 1e3 / kHomePages /
        static_cast<double>(state.iterations() - 1);
  }
  PrintStats(c->node());
}

// 64 MiB homed on node 0 that nobody touched, written once (one word per
// page), as a guest zeroing memory it allocated on another node would. The
// pages are pristine only once, so each iteration (one) has its own
// cluster; bytes_per_s is over the writes' wall time (pager_dsm_test checks
// that the home reads back what such a walk wrote).
void BM_RemoteFirstTouch(benchmark::State& state, uint32_t write_runs) {
  int64_t write_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto c = RemoteCluster::Start(state, "tcp", false, 0, write_runs);
    if (!c) return;
    state.ResumeTiming();
    const int64_t t0 = NowNs();
    for (uint64_t page = 0; page < kHomePages; ++page) {
      *c->At(page) = Pattern(1, page);
    }
    write_ns += NowNs() - t0;
    state.PauseTiming();
    PrintStats(c->node());
    c.reset();
    state.ResumeTiming();
  }
  state.counters["bytes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kHomePages * kPage) * 1e9 /
      static_cast<double>(write_ns));
}

// Thread 0 sets up before the loop's start barrier and tears down after its
// end barrier; each thread reads its own slice of the home's pages, and has
// the home rewrite that slice (timing paused) when it has read it all.
std::unique_ptr<RemoteCluster> g_cluster;
constexpr uint64_t kSlicePages = 2048;

void BM_RemoteFaultThroughput(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_cluster = RemoteCluster::Start(state, "tcp", false);
  }
  const uint64_t first = state.thread_index() * kSlicePages;
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t next = kSlicePages, round = 0, wrong = 0;
  int64_t active = 0, segment = 0;
  for (auto _ : state) {
    if (next == kSlicePages) {
      if (!g_cluster) {
        state.SkipWithError("setup failed");
        break;
      }
      if (segment != 0) active += NowNs() - segment;
      state.PauseTiming();
      round = g_cluster->Rewrite(first, kSlicePages);
      next = 0;
      state.ResumeTiming();
      if (round == 0) {
        state.SkipWithError("the home node stopped answering");
        break;
      }
      segment = NowNs();
    }
    volatile uint64_t* p = g_cluster->At(first + next);
    const int64_t t0 = NowNs();
    const uint64_t v = *p;
    ns.push_back(NowNs() - t0);
    wrong += !RemoteCluster::Check(round, first + next, v);
    ++next;
  }
  if (segment != 0) active += NowNs() - segment;
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  // Summed over threads: the total rate.
  if (active > 0) {
    state.counters["faults_per_s"] = benchmark::Counter(
        static_cast<double>(ns.size()) * 1e9 / static_cast<double>(active));
  }
  SetPercentiles(state, ns);
  if (state.thread_index() == 0 && g_cluster) {
    PrintStats(g_cluster->node());
    g_cluster.reset();
  }
}

}  // namespace

void RegisterRemoteBenchmarks() {
  RegisterTcpFloor();  // bench/common: the same floors as bench/transport's
  RegisterTcpStreamFloor();
  RegisterIbFloor();
  benchmark::RegisterBenchmark("BM_RemoteFault/tcp", BM_RemoteFault, "tcp",
                               false);
  benchmark::RegisterBenchmark("BM_RemoteFault/tcp_shared", BM_RemoteFault,
                               "tcp", true);
  benchmark::RegisterBenchmark("BM_RemoteFault/rdma", BM_RemoteFault, "rdma",
                               false);
  benchmark::RegisterBenchmark("BM_RemoteUpgrade/tcp", BM_RemoteUpgrade);
  benchmark::RegisterBenchmark("BM_RemoteTick/tcp", BM_RemoteTick);
  // A fixed count: each iteration also waits kTickGap, timing paused.
  benchmark::RegisterBenchmark("BM_RemoteTickRead/tcp", BM_RemoteTickRead, true)
      ->Iterations(2000);
  benchmark::RegisterBenchmark("BM_RemoteTickRead/tcp_no_refresh",
                               BM_RemoteTickRead, false)
      ->Iterations(2000);
  benchmark::RegisterBenchmark("BM_RemoteSequentialRead/tcp",
                               BM_RemoteSequentialRead,
                               pager::DsmOptions().read_ahead_pages);
  benchmark::RegisterBenchmark("BM_RemoteSequentialRead/tcp_no_read_ahead",
                               BM_RemoteSequentialRead, 0u);
  benchmark::RegisterBenchmark("BM_RemoteFirstTouch/tcp", BM_RemoteFirstTouch,
                               pager::DsmOptions().write_run_pages)
      ->Iterations(1);
  benchmark::RegisterBenchmark("BM_RemoteFirstTouch/tcp_no_write_runs",
                               BM_RemoteFirstTouch, 0u)
      ->Iterations(1);
  benchmark::RegisterBenchmark("BM_RemoteFaultThroughput/tcp",
                               BM_RemoteFaultThroughput)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4);
}

}  // namespace ssihv::bench
