// BM_Floor/tcp_rtt_4k: the least a 4 KiB fetch over TCP can cost here. A
// forked server process answers each 16-byte request (an offset) with the
// 4 KiB page at that offset; the client sends and receives with plain
// blocking sockets (TCP_NODELAY, MSG_WAITALL). No library code.
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

int Serve(int listen_fd, int ready_fd, int stop_fd) {
  size_t size = kServedPages * kPage;
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  for (uint64_t i = 0; i < size; ++i) mem[i] = PatternAt(i);
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) return 1;
  int fd = accept(listen_fd, nullptr, nullptr);
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  uint64_t req[2];
  while (RecvAll(fd, req, sizeof(req))) {
    if (req[0] + kPage > size || !SendAll(fd, mem + req[0], kPage)) break;
  }
  close(fd);
  char byte;
  [[maybe_unused]] ssize_t n = read(stop_fd, &byte, 1);
  return 0;
}

void BM_FloorTcpRtt4k(benchmark::State& state) {
  int listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd, 1) != 0 ||
      getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    state.SkipWithError("bind/listen on 127.0.0.1 failed");
    return;
  }
  ServerProcess server;
  if (!server.Start([listen_fd](int ready, int stop) {
        return Serve(listen_fd, ready, stop);
      })) {
    state.SkipWithError("server process failed");
    return;
  }
  close(listen_fd);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    state.SkipWithError("connect failed");
    return;
  }
  std::vector<uint8_t> page(kPage);
  std::vector<int64_t> ns;
  ns.reserve(1 << 20);
  uint64_t next = 0;
  for (auto _ : state) {
    uint64_t req[2] = {(next++ % kServedPages) * kPage, 0};
    const int64_t t0 = NowNs();
    if (!SendAll(fd, req, sizeof(req)) || !RecvAll(fd, page.data(), kPage)) {
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
  state.SetBytesProcessed(state.iterations() * kPage);
}

}  // namespace

void RegisterTcpFloor() {
  benchmark::RegisterBenchmark("BM_Floor/tcp_rtt_4k", BM_FloorTcpRtt4k)
      ->UseRealTime();
}

}  // namespace ssihv::bench
