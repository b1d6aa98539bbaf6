#include "sys.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::uffd_handler::sys {

using base::LastErrnoStatus;
using base::UniqueFd;

namespace {
// asm-generic/socket.h (Linux 6.5); Debian 12's headers predate it.
constexpr int kSoPeerPidfd = 77;
constexpr int kMaxFds = 4;
}  // namespace

absl::StatusOr<UniqueFd> ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path ", path, ": longer than ",
                     sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return LastErrnoStatus("socket(AF_UNIX)");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      return absl::AlreadyExistsError(absl::StrCat(
          "bind ", path, ": the path exists (remove a stale socket first)"));
    }
    return base::ErrnoStatus(err, absl::StrCat("bind ", path));
  }
  if (::chmod(path.c_str(), 0600) < 0) {
    absl::Status st = LastErrnoStatus(absl::StrCat("chmod 0600 ", path));
    ::unlink(path.c_str());
    return st;
  }
  if (::listen(fd.get(), 64) < 0) {
    absl::Status st = LastErrnoStatus(absl::StrCat("listen ", path));
    ::unlink(path.c_str());
    return st;
  }
  return fd;
}

absl::StatusOr<UniqueFd> Accept(int listen_fd) {
  UniqueFd fd(
      ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (fd) return fd;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED ||
      errno == EINTR) {
    return UniqueFd();
  }
  return LastErrnoStatus("accept4");
}

absl::StatusOr<Received> Receive(int fd, char* buf, size_t len) {
  iovec iov{buf, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  Received r;
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.would_block = true;
      return r;
    }
    return LastErrnoStatus("recvmsg");
  }
  r.bytes = static_cast<size_t>(n);
  r.truncated_fds = (msg.msg_flags & MSG_CTRUNC) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      r.fds.emplace_back(received);
    }
  }
  return r;
}

absl::StatusOr<Peer> PeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    return LastErrnoStatus("getsockopt(SO_PEERCRED)");
  }
  return Peer{cred.pid, cred.uid, cred.gid};
}

absl::StatusOr<UniqueFd> PeerPidfd(int fd, pid_t pid) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (::getsockopt(fd, SOL_SOCKET, kSoPeerPidfd, &pidfd, &len) == 0 &&
      pidfd >= 0) {
    return UniqueFd(pidfd);
  }
  if (pid <= 0) {
    return absl::NotFoundError(
        "the peer's pid is not visible in this PID namespace");
  }
  UniqueFd opened(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!opened) return LastErrnoStatus(absl::StrCat("pidfd_open(", pid, ")"));
  return opened;
}

absl::Status KillProcess(int pidfd, pid_t pid) {
  if (pidfd >= 0) {
    if (::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) < 0) {
      return LastErrnoStatus("pidfd_send_signal(SIGKILL)");
    }
    return absl::OkStatus();
  }
  if (pid <= 0) {
    return absl::FailedPreconditionError(
        "its process is not visible in this PID namespace");
  }
  if (::kill(pid, SIGKILL) < 0) {
    return LastErrnoStatus(absl::StrCat("kill(", pid, ", SIGKILL)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> BlockedSignalFd(const std::vector<int>& signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    return base::ErrnoStatus(err, "pthread_sigmask");
  }
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) return LastErrnoStatus("signalfd");
  return fd;
}

int ReadSignal(int signal_fd) {
  signalfd_siginfo info{};
  if (::read(signal_fd, &info, sizeof(info)) != sizeof(info)) return 0;
  return static_cast<int>(info.ssi_signo);
}

absl::StatusOr<UniqueFd> EpollCreate() {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) return LastErrnoStatus("epoll_create1");
  return fd;
}

absl::Status EpollAdd(int epfd, int fd, uint32_t events, uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    return LastErrnoStatus(absl::StrCat("epoll_ctl(ADD, fd ", fd, ")"));
  }
  return absl::OkStatus();
}

void EpollDel(int epfd, int fd) {
  ::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
}

int EpollWait(int epfd, epoll_event* events, int max, int timeout_ms) {
  for (;;) {
    const int n = ::epoll_wait(epfd, events, max, timeout_ms);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

absl::Status Unlink(const std::string& path) {
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    return LastErrnoStatus(absl::StrCat("unlink ", path));
  }
  return absl::OkStatus();
}

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace ssihv::uffd_handler::sys
