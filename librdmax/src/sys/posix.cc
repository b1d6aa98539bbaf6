#include "sys/posix.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::rdmax::sys {

using base::LastErrnoStatus;
using base::UniqueFd;

namespace {
IoResult Result(ssize_t n) {
  IoResult r;
  r.bytes = n;
  if (n < 0) r.err = errno;
  return r;
}
}  // namespace

IoResult SendMsgNoWait(int fd, const struct iovec* iov, int iovcnt) {
  struct msghdr m {};
  m.msg_iov = const_cast<struct iovec*>(iov);
  m.msg_iovlen = static_cast<size_t>(iovcnt);
  ssize_t n;
  do {
    n = ::sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return Result(n);
}

IoResult RecvMsgNoWait(int fd, struct iovec* iov, int iovcnt) {
  struct msghdr m {};
  m.msg_iov = iov;
  m.msg_iovlen = static_cast<size_t>(iovcnt);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &m, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return Result(n);
}

IoResult RecvMsgBlocking(int fd, struct iovec* iov, int iovcnt) {
  struct msghdr m {};
  m.msg_iov = iov;
  m.msg_iovlen = static_cast<size_t>(iovcnt);
  // EINTR is returned to the caller, who re-checks its deadline.
  return Result(::recvmsg(fd, &m, 0));
}

IoResult RecvWaitAll(int fd, void* buf, size_t n) {
  ssize_t r;
  do {
    r = ::recv(fd, buf, n, MSG_WAITALL);
  } while (r < 0 && errno == EINTR);
  return Result(r);
}

IoResult SendMsgBlocking(int fd, const struct iovec* iov, int iovcnt) {
  struct msghdr m {};
  m.msg_iov = const_cast<struct iovec*>(iov);
  m.msg_iovlen = static_cast<size_t>(iovcnt);
  ssize_t n;
  do {
    n = ::sendmsg(fd, &m, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return Result(n);
}

absl::Status SetTcpNoDelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    return LastErrnoStatus("setsockopt TCP_NODELAY");
  }
  return absl::OkStatus();
}

absl::Status SetKeepAlive(int fd, absl::Duration timeout) {
  int one = 1;
  int secs =
      static_cast<int>(std::max<int64_t>(1, absl::ToInt64Seconds(timeout) / 3));
  int count = 3;
  unsigned user_timeout_ms = static_cast<unsigned>(
      std::min<int64_t>(absl::ToInt64Milliseconds(timeout), UINT_MAX));
  if (::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
                   sizeof(user_timeout_ms)) != 0) {
    return LastErrnoStatus("setsockopt keepalive");
  }
  return absl::OkStatus();
}

absl::Status SetReceiveTimeout(int fd, absl::Duration timeout) {
  struct timeval tv = absl::ToTimeval(timeout);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    return LastErrnoStatus("setsockopt SO_RCVTIMEO");
  }
  return absl::OkStatus();
}

absl::Status SetSendTimeout(int fd, absl::Duration timeout) {
  struct timeval tv = absl::ToTimeval(timeout);
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
    return LastErrnoStatus("setsockopt SO_SNDTIMEO");
  }
  return absl::OkStatus();
}

absl::Status SetBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return LastErrnoStatus("fcntl F_SETFL ~O_NONBLOCK");
  }
  return absl::OkStatus();
}

void ShutdownBoth(int fd) { ::shutdown(fd, SHUT_RDWR); }

absl::StatusOr<UniqueFd> EpollCreate() {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) return LastErrnoStatus("epoll_create1");
  return fd;
}

absl::Status EpollAdd(int epfd, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.u64 = data;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return LastErrnoStatus(absl::StrCat("epoll_ctl ADD fd=", fd));
  }
  return absl::OkStatus();
}

absl::Status EpollModify(int epfd, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.u64 = data;
  if (::epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return LastErrnoStatus(absl::StrCat("epoll_ctl MOD fd=", fd));
  }
  return absl::OkStatus();
}

void EpollRemove(int epfd, int fd) {
  ::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
}

absl::StatusOr<int> EpollWait(int epfd, struct epoll_event* events, int max,
                              int timeout_ms) {
  int n = ::epoll_wait(epfd, events, max, timeout_ms);
  if (n < 0 && errno == EINTR) return 0;
  if (n < 0) return LastErrnoStatus("epoll_wait");
  return n;
}

absl::StatusOr<bool> WaitReadable(int fd, absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    // Rounded up: a wait never ends before the deadline.
    const int64_t ms =
        absl::ToInt64Milliseconds(std::min(left, absl::Seconds(60)) +
                                  absl::Milliseconds(1) - absl::Nanoseconds(1));
    struct pollfd p = {fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(ms));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return LastErrnoStatus("poll");
  }
}

absl::StatusOr<UniqueFd> EventFdCreate() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return LastErrnoStatus("eventfd");
  return fd;
}

void EventFdSignal(int fd) {
  uint64_t one = 1;
  // EAGAIN (counter saturated) still leaves the fd readable: fine.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof(one));
}

void EventFdDrain(int fd) {
  uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(fd, &value, sizeof(value));
}

absl::StatusOr<UniqueFd> TimerFdCreate() {
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!fd) return LastErrnoStatus("timerfd_create");
  return fd;
}

void TimerFdArm(int fd, absl::Duration after) {
  struct itimerspec spec {};
  spec.it_value = absl::ToTimespec(std::max(after, absl::Nanoseconds(1)));
  ::timerfd_settime(fd, 0, &spec, nullptr);
}

void TimerFdDrain(int fd) {
  uint64_t expirations;
  [[maybe_unused]] ssize_t n = ::read(fd, &expirations, sizeof(expirations));
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               absl::Duration timeout) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout != absl::InfiniteDuration()) {
    ts = absl::ToTimespec(std::max(timeout, absl::ZeroDuration()));
    tsp = &ts;
  }
  // FUTEX_WAIT returns at once (EAGAIN) if the word already changed.
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE,
            expected, tsp, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE,
            INT_MAX, nullptr, nullptr, 0);
}

}  // namespace ssihv::rdmax::sys
