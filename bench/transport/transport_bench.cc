// librdmax benchmarks (issue 5), each against its floor in the same binary
// and run:
//   BM_Fetch4K/tcp       4 KiB Transport::Fetch from another process (TCP,
//                        default options: over a fetch lane)
//   BM_Fetch4K/tcp_nolanes     the same with fetch_lanes = 0 (every
//                        fetch on the main connection: the old default)
//   BM_Fetch4K/tcp_coalescing  no lanes, tcp_rearm_delay = 1 ms
//   BM_Floor/tcp_rtt_4k  raw blocking-socket 4 KiB request/response
//   BM_CallSync/tcp      Transport::CallSync with a 16-byte request and a
//                        16-byte answer, as a vCPU's forwarded port or MMIO
//                        access to node 0 (NodeLink); counter csw_per_call:
//                        the caller process's context switches per call
//   BM_Floor/tcp_rtt_16  raw blocking-socket 16-byte request/response
//   BM_Fetch4K/rdma      4 KiB Transport::Fetch over RDMA (busy-poll mode,
//                        over a fetch lane)
//   BM_Fetch4K/rdma_event   the same in the default event mode
//   BM_Fetch4K/rdma_event_nolanes  event mode with fetch_lanes = 0 (the READ
//                        on the main QP, completed via the data thread)
//   BM_Floor/ib_read_4k  raw verbs RDMA READ, busy-polled (ib_floor.cc)
//   BM_Floor/ib_read_4k_event  the same READ, sleeping on a completion channel
// with counters p50_us and p99_us. docs/PERFORMANCE.md ("Transport") has the
// command and the ratios. RDMA entries skip with the reason where no verbs
// device exists.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench_common.h"
#include "ssihv/base/log.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/cluster/config.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::bench {

void RegisterIbFloor();

namespace {

using rdmax::BackendKind;
using rdmax::Transport;
using rdmax::TransportOptions;

constexpr char kSecret[] = "transport-benchmark-cluster-secret";
// BM_CallSync's request: 8 bytes of offset into the served region and 8
// of padding, answered with the region's 16 bytes there.
constexpr rdmax::MessageType kSmallCall = 7;
constexpr size_t kSmallBytes = 16;

// A port the kernel just handed out on 127.0.0.1 (released for the node).
uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

cluster::ClusterConfig TwoNodes(BackendKind kind) {
  std::string json = absl::StrCat(
      "{\"transport\": \"", kind == BackendKind::kRdma ? "rdma" : "tcp",
      "\", \"nodes\": [{\"id\": 0, \"vcpus\": 1, \"memory_mib\": 2, "
      "\"address\": \"127.0.0.1:",
      FreePort(),
      "\"}, {\"id\": 1, \"vcpus\": 1, \"memory_mib\": 2, \"address\": "
      "\"127.0.0.1:",
      FreePort(), "\"}]}");
  return *cluster::ParseClusterConfig(json);
}

// Variants of the fetching node's options (the serving node uses defaults).
enum class Variant {
  kDefault,
  kBusyPoll,    // RDMA: busy_poll
  kNoLanes,     // fetch_lanes = 0
  kCoalescing,  // TCP: fetch_lanes = 0, tcp_rearm_delay = 1 ms
};

absl::StatusOr<std::unique_ptr<Transport>> Make(
    const cluster::ClusterConfig& config, rdmax::NodeId id, BackendKind kind,
    Variant variant) {
  TransportOptions o;
  o.secret = kSecret;
  o.busy_poll = variant == Variant::kBusyPoll;
  if (variant == Variant::kNoLanes || variant == Variant::kCoalescing) {
    o.fetch_lanes = 0;
  }
  if (variant == Variant::kCoalescing) {
    o.tcp_rearm_delay = absl::Milliseconds(1);
  }
  return kind == BackendKind::kRdma
             ? rdmax::CreateRdmaTransport(config, id, std::move(o))
             : rdmax::CreateTcpTransport(config, id, std::move(o));
}

// Node 1 in a child process: exports kServedPages of patterned memory.
int ServeNode(const cluster::ClusterConfig& config, BackendKind kind,
              int ready_fd, int stop_fd) {
  auto mem = base::MappedRegion::Anonymous(kServedPages * kPage);
  if (!mem.ok()) return 1;
  FillPattern(mem->data(), mem->size());
  auto t = Make(config, 1, kind, Variant::kDefault);
  if (!t.ok()) return 2;
  if (!(*t)->RegisterRegion(1, mem->data(), mem->size()).ok()) return 3;
  Transport* served = t->get();
  const uint8_t* bytes = mem->data();
  (*t)->SetMessageHandler([served, bytes](const rdmax::Message& m) {
    uint64_t offset = 0;
    if (m.type != kSmallCall || m.payload.size() != kSmallBytes) return;
    std::memcpy(&offset, m.payload.data(), sizeof(offset));
    offset %= kServedPages * kPage - kSmallBytes;
    (void)served->Reply(rdmax::ReplyToken::For(m), kSmallCall,
                        absl::MakeConstSpan(bytes + offset, kSmallBytes));
  });
  if (!(*t)->Start().ok()) return 4;
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) return 5;
  char byte;
  [[maybe_unused]] ssize_t n = read(stop_fd, &byte, 1);
  (*t)->Shutdown();
  return 0;
}

// Forks node 1 (ServeNode) into `server` and starts node 0 (`variant`)
// connected to it; `before_start` runs on node 0's transport before its
// Start. nullptr, with the reason set on `state`, when any step fails.
std::unique_ptr<Transport> ConnectToServer(
    benchmark::State& state, ServerProcess& server, BackendKind kind,
    Variant variant,
    const std::function<absl::Status(Transport&)>& before_start = nullptr) {
  const cluster::ClusterConfig config = TwoNodes(kind);
  if (!server.Start([&](int ready, int stop) {
        return ServeNode(config, kind, ready, stop);
      })) {
    state.SkipWithError("server process failed to start");
    return nullptr;
  }
  auto t = Make(config, 0, kind, variant);
  absl::Status st = t.status();
  if (st.ok() && before_start) st = before_start(**t);
  if (st.ok()) st = (*t)->Start();
  if (st.ok()) st = (*t)->WaitForPeer(1, absl::Now() + absl::Seconds(30));
  if (!st.ok()) {
    state.SkipWithError(std::string(st.message()).c_str());
    return nullptr;
  }
  return *std::move(t);
}

// Untimed fetches until the fetching node has a fetch lane up (they are
// set up on demand), so that the timed loop measures the steady state.
void WarmUp(Transport& t, absl::Span<uint8_t> page) {
  for (absl::Time end = absl::Now() + absl::Seconds(5); absl::Now() < end;) {
    if (!t.Fetch(1, 1, 0, page).ok() || t.stats().lanes_open > 0) return;
  }
}

void BM_Fetch4K(benchmark::State& state, BackendKind kind, Variant variant) {
  base::SetMinLogLevel(base::LogLevel::kWarning);
  if (kind == BackendKind::kRdma) {
    absl::Status probe = rdmax::ProbeRdmaDevice("", 1);
    if (!probe.ok()) {
      state.SkipWithError(std::string(probe.message()).c_str());
      return;
    }
  }
  ServerProcess server;
  // The destination is registered (local only): on RDMA the READ lands in
  // it directly, as it would in a pager's staging buffer.
  auto dst = base::MappedRegion::Anonymous(kPage);
  std::unique_ptr<Transport> t =
      ConnectToServer(state, server, kind, variant, [&](Transport& client) {
        return client.RegisterRegion(100, dst->data(), kPage,
                                     rdmax::RegionAccess::kLocalOnly);
      });
  if (t == nullptr) return;
  Transport& transport = *t;
  absl::Span<uint8_t> page(dst->data(), kPage);
  if (variant == Variant::kDefault || variant == Variant::kBusyPoll) {
    WarmUp(transport, page);
  }
  std::vector<int64_t> ns;
  ns.reserve(1 << 20);
  uint64_t next = 0;
  for (auto _ : state) {
    uint64_t offset = (next++ % kServedPages) * kPage;
    const int64_t t0 = NowNs();
    absl::Status fetched = transport.Fetch(1, 1, offset, page);
    ns.push_back(NowNs() - t0);
    if (!fetched.ok()) {
      state.SkipWithError(std::string(fetched.message()).c_str());
      break;
    }
    if (page[4095] != PatternAt(offset + 4095)) {
      state.SkipWithError("wrong bytes");
      break;
    }
  }
  SetPercentiles(state, ns);
  state.SetBytesProcessed(state.iterations() * kPage);
  transport.Shutdown();
}

// Voluntary and involuntary context switches of this process so far.
int64_t ContextSwitches() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

void BM_CallSync(benchmark::State& state) {
  base::SetMinLogLevel(base::LogLevel::kWarning);
  ServerProcess server;
  std::unique_ptr<Transport> t =
      ConnectToServer(state, server, BackendKind::kTcp, Variant::kDefault);
  if (t == nullptr) return;
  Transport& transport = *t;
  std::vector<int64_t> ns;
  ns.reserve(1 << 20);
  uint8_t request[kSmallBytes] = {};
  uint8_t answer[kSmallBytes];
  uint64_t next = 0;
  const int64_t switches = ContextSwitches();
  for (auto _ : state) {
    const uint64_t offset = (next++ % kServedPages) * kPage;
    std::memcpy(request, &offset, sizeof(offset));
    const int64_t t0 = NowNs();
    absl::StatusOr<size_t> n =
        transport.CallSync(1, kSmallCall, request, absl::MakeSpan(answer));
    ns.push_back(NowNs() - t0);
    if (!n.ok() || *n != kSmallBytes) {
      state.SkipWithError(n.ok() ? "short answer"
                                 : std::string(n.status().message()).c_str());
      break;
    }
    if (answer[7] != PatternAt(offset + 7)) {
      state.SkipWithError("wrong bytes");
      break;
    }
  }
  state.counters["csw_per_call"] = benchmark::Counter(
      static_cast<double>(ContextSwitches() - switches) /
      static_cast<double>(std::max<int64_t>(1, state.iterations())));
  SetPercentiles(state, ns);
  transport.Shutdown();
}

}  // namespace
}  // namespace ssihv::bench

int main(int argc, char** argv) {
  using ssihv::bench::BM_Fetch4K;
  using ssihv::rdmax::BackendKind;
  // Floors first, then the library, alternating per backend so that drift
  // in the machine's speed shows up in both.
  ssihv::bench::RegisterTcpFloor();
  using ssihv::bench::Variant;
  benchmark::RegisterBenchmark("BM_Fetch4K/tcp", BM_Fetch4K, BackendKind::kTcp,
                               Variant::kDefault)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_Fetch4K/tcp_nolanes", BM_Fetch4K,
                               BackendKind::kTcp, Variant::kNoLanes)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_Fetch4K/tcp_coalescing", BM_Fetch4K,
                               BackendKind::kTcp, Variant::kCoalescing)
      ->UseRealTime();
  ssihv::bench::RegisterTcpSmallFloor();
  benchmark::RegisterBenchmark("BM_CallSync/tcp", ssihv::bench::BM_CallSync)
      ->UseRealTime();
  ssihv::bench::RegisterIbFloor();
  benchmark::RegisterBenchmark("BM_Fetch4K/rdma", BM_Fetch4K,
                               BackendKind::kRdma, Variant::kBusyPoll)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_Fetch4K/rdma_event", BM_Fetch4K,
                               BackendKind::kRdma, Variant::kDefault)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_Fetch4K/rdma_event_nolanes", BM_Fetch4K,
                               BackendKind::kRdma, Variant::kNoLanes)
      ->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
