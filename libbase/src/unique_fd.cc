#include "ssihv/base/unique_fd.h"

#include <unistd.h>

namespace ssihv::base {

void UniqueFd::Reset(int fd) {
  // close() is not retried on EINTR: on Linux the fd is released regardless
  // (see close(2), "Dealing with error returns from close()").
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace ssihv::base
