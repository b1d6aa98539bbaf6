// librdmax benchmarks (issue 5), each against its floor in the same binary
// and run:
//   BM_Call4K/tcp        a CallSync to another process whose reply carries
//                        4 KiB of its memory (how the DSM reads a remote
//                        page: docs/PAGER.md, "Remote reads"), over TCP
//   BM_Call4K/tcp_coalescing  the same with tcp_rearm_delay = 1 ms
//   BM_Floor/tcp_rtt_4k  raw blocking-socket 4 KiB request/response
//   BM_Call4K/rdma       the same call over RDMA (SEND/RECV)
//   BM_Floor/ib_read_4k  raw verbs RDMA READ, busy-polled (ib_floor.cc)
//   BM_Floor/ib_read_4k_event  the same READ, sleeping on a completion channel
// with counters p50_us and p99_us. docs/PERFORMANCE.md ("Transport") has the
// command and the ratios. RDMA entries skip with the reason where no verbs
// device exists. (The one-sided BM_Fetch4K/* benchmarks went with the
// transport's fetch API.)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

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
constexpr rdmax::MessageType kReadPage = 1;

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

// Variants of the calling node's options (the serving node uses defaults).
enum class Variant {
  kDefault,
  kCoalescing,  // TCP: tcp_rearm_delay = 1 ms
};

absl::StatusOr<std::unique_ptr<Transport>> Make(
    const cluster::ClusterConfig& config, rdmax::NodeId id, BackendKind kind,
    Variant variant) {
  TransportOptions o;
  o.secret = kSecret;
  if (variant == Variant::kCoalescing) {
    o.tcp_rearm_delay = absl::Milliseconds(1);
  }
  return kind == BackendKind::kRdma
             ? rdmax::CreateRdmaTransport(config, id, std::move(o))
             : rdmax::CreateTcpTransport(config, id, std::move(o));
}

// Node 1 in a child process: answers each kReadPage request (a u64 offset)
// with that page of kServedPages of patterned memory.
int ServeNode(const cluster::ClusterConfig& config, BackendKind kind,
              int ready_fd, int stop_fd) {
  auto mem = base::MappedRegion::Anonymous(kServedPages * kPage);
  if (!mem.ok()) return 1;
  for (uint64_t i = 0; i < mem->size(); ++i) mem->data()[i] = PatternAt(i);
  auto t = Make(config, 1, kind, Variant::kDefault);
  if (!t.ok()) return 2;
  Transport* transport = t->get();
  transport->SetMessageHandler([&](const rdmax::Message& m) {
    uint64_t offset = 0;
    if (m.request_id == 0 || m.payload.size() != sizeof(offset)) return;
    std::memcpy(&offset, m.payload.data(), sizeof(offset));
    offset %= kServedPages * kPage;
    transport
        ->Reply(
            rdmax::ReplyToken::For(m), kReadPage,
            absl::MakeConstSpan(mem->data() + offset / kPage * kPage, kPage))
        .IgnoreError();
  });
  if (!transport->Start().ok()) return 3;
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) return 4;
  char byte;
  [[maybe_unused]] ssize_t n = read(stop_fd, &byte, 1);
  transport->Shutdown();
  return 0;
}

void BM_Call4K(benchmark::State& state, BackendKind kind, Variant variant) {
  base::SetMinLogLevel(base::LogLevel::kWarning);
  if (kind == BackendKind::kRdma) {
    absl::Status probe = rdmax::ProbeRdmaDevice("", 1);
    if (!probe.ok()) {
      state.SkipWithError(std::string(probe.message()).c_str());
      return;
    }
  }
  cluster::ClusterConfig config = TwoNodes(kind);
  ServerProcess server;
  if (!server.Start([&](int ready, int stop) {
        return ServeNode(config, kind, ready, stop);
      })) {
    state.SkipWithError("server process failed to start");
    return;
  }
  auto t = Make(config, 0, kind, variant);
  absl::Status st = t.status();
  if (st.ok()) st = (*t)->Start();
  if (st.ok()) st = (*t)->WaitForPeer(1, absl::Now() + absl::Seconds(30));
  if (!st.ok()) {
    state.SkipWithError(std::string(st.message()).c_str());
    return;
  }
  Transport& transport = **t;
  std::vector<uint8_t> page(kPage);
  std::vector<int64_t> ns;
  ns.reserve(1 << 20);
  uint64_t next = 0;
  for (auto _ : state) {
    uint64_t offset = (next++ % kServedPages) * kPage;
    uint8_t request[sizeof(offset)];
    std::memcpy(request, &offset, sizeof(offset));
    const int64_t t0 = NowNs();
    absl::StatusOr<size_t> n =
        transport.CallSync(1, kReadPage, request, absl::MakeSpan(page));
    ns.push_back(NowNs() - t0);
    if (!n.ok()) {
      state.SkipWithError(std::string(n.status().message()).c_str());
      break;
    }
    if (*n != kPage || page[4095] != PatternAt(offset + 4095)) {
      state.SkipWithError("wrong bytes");
      break;
    }
  }
  SetPercentiles(state, ns);
  state.SetBytesProcessed(state.iterations() * kPage);
  transport.Shutdown();
}

}  // namespace
}  // namespace ssihv::bench

int main(int argc, char** argv) {
  using ssihv::bench::BM_Call4K;
  using ssihv::bench::Variant;
  using ssihv::rdmax::BackendKind;
  // Floors first, then the library, alternating per backend so that drift
  // in the machine's speed shows up in both.
  ssihv::bench::RegisterTcpFloor();
  benchmark::RegisterBenchmark("BM_Call4K/tcp", BM_Call4K, BackendKind::kTcp,
                               Variant::kDefault)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_Call4K/tcp_coalescing", BM_Call4K,
                               BackendKind::kTcp, Variant::kCoalescing)
      ->UseRealTime();
  ssihv::bench::RegisterIbFloor();
  benchmark::RegisterBenchmark("BM_Call4K/rdma", BM_Call4K, BackendKind::kRdma,
                               Variant::kDefault)
      ->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
