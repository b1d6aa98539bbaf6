// The handler's raw system calls, one function each: the Unix socket, the
// peer's credentials and pidfd, signals, epoll. Everything above goes
// through these.
#ifndef SSIHV_APPS_UFFD_HANDLER_SYS_H_
#define SSIHV_APPS_UFFD_HANDLER_SYS_H_

#include <signal.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::uffd_handler::sys {

/// socket + bind + chmod(0600) + listen, non-blocking. listen() comes after
/// the chmod, so nobody can connect while the mode is still the umask's.
absl::StatusOr<base::UniqueFd> ListenUnix(const std::string& path);

/// accept4, non-blocking and close-on-exec. An invalid fd when none is
/// pending.
absl::StatusOr<base::UniqueFd> Accept(int listen_fd);

struct Received {
  size_t bytes = 0;                 ///< 0: the peer closed the connection
  std::vector<base::UniqueFd> fds;  ///< from SCM_RIGHTS control messages
  bool truncated_fds = false;       ///< MSG_CTRUNC: more fds than room
  bool would_block = false;         ///< nothing to read yet
};
/// recvmsg of up to `len` bytes and up to 4 fds (close-on-exec).
absl::StatusOr<Received> Receive(int fd, char* buf, size_t len);

struct Peer {
  pid_t pid = 0;  ///< 0 when the peer is in a PID namespace not visible here
  uid_t uid = 0;
  gid_t gid = 0;
};
/// SO_PEERCRED: who connected (as of connect()).
absl::StatusOr<Peer> PeerCredentials(int fd);

/// A pidfd of the connected peer: SO_PEERPIDFD (Linux 6.5+; race-free),
/// else pidfd_open(pid) (Linux 5.3+). Readable once the process exited.
absl::StatusOr<base::UniqueFd> PeerPidfd(int fd, pid_t pid);

/// Blocks `signals` in the calling thread (threads created later inherit
/// it) and returns a signalfd for them.
absl::StatusOr<base::UniqueFd> BlockedSignalFd(const std::vector<int>& signals);
/// Reads one signal from a signalfd; 0 if none pending.
int ReadSignal(int signal_fd);

absl::StatusOr<base::UniqueFd> EpollCreate();
absl::Status EpollAdd(int epfd, int fd, uint32_t events, uint64_t tag);
void EpollDel(int epfd, int fd);
/// epoll_wait; the count, or -errno (EINTR is retried).
int EpollWait(int epfd, epoll_event* events, int max, int timeout_ms);

absl::Status Unlink(const std::string& path);

/// SIGKILL to a process: through its pidfd (race-free) when `pidfd` >= 0,
/// else to `pid` (> 0).
absl::Status KillProcess(int pidfd, pid_t pid);

/// CLOCK_MONOTONIC in nanoseconds.
int64_t NowNs();

}  // namespace ssihv::uffd_handler::sys

#endif  // SSIHV_APPS_UFFD_HANDLER_SYS_H_
