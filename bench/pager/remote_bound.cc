// BM_Bound/tcp_*: what a remote read fault over TCP costs with NO library
// code, so that BM_RemoteFault/tcp can be read against the best any design
// could do on this machine (docs/PERFORMANCE.md, "Pager"). Raw syscalls, a
// forked "home" process, a 2048-page window as in BM_RemoteFault:
//
//   requester: the benchmark thread reads a missing page; a handler thread
//   reads the fault off the uffd and sends a 16-byte request;
//   home: receives it, optionally write-protects its page (the protocol's
//   downgrade of a Modified page: UFFDIO_WRITEPROTECT), and answers with
//   one sendmsg of [32-byte header | page];
//   requester: UFFDIO_COPY (MODE_WP: a Shared copy) from the receive buffer.
//
//   lane      the handler blocks in recv for its own answer and copies it;
//             the home blocks in recv (a per-thread lane, both sides)
//   lane_wp   the same, plus the home's write-protect
//   epoll_wp  today's DSM shape: the home and a requester data thread wait
//             in epoll_wait, the data thread copies (the handler only sends)
//
// No protocol, no Done message, no locks, no statistics: a lower bound.
//
// BM_Bound/rdma_lane(_wp): the same steps over RDMA verbs (raw, one RC QP
// pair), each side asleep on its CQ's completion channel as the product's
// lanes wait in event mode: the handler posts a RECV for the answer and
// SENDs the request; the home, woken by the request's RECV, optionally
// write-protects the page, copies [header | page] into its registered
// buffer, posts its next RECV and SENDs the answer; the handler, woken by
// the answer's RECV, copies the page in with UFFDIO_COPY (MODE_WP). The
// two-sided bound of BM_RemoteFault/rdma, where BM_Floor/ib_read_4k is a
// one-sided READ no thread of the home takes part in.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "ib_side.h"

namespace ssihv::bench {
namespace {

constexpr uint64_t kBoundWindow = 2048;
constexpr size_t kHeader = 32;

struct Mode {
  bool write_protect;
  bool epoll;  // home in epoll_wait; a requester data thread does the copy
};

int NewUffd(uint64_t features) {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC));
  if (fd < 0) return -1;
  uffdio_api api = {UFFD_API, features, 0};
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Register(int uffd, void* p, uint64_t len, uint64_t mode) {
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uint64_t>(p);
  reg.range.len = len;
  reg.mode = mode;
  return ioctl(uffd, UFFDIO_REGISTER, &reg) == 0;
}

void WriteProtect(int uffd, void* p, uint64_t len, bool on) {
  uffdio_writeprotect wp{};
  wp.range.start = reinterpret_cast<uint64_t>(p);
  wp.range.len = len;
  wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
}

void CopyReadOnly(int uffd, uint64_t dst, const uint8_t* src) {
  uffdio_copy copy{};
  copy.dst = dst;
  copy.src = reinterpret_cast<uint64_t>(src);
  copy.len = kPage;
  copy.mode = UFFDIO_COPY_MODE_WP;
  ioctl(uffd, UFFDIO_COPY, &copy);
}

// Resolves the fault at `at` with zeros (the stop page, a failed answer).
void ZeroFill(int uffd, uint64_t at) {
  uffdio_zeropage z{};
  z.range.start = at;
  z.range.len = kPage;
  ioctl(uffd, UFFDIO_ZEROPAGE, &z);
}

// The timed part of every bound: one read of a word per page of the window
// (bench_util.h's WalkWindow). `check` sees each value read and returns an
// error to stop on, or nullptr.
template <typename Check>
std::vector<int64_t> WalkBoundWindow(benchmark::State& state, uint8_t* mem,
                                     Check check) {
  return WalkWindow(
      state, mem, kBoundWindow,
      [](uint8_t* page) { return *reinterpret_cast<volatile uint64_t*>(page); },
      check);
}

bool RecvAll(int fd, void* p, size_t n) {
  return recv(fd, p, n, MSG_WAITALL) == static_cast<ssize_t>(n);
}

void WaitIn(int epfd) {
  epoll_event ev;
  while (epoll_wait(epfd, &ev, 1, -1) != 1) {
  }
}

int WatchIn(int fd) {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  return epfd;
}

/// The home: a populated window (written once), served page by page.
[[noreturn]] void BoundHome(int listen_fd, Mode mode) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const int fd = accept(listen_fd, nullptr, nullptr);
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  const uint64_t len = kBoundWindow * kPage;
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, len, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  madvise(mem, len, MADV_NOHUGEPAGE);
  memset(mem, 0x5a, len);
  const int uffd = NewUffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
  if (uffd < 0 || !Register(uffd, mem, len, UFFDIO_REGISTER_MODE_WP)) _exit(1);
  const int epfd = WatchIn(fd);
  uint8_t header[kHeader] = {};
  uint64_t req[2];
  for (;;) {
    if (mode.epoll) WaitIn(epfd);
    if (!RecvAll(fd, req, sizeof(req))) _exit(0);
    const uint64_t index = req[0] % kBoundWindow;
    uint8_t* page = mem + index * kPage;
    if (mode.write_protect) {
      // A new round: the home "wrote" the window again (writable).
      if (index == 0) WriteProtect(uffd, mem, len, false);
      WriteProtect(uffd, page, kPage, true);
    }
    iovec iov[2] = {{header, kHeader}, {page, kPage}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    if (sendmsg(fd, &m, MSG_NOSIGNAL) != static_cast<ssize_t>(kHeader + kPage))
      _exit(1);
  }
}

void BM_Bound(benchmark::State& state, Mode mode) {
  int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof(addr);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd, 1) != 0 ||
      getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) {
    state.SkipWithError("bind/listen on 127.0.0.1 failed");
    return;
  }
  const pid_t pid = fork();
  if (pid == 0) BoundHome(listen_fd, mode);
  close(listen_fd);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  const uint64_t len = (kBoundWindow + 1) * kPage;  // + the stop page
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, len, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  madvise(mem, len, MADV_NOHUGEPAGE);
  const int uffd = NewUffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      uffd < 0 ||
      !Register(uffd, mem, len,
                UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP)) {
    state.SkipWithError("connect or userfaultfd set-up failed");
    close(fd);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return;
  }
  const uint64_t base = reinterpret_cast<uint64_t>(mem);
  const uint64_t stop = base + kBoundWindow * kPage;
  // The handler: every fault becomes a request (the stop page is zeroed).
  std::thread handler([&] {
    alignas(64) static uint8_t buf[kHeader + kPage];
    for (uint64_t seq = 0;; ++seq) {
      uffd_msg msg;
      if (read(uffd, &msg, sizeof(msg)) != sizeof(msg)) continue;
      if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
      const uint64_t at = msg.arg.pagefault.address & ~(kPage - 1);
      if (at == stop) {
        ZeroFill(uffd, at);
        return;
      }
      const uint64_t req[2] = {(at - base) / kPage, seq};
      send(fd, req, sizeof(req), MSG_NOSIGNAL);
      if (mode.epoll) continue;  // the data thread copies
      if (!RecvAll(fd, buf, sizeof(buf))) return;
      CopyReadOnly(uffd, at, buf + kHeader);
    }
  });
  // Today's shape: a data thread woken by epoll copies the answer. Answers
  // come in request order, one fault at a time.
  std::thread data;
  if (mode.epoll) {
    data = std::thread([&] {
      alignas(64) static uint8_t buf[kHeader + kPage];
      const int epfd = WatchIn(fd);
      for (uint64_t i = 0;; ++i) {
        WaitIn(epfd);
        if (!RecvAll(fd, buf, sizeof(buf))) break;
        CopyReadOnly(uffd, base + (i % kBoundWindow) * kPage, buf + kHeader);
      }
      close(epfd);
    });
  }
  std::vector<int64_t> ns = WalkBoundWindow(
      state, mem, [](uint64_t) -> const char* { return nullptr; });
  (void)*reinterpret_cast<volatile uint64_t*>(stop);  // handler returns
  handler.join();
  shutdown(fd, SHUT_RDWR);  // the home exits; the data thread sees EOF
  if (data.joinable()) data.join();
  close(fd);
  waitpid(pid, nullptr, 0);
  munmap(mem, len);
  close(uffd);
  SetPercentiles(state, ns);
}

// ---- RDMA ----------------------------------------------------------------

constexpr uint64_t kStopIndex = ~uint64_t{0};
constexpr size_t kRequestBytes = 16;
// A side's registered buffer: the request, then [header | page].
constexpr size_t kRdmaBuffer = 64 + kHeader + kPage;

bool PostRecv(IbSide& side, uint8_t* at, size_t len) {
  ibv_sge sge{reinterpret_cast<uint64_t>(at), static_cast<uint32_t>(len),
              side.mr->lkey};
  ibv_recv_wr wr{};
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  return ibv_post_recv(side.qp, &wr, &bad) == 0;
}

bool PostSend(IbSide& side, const uint8_t* at, size_t len) {
  ibv_sge sge{reinterpret_cast<uint64_t>(at), static_cast<uint32_t>(len),
              side.mr->lkey};
  ibv_send_wr wr{};
  wr.wr_id = 1;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  ibv_send_wr* bad = nullptr;
  return ibv_post_send(side.qp, &wr, &bad) == 0;
}

/// Waits until the SEND posted last and the RECV posted last have both
/// completed (in either order). False on an error.
bool AwaitSendAndRecv(IbSide& side) {
  bool sent = false, received = false;
  while (!sent || !received) {
    ibv_wc wc{};
    if (IbAwaitCompletion(side, true, &wc) != 1 ||
        wc.status != IBV_WC_SUCCESS) {
      return false;
    }
    (wc.wr_id == 1 ? sent : received) = true;
  }
  return true;
}

/// Connects `side` (buffer `buf`) with the other process's over `sock`.
bool Exchange(IbSide& side, uint8_t* buf, int sock) {
  const IbEndpoint local = side.Local(buf);
  IbEndpoint remote;
  return write(sock, &local, sizeof(local)) == sizeof(local) &&
         RecvAll(sock, &remote, sizeof(remote)) && side.Connect(remote);
}

/// The home over RDMA: the TCP home's window, served by SEND/RECV. It ends
/// on the handler's stop request, or when the parent closes `stop_fd` (a
/// failed run: no stop request may come).
int RdmaBoundHome(int sock, int ready_fd, int stop_fd, Mode mode) {
  std::thread([stop_fd] {
    char byte;
    [[maybe_unused]] ssize_t n = read(stop_fd, &byte, 1);
    _exit(0);
  }).detach();
  const uint64_t len = kBoundWindow * kPage;
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, len, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  madvise(mem, len, MADV_NOHUGEPAGE);
  memset(mem, 0x5a, len);
  const int uffd = NewUffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
  if (uffd < 0 || !Register(uffd, mem, len, UFFDIO_REGISTER_MODE_WP)) return 1;
  alignas(4096) static uint8_t buf[kRdmaBuffer];
  uint8_t* answer = buf + 64;
  IbSide side;
  // The first RECV before the QP connects: the first request finds it.
  if (!side.Open(buf, sizeof(buf), true) || !PostRecv(side, buf, 64)) return 1;
  char one = 1;
  if (write(ready_fd, &one, 1) != 1 || !Exchange(side, buf, sock)) return 2;
  ibv_wc wc{};
  for (bool sending = false;;) {
    // The request's RECV (and the previous answer's SEND, if unreaped).
    if (IbAwaitCompletion(side, true, &wc) != 1 || wc.status != IBV_WC_SUCCESS)
      return 3;
    if (wc.wr_id == 1) {
      sending = false;
      continue;
    }
    uint64_t req[2];
    memcpy(req, buf, sizeof(req));
    if (req[0] == kStopIndex) return 0;
    const uint64_t index = req[0] % kBoundWindow;
    uint8_t* page = mem + index * kPage;
    if (mode.write_protect) {
      if (index == 0) WriteProtect(uffd, mem, len, false);
      WriteProtect(uffd, page, kPage, true);
    }
    while (sending) {  // the answer buffer is free once its SEND completed
      if (IbAwaitCompletion(side, true, &wc) != 1 ||
          wc.status != IBV_WC_SUCCESS)
        return 3;
      if (wc.wr_id == 1) sending = false;
    }
    memcpy(answer + kHeader, page, kPage);
    if (!PostRecv(side, buf, 64) || !PostSend(side, answer, kHeader + kPage))
      return 4;
    sending = true;
  }
}

void BM_BoundRdma(benchmark::State& state, Mode mode) {
  if (!IbDevicePresent()) {
    state.SkipWithError("no RDMA device (ibv_get_device_list is empty)");
    return;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  ServerProcess home;
  if (!home.Start([&](int ready, int stop) {
        close(sv[0]);
        return RdmaBoundHome(sv[1], ready, stop, mode);
      })) {
    state.SkipWithError("home process failed (verbs or userfaultfd set-up)");
    return;
  }
  close(sv[1]);
  alignas(4096) static uint8_t buf[kRdmaBuffer];
  IbSide side;
  const uint64_t len = (kBoundWindow + 1) * kPage;  // + the stop page
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, len, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  madvise(mem, len, MADV_NOHUGEPAGE);
  const int uffd = NewUffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
  if (!side.Open(buf, sizeof(buf), true) || !Exchange(side, buf, sv[0]) ||
      uffd < 0 ||
      !Register(uffd, mem, len,
                UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP)) {
    state.SkipWithError(side.error.empty() ? "QP or userfaultfd set-up failed"
                                           : side.error.c_str());
    close(sv[0]);
    return;
  }
  const uint64_t base = reinterpret_cast<uint64_t>(mem);
  const uint64_t stop = base + kBoundWindow * kPage;
  uint8_t* answer = buf + 64;
  std::atomic<bool> failed{false};
  std::thread handler([&] {
    for (uint64_t seq = 0;; ++seq) {
      uffd_msg msg;
      if (read(uffd, &msg, sizeof(msg)) != sizeof(msg)) continue;
      if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
      const uint64_t at = msg.arg.pagefault.address & ~(kPage - 1);
      const uint64_t req[2] = {at == stop ? kStopIndex : (at - base) / kPage,
                               seq};
      memcpy(buf, req, sizeof(req));
      if (at == stop) {
        if (!PostSend(side, buf, kRequestBytes)) failed = true;
        ZeroFill(uffd, at);
        return;
      }
      if (!PostRecv(side, answer, kHeader + kPage) ||
          !PostSend(side, buf, kRequestBytes) || !AwaitSendAndRecv(side)) {
        failed = true;  // the page zeroed: the loop ends on the flag
        ZeroFill(uffd, at);
        continue;
      }
      CopyReadOnly(uffd, at, answer + kHeader);
    }
  });
  std::vector<int64_t> ns =
      WalkBoundWindow(state, mem, [&failed](uint64_t v) -> const char* {
        if (failed) return "a SEND or RECV failed";
        return v != 0x5a5a5a5a5a5a5a5aull ? "wrong bytes" : nullptr;
      });
  (void)*reinterpret_cast<volatile uint64_t*>(stop);  // handler returns
  handler.join();
  home.Stop();
  close(sv[0]);
  munmap(mem, len);
  close(uffd);
  SetPercentiles(state, ns);
}

}  // namespace

void RegisterBoundBenchmarks() {
  benchmark::RegisterBenchmark("BM_Bound/tcp_lane", BM_Bound,
                               Mode{false, false});
  benchmark::RegisterBenchmark("BM_Bound/tcp_lane_wp", BM_Bound,
                               Mode{true, false});
  benchmark::RegisterBenchmark("BM_Bound/tcp_epoll_wp", BM_Bound,
                               Mode{true, true});
  benchmark::RegisterBenchmark("BM_Bound/rdma_lane", BM_BoundRdma,
                               Mode{false, false});
  benchmark::RegisterBenchmark("BM_Bound/rdma_lane_wp", BM_BoundRdma,
                               Mode{true, false});
}

}  // namespace ssihv::bench
