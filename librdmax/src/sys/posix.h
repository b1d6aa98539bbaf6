// Raw POSIX/Linux calls of librdmax, one small function per call. The rest
// of the library calls these, never the system directly, so every errno is
// turned into a Status that names the call in one place.
#ifndef SSIHV_RDMAX_SYS_POSIX_H_
#define SSIHV_RDMAX_SYS_POSIX_H_

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::rdmax::sys {

// ---- sockets ----
/// The outcome of one non-blocking or timed socket transfer.
struct IoResult {
  ssize_t bytes = 0;  // > 0 transferred; 0 = peer closed (receive only)
  int err = 0;        // errno when bytes < 0 (EAGAIN: nothing now)
};
/// sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL).
IoResult SendMsgNoWait(int fd, const struct iovec* iov, int iovcnt);
/// recvmsg(MSG_DONTWAIT).
IoResult RecvMsgNoWait(int fd, struct iovec* iov, int iovcnt);
/// recvmsg() blocking up to the socket's SO_RCVTIMEO.
IoResult RecvMsgBlocking(int fd, struct iovec* iov, int iovcnt);
/// recv(MSG_WAITALL): blocks until `n` bytes, end of file, an error or the
/// socket's SO_RCVTIMEO (then fewer bytes, or EAGAIN). EINTR is retried.
IoResult RecvWaitAll(int fd, void* buf, size_t n);
/// sendmsg(MSG_NOSIGNAL) on a blocking socket, up to its SO_SNDTIMEO.
/// EINTR is retried.
IoResult SendMsgBlocking(int fd, const struct iovec* iov, int iovcnt);
/// setsockopt(TCP_NODELAY).
absl::Status SetTcpNoDelay(int fd);
/// setsockopt(SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT): a
/// silently dead peer is noticed within about `timeout`.
absl::Status SetKeepAlive(int fd, absl::Duration timeout);
/// setsockopt(SO_RCVTIMEO).
absl::Status SetReceiveTimeout(int fd, absl::Duration timeout);
/// setsockopt(SO_SNDTIMEO).
absl::Status SetSendTimeout(int fd, absl::Duration timeout);
/// fcntl(F_SETFL) clearing O_NONBLOCK: the data plane chooses per call.
absl::Status SetBlocking(int fd);
/// shutdown(SHUT_RDWR): wakes every thread blocked on the socket.
void ShutdownBoth(int fd);

// ---- epoll / eventfd ----
absl::StatusOr<base::UniqueFd> EpollCreate();
absl::Status EpollAdd(int epfd, int fd, uint32_t events, uint64_t data);
absl::Status EpollModify(int epfd, int fd, uint32_t events, uint64_t data);
void EpollRemove(int epfd, int fd);
/// epoll_wait(); EINTR is reported as 0 events.
absl::StatusOr<int> EpollWait(int epfd, struct epoll_event* events, int max,
                              int timeout_ms);
/// poll() for POLLIN on one fd until `deadline`: true when readable (or
/// in error: the caller's read says which), false at the deadline. EINTR
/// polls again.
absl::StatusOr<bool> WaitReadable(int fd, absl::Time deadline);
absl::StatusOr<base::UniqueFd> EventFdCreate();
/// Adds 1 to the eventfd counter (wakes a waiter).
void EventFdSignal(int fd);
/// Reads and resets the counter (non-blocking).
void EventFdDrain(int fd);

// ---- timerfd ----
absl::StatusOr<base::UniqueFd> TimerFdCreate();
/// timerfd_settime: one expiry after `after` (relative, CLOCK_MONOTONIC).
void TimerFdArm(int fd, absl::Duration after);
/// Reads the expiry count (non-blocking).
void TimerFdDrain(int fd);

// ---- futex (the wait word of a pending operation) ----
/// Sleeps while `*word == expected`, up to `timeout` (InfiniteDuration for
/// none). Spurious returns are allowed: callers re-check.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               absl::Duration timeout);
void FutexWakeAll(std::atomic<uint32_t>* word);

}  // namespace ssihv::rdmax::sys

#endif  // SSIHV_RDMAX_SYS_POSIX_H_
