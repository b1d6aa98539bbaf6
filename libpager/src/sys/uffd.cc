#include "sys/uffd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::pager::sys {

using base::LastErrnoStatus;
using base::UniqueFd;

namespace {

// The ioctls below retry EINTR: a signal delivered to the resolving thread
// must not turn into a lost resolution (the faulting thread would hang).
template <typename Arg>
int RetryIoctl(int fd, unsigned long request, Arg* arg) {
  int rc;
  do {
    rc = ::ioctl(fd, request, arg);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

}  // namespace

absl::StatusOr<UniqueFd> UffdOpenDevice(int flags) {
  UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (!dev) return LastErrnoStatus("open /dev/userfaultfd");
  UniqueFd fd(::ioctl(dev.get(), USERFAULTFD_IOC_NEW, flags));
  if (!fd) {
    return LastErrnoStatus(
        absl::StrCat("ioctl(/dev/userfaultfd, USERFAULTFD_IOC_NEW, flags=0x",
                     absl::Hex(flags), ")"));
  }
  return fd;
}

absl::StatusOr<UniqueFd> UffdSyscall(int flags) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_userfaultfd, flags)));
  if (!fd) {
    return LastErrnoStatus(
        absl::StrCat("userfaultfd(flags=0x", absl::Hex(flags), ")"));
  }
  return fd;
}

absl::StatusOr<UniqueFd> UffdAdopt(int fd) {
  const std::string link = absl::StrCat("/proc/self/fd/", fd);
  char target[64] = {};
  const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0) return LastErrnoStatus(absl::StrCat("readlink ", link));
  if (absl::string_view(target, static_cast<size_t>(n)) !=
      "anon_inode:[userfaultfd]") {
    return absl::InvalidArgumentError(absl::StrCat(
        "fd ", fd, " is not a userfaultfd (", link, " -> ", target, ")"));
  }
  UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return LastErrnoStatus(absl::StrCat("fcntl(", fd, ", F_DUPFD)"));
  const int flags = ::fcntl(dup.get(), F_GETFL);
  if (flags < 0 || ::fcntl(dup.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return LastErrnoStatus(absl::StrCat("fcntl(", fd, ", F_SETFL O_NONBLOCK)"));
  }
  return dup;
}

absl::Status UffdApi(int fd, uint64_t* features, uint64_t* ioctls) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = *features;
  if (int err = RetryIoctl(fd, UFFDIO_API, &api); err != 0) {
    return base::ErrnoStatus(
        err, absl::StrCat("UFFDIO_API features=0x", absl::Hex(*features)));
  }
  *features = api.features;
  *ioctls = api.ioctls;
  return absl::OkStatus();
}

absl::Status UffdRegister(int fd, uint64_t start, uint64_t len, uint64_t mode,
                          uint64_t* ioctls) {
  uffdio_register reg{};
  reg.range.start = start;
  reg.range.len = len;
  reg.mode = mode;
  if (int err = RetryIoctl(fd, UFFDIO_REGISTER, &reg); err != 0) {
    return base::ErrnoStatus(
        err,
        absl::StrCat("UFFDIO_REGISTER start=0x", absl::Hex(start), " len=0x",
                     absl::Hex(len), " mode=0x", absl::Hex(mode)));
  }
  *ioctls = reg.ioctls;
  return absl::OkStatus();
}

absl::Status UffdUnregister(int fd, uint64_t start, uint64_t len) {
  uffdio_range range{start, len};
  if (int err = RetryIoctl(fd, UFFDIO_UNREGISTER, &range); err != 0) {
    return base::ErrnoStatus(
        err, absl::StrCat("UFFDIO_UNREGISTER start=0x", absl::Hex(start),
                          " len=0x", absl::Hex(len)));
  }
  return absl::OkStatus();
}

int UffdCopy(int fd, uint64_t dst, const void* src, uint64_t len, uint64_t mode,
             int64_t* done) {
  uffdio_copy copy{};
  copy.dst = dst;
  copy.src = reinterpret_cast<uint64_t>(src);
  copy.len = len;
  copy.mode = mode;
  const int err = RetryIoctl(fd, UFFDIO_COPY, &copy);
  if (done != nullptr) *done = copy.copy;
  return err;
}

int UffdZeropage(int fd, uint64_t start, uint64_t len, uint64_t mode,
                 int64_t* done) {
  uffdio_zeropage zero{};
  zero.range.start = start;
  zero.range.len = len;
  zero.mode = mode;
  const int err = RetryIoctl(fd, UFFDIO_ZEROPAGE, &zero);
  if (done != nullptr) *done = zero.zeropage;
  return err;
}

int UffdWriteProtect(int fd, uint64_t start, uint64_t len, uint64_t mode) {
  uffdio_writeprotect wp{};
  wp.range.start = start;
  wp.range.len = len;
  wp.mode = mode;
  return RetryIoctl(fd, UFFDIO_WRITEPROTECT, &wp);
}

int UffdWake(int fd, uint64_t start, uint64_t len) {
  uffdio_range range{start, len};
  return RetryIoctl(fd, UFFDIO_WAKE, &range);
}

int UffdContinue(int fd, uint64_t start, uint64_t len, uint64_t mode) {
  uffdio_continue cont{};
  cont.range.start = start;
  cont.range.len = len;
  cont.mode = mode;
  return RetryIoctl(fd, UFFDIO_CONTINUE, &cont);
}

ssize_t UffdRead(int fd, uffd_msg* msgs, size_t max) {
  for (;;) {
    ssize_t n = ::read(fd, msgs, max * sizeof(uffd_msg));
    if (n >= 0) return n / static_cast<ssize_t>(sizeof(uffd_msg));
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    return -errno;
  }
}

// poll(2) cannot say whether a read would block: on a blocking uffd it
// answers EPOLLERR (fs/userfaultfd.c, userfaultfd_poll). The reader that
// must not block flips the file's O_NONBLOCK instead.
absl::Status UffdSetNonblocking(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return base::LastErrnoStatus("fcntl(F_GETFL) on the uffd");
  const int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want != flags && ::fcntl(fd, F_SETFL, want) < 0) {
    return base::LastErrnoStatus("fcntl(F_SETFL) on the uffd");
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> EventfdCreate() {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return LastErrnoStatus("eventfd");
  return UniqueFd(fd);
}

absl::Status EventfdWrite(int fd, uint64_t value) {
  if (::write(fd, &value, sizeof(value)) != sizeof(value)) {
    return LastErrnoStatus("write eventfd");
  }
  return absl::OkStatus();
}

void EventfdDrain(int fd) {
  uint64_t v;
  (void)!::read(fd, &v, sizeof(v));
}

int PollUffdOrStop(int uffd, int stop_fd) {
  pollfd fds[2] = {{uffd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) >= 0) break;
    if (errno != EINTR) return -errno;
  }
  if (fds[1].revents & POLLIN) return 1;
  return 0;
}

}  // namespace ssihv::pager::sys
