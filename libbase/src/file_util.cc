#include "ssihv/base/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::base {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return LastErrnoStatus(absl::StrCat("open ", path));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastErrnoStatus(absl::StrCat("read ", path));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

static absl::Status WriteAll(int fd, absl::string_view data,
                             const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastErrnoStatus(absl::StrCat("write ", path));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  UniqueFd fd(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return LastErrnoStatus(absl::StrCat("open ", tmp));
  absl::Status st = WriteAll(fd.get(), contents, tmp);
  if (st.ok() && ::fsync(fd.get()) != 0) {
    st = LastErrnoStatus(absl::StrCat("fsync ", tmp));
  }
  fd.Reset();
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = LastErrnoStatus(absl::StrCat("rename ", tmp, " -> ", path));
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace ssihv::base
