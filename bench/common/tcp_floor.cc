// BM_Floor/tcp_rtt_4k: the least a 4 KiB fetch over TCP can cost here. A
// forked server process answers each 16-byte request (an offset) with the
// 4 KiB page at that offset; the client sends and receives with plain
// blocking sockets (TCP_NODELAY, MSG_WAITALL). No library code.
//
// BM_Floor/tcp_rtt_16: the same with a 16-byte answer: the least a small
// synchronous call over TCP can cost here (the floor of BM_CallSync/tcp).
//
// BM_Floor/tcp_stream: the most bytes per second TCP moves here: each
// iteration asks the server for its whole 64 MiB region, which it sends
// with one send(2) into one recv(MSG_WAITALL) of the client. The floor of
// BM_RemoteSequentialRead (bench/pager).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "bench_common.h"

namespace ssihv::bench {
namespace {

bool SendAll(int fd, const void* p, size_t n) {
  return send(fd, p, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
}
bool RecvAll(int fd, void* p, size_t n) {
  return recv(fd, p, n, MSG_WAITALL) == static_cast<ssize_t>(n);
}

// What the floor's server answers each request with.
enum class Answer { kPage, kStream, kSmall };
constexpr size_t kSmallAnswer = 16;

/// The served region, patterned, then one accepted connection: each request
/// {offset, bytes} is answered with the page at offset, with kStream the
/// whole region from offset 0, with kSmall the 16 bytes at offset.
int Serve(int listen_fd, int ready_fd, int stop_fd, Answer answer) {
  size_t size = kServedPages * kPage;
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  FillPattern(mem, size);
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) return 1;
  int fd = accept(listen_fd, nullptr, nullptr);
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  uint64_t req[2];
  while (RecvAll(fd, req, sizeof(req))) {
    const uint64_t off = answer == Answer::kStream ? 0 : req[0];
    const uint64_t len = answer == Answer::kStream  ? size
                         : answer == Answer::kSmall ? kSmallAnswer
                                                    : kPage;
    if (off + len > size || !SendAll(fd, mem + off, len)) break;
  }
  close(fd);
  char byte;
  [[maybe_unused]] ssize_t n = read(stop_fd, &byte, 1);
  return 0;
}

/// Forks the server and connects to it; -1 (with the error set) on failure.
int Connect(benchmark::State& state, ServerProcess& server, Answer answer) {
  int listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd, 1) != 0 ||
      getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    state.SkipWithError("bind/listen on 127.0.0.1 failed");
    return -1;
  }
  if (!server.Start([listen_fd, answer](int ready, int stop) {
        return Serve(listen_fd, ready, stop, answer);
      })) {
    state.SkipWithError("server process failed");
    return -1;
  }
  close(listen_fd);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    state.SkipWithError("connect failed");
    close(fd);
    return -1;
  }
  return fd;
}

void BM_FloorTcpRtt(benchmark::State& state, Answer answer) {
  ServerProcess server;
  const int fd = Connect(state, server, answer);
  if (fd < 0) return;
  const size_t bytes = answer == Answer::kSmall ? kSmallAnswer : kPage;
  std::vector<uint8_t> page(bytes);
  std::vector<int64_t> ns;
  ns.reserve(1 << 20);
  uint64_t next = 0;
  for (auto _ : state) {
    uint64_t req[2] = {(next++ % kServedPages) * kPage, 0};
    const int64_t t0 = NowNs();
    if (!SendAll(fd, req, sizeof(req)) || !RecvAll(fd, page.data(), bytes)) {
      state.SkipWithError("socket failed");
      break;
    }
    ns.push_back(NowNs() - t0);
    if (page[7] != PatternAt(req[0] + 7)) {
      state.SkipWithError("wrong bytes");
      break;
    }
  }
  close(fd);
  SetPercentiles(state, ns);
  state.SetBytesProcessed(state.iterations() * bytes);
}

void BM_FloorTcpStream(benchmark::State& state) {
  ServerProcess server;
  const int fd = Connect(state, server, Answer::kStream);
  if (fd < 0) return;
  const size_t size = kServedPages * kPage;
  std::vector<uint8_t> buf(size);  // touched: the floor pays no page faults
  const int64_t t0 = NowNs();
  for (auto _ : state) {
    const uint64_t req[2] = {0, size};
    if (!SendAll(fd, req, sizeof(req)) || !RecvAll(fd, buf.data(), size)) {
      state.SkipWithError("socket failed");
      break;
    }
  }
  const int64_t wall = NowNs() - t0;
  close(fd);
  if (buf[size - 1] != PatternAt(size - 1)) state.SkipWithError("wrong bytes");
  // Wall time, as BM_RemoteSequentialRead's counter of the same name.
  state.counters["bytes_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * size) * 1e9 /
                         static_cast<double>(wall));
}

}  // namespace

void RegisterTcpStreamFloor() {
  benchmark::RegisterBenchmark("BM_Floor/tcp_stream", BM_FloorTcpStream)
      ->UseRealTime();
}

void RegisterTcpFloor() {
  benchmark::RegisterBenchmark("BM_Floor/tcp_rtt_4k", BM_FloorTcpRtt,
                               Answer::kPage)
      ->UseRealTime();
}

void RegisterTcpSmallFloor() {
  benchmark::RegisterBenchmark("BM_Floor/tcp_rtt_16", BM_FloorTcpRtt,
                               Answer::kSmall)
      ->UseRealTime();
}

}  // namespace ssihv::bench
