// BM_RemoteFault/{tcp,rdma}: a read fault on a page homed on another node
// process, resolved by the DSM node over the transport, and the floor it is
// measured against, in the same binary and run:
//   BM_Floor/tcp_rtt_4k   a raw blocking-socket request (16 bytes) answered
//                         with 4 KiB over 127.0.0.1 (bench/common: the very
//                         floor bench/transport reports against);
//   goal: BM_RemoteFault/tcp p50 <= 1.5 x (BM_Floor/uffd_copy +
//         BM_Floor/tcp_rtt_4k).
// The home is a forked process running DsmNode 0; this process is node 1.
// Each iteration reads a page node 1 does not hold (Invalid -> read request
// to the home -> kData with the 4 KiB -> UFFDIO_COPY read-only). After a
// window of pages the home rewrites them (timing paused), which invalidates
// node 1's copies, and the window is read again. SSIHV_BENCH_STATS=1 prints
// node 1's DsmNode::StatsJson() after each run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench_util.h"
#include "ssihv/base/file_util.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::bench {
namespace {

constexpr uint64_t kRemoteWindow = 2048;  // pages read before a rewrite

// ---- BM_RemoteFault --------------------------------------------------------

uint64_t Pattern(uint64_t round, uint64_t page) { return round << 32 | page; }

void WriteByte(int fd, char c) { [[maybe_unused]] auto n = write(fd, &c, 1); }
bool ReadByte(int fd, char* c, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && read(fd, c, 1) == 1;
}

/// The home node: writes round r's pattern into the window on each 'w',
/// answers 'k'; exits on end of file.
[[noreturn]] void HomeMain(const cluster::ClusterConfig& config, int cmd,
                           int report) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto t = rdmax::CreateTransport(config, 0);
  if (!t.ok()) _exit(1);
  auto node = pager::DsmNode::Create(config, 0, *std::move(t));
  if (!node.ok() || !(*node)->Start().ok()) _exit(1);
  const uint64_t base = cluster::GuestLayout(config).RangesOfNode(0)[0].gpa;
  char c;
  for (uint64_t round = 1; ReadByte(cmd, &c, -1) && c == 'w'; ++round) {
    for (uint64_t p = 0; p < kRemoteWindow; ++p) {
      *reinterpret_cast<volatile uint64_t*>(
          (*node)->HostAddress(base + p * kPage)) = Pattern(round, p);
    }
    WriteByte(report, 'k');
  }
  (*node)->Stop();
  _exit(0);
}

absl::StatusOr<cluster::ClusterConfig> RemoteConfig(const char* transport,
                                                    const std::string& dir) {
  const std::string secret = dir + "/secret";
  absl::Status st = base::WriteFileAtomically(
      secret, absl::StrCat("pager-bench-secret-", getpid(), "-0123456789"));
  if (!st.ok()) return st;
  chmod(secret.c_str(), 0600);
  std::string nodes;
  for (int i = 0; i < 2; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    absl::StrAppend(&nodes, i ? "," : "", R"({"id": )", i,
                    R"(, "vcpus": 1, "memory_mib": 64, "address": "127.0.0.1:)",
                    ntohs(a.sin_port), R"("})");
  }
  return cluster::ParseClusterConfig(
      absl::StrCat(R"({"transport": ")", transport, R"(", "secret_file": ")",
                   secret, R"(", "nodes": [)", nodes, "]}"));
}

void BM_RemoteFault(benchmark::State& state, const char* transport) {
  if (std::string(transport) == "rdma" && !rdmax::ProbeRdmaDevice("", 1).ok()) {
    state.SkipWithError("no RDMA device with an active port");
    return;
  }
  char tmpl[] = "/tmp/ssihv-pager-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  auto config = RemoteConfig(transport, tmpl);
  if (!config.ok()) {
    state.SkipWithError(std::string(config.status().message()).c_str());
    return;
  }
  int to_home[2], from_home[2];
  if (pipe2(to_home, O_CLOEXEC) != 0 || pipe2(from_home, O_CLOEXEC) != 0) {
    state.SkipWithError("pipe2 failed");
    return;
  }
  const pid_t pid = fork();  // before any thread of this process's node
  if (pid == 0) {
    close(to_home[1]);  // or the home never sees end of file
    close(from_home[0]);
    HomeMain(*config, to_home[0], from_home[1]);
  }
  close(to_home[0]);
  close(from_home[1]);
  {
    auto t = rdmax::CreateTransport(*config, 1);
    auto node =
        t.ok() ? pager::DsmNode::Create(*config, 1, *std::move(t))
               : absl::StatusOr<std::unique_ptr<pager::DsmNode>>(t.status());
    absl::Status st = node.ok() ? (*node)->Start() : node.status();
    char c = 0;
    WriteByte(to_home[1], 'w');
    if (st.ok() && !(ReadByte(from_home[0], &c, 60000) && c == 'k')) {
      st = absl::UnavailableError("the home node did not answer");
    }
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
    } else {
      const uint64_t base =
          cluster::GuestLayout(*config).RangesOfNode(0)[0].gpa;
      std::vector<int64_t> ns;
      ns.reserve(state.max_iterations);
      uint64_t round = 1, page = 0, wrong = 0;
      for (auto _ : state) {
        if (page == kRemoteWindow) {
          state.PauseTiming();
          WriteByte(to_home[1], 'w');  // invalidates our copies
          ++round;
          page = 0;
          if (!ReadByte(from_home[0], &c, 60000)) {
            state.SkipWithError("the home node stopped answering");
            break;
          }
          state.ResumeTiming();
        }
        auto* p = reinterpret_cast<volatile uint64_t*>(
            (*node)->HostAddress(base + page * kPage));
        const int64_t t0 = NowNs();
        const uint64_t v = *p;
        ns.push_back(NowNs() - t0);
        wrong += v != Pattern(round, page);
        ++page;
      }
      if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
      SetPercentiles(state, ns);
      if (getenv("SSIHV_BENCH_STATS") != nullptr) {  // where the time goes
        fprintf(stderr, "%s\n", (*node)->StatsJson().dump().c_str());
      }
      (*node)->Stop();
    }
  }
  close(to_home[1]);  // the home exits on end of file
  close(from_home[0]);
  waitpid(pid, nullptr, 0);
  unlink((std::string(tmpl) + "/secret").c_str());
  rmdir(tmpl);
}

}  // namespace

void RegisterRemoteBenchmarks() {
  RegisterTcpFloor();  // bench/common: the same floor as bench/transport's
  benchmark::RegisterBenchmark("BM_RemoteFault/tcp", BM_RemoteFault, "tcp");
  benchmark::RegisterBenchmark("BM_RemoteFault/rdma", BM_RemoteFault, "rdma");
}

}  // namespace ssihv::bench
