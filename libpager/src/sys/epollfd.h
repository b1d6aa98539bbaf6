// Raw epoll and eventfd calls used by the fault threads.
#ifndef SSIHV_PAGER_SYS_EPOLLFD_H_
#define SSIHV_PAGER_SYS_EPOLLFD_H_

#include <sys/epoll.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::pager::sys {

/// epoll_create1(EPOLL_CLOEXEC).
absl::StatusOr<base::UniqueFd> EpollCreate();

/// epoll_ctl(EPOLL_CTL_ADD) of `fd` for `events` with `data` as user data.
absl::Status EpollAdd(int epfd, int fd, uint32_t events, uint64_t data);

/// epoll_wait(2) with an infinite timeout; EINTR is retried. Returns the
/// number of ready events or -errno.
int EpollWait(int epfd, epoll_event* events, int max);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
absl::StatusOr<base::UniqueFd> EventfdCreate();

/// Adds `value` to the eventfd counter.
absl::Status EventfdWrite(int fd, uint64_t value);

/// Reads and resets the eventfd counter; 0 when it was already zero.
uint64_t EventfdRead(int fd);

}  // namespace ssihv::pager::sys

#endif  // SSIHV_PAGER_SYS_EPOLLFD_H_
