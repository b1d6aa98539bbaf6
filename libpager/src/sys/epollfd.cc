#include "sys/epollfd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::pager::sys {

absl::StatusOr<base::UniqueFd> EpollCreate() {
  base::UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) return base::LastErrnoStatus("epoll_create1");
  return fd;
}

absl::Status EpollAdd(int epfd, int fd, uint32_t events, uint64_t data) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    return base::LastErrnoStatus(absl::StrCat("epoll_ctl ADD epfd=", epfd,
                                              " fd=", fd, " events=0x",
                                              absl::Hex(events)));
  }
  return absl::OkStatus();
}

int EpollWait(int epfd, epoll_event* events, int max) {
  for (;;) {
    int n = ::epoll_wait(epfd, events, max, -1);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

absl::StatusOr<base::UniqueFd> EventfdCreate() {
  base::UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return base::LastErrnoStatus("eventfd");
  return fd;
}

absl::Status EventfdWrite(int fd, uint64_t value) {
  ssize_t n;
  do {
    n = ::write(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n != sizeof(value)) {
    return base::LastErrnoStatus(absl::StrCat("write eventfd fd=", fd));
  }
  return absl::OkStatus();
}

uint64_t EventfdRead(int fd) {
  uint64_t value = 0;
  ssize_t n;
  do {
    n = ::read(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  return n == sizeof(value) ? value : 0;
}

}  // namespace ssihv::pager::sys
