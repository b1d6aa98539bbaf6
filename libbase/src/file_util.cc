#include "ssihv/base/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::base {

// Reads `fd` to its end, or up to one byte past `max_bytes`.
static absl::StatusOr<std::string> ReadAll(int fd, absl::string_view what,
                                           size_t max_bytes) {
  std::string out;
  char buf[1 << 16];
  while (out.size() <= max_bytes) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastErrnoStatus(absl::StrCat("read ", what));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return LastErrnoStatus(absl::StrCat("open ", path));
  return ReadAll(fd.get(), path, SIZE_MAX - 1);
}

absl::StatusOr<std::string> ReadPrivateFile(absl::string_view key,
                                            const std::string& path,
                                            size_t max_bytes) {
  const std::string what = absl::StrCat(key, " ", path);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return LastErrnoStatus(absl::StrCat("open ", what));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return LastErrnoStatus(absl::StrCat("fstat ", what));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a regular file"));
  }
  // Like ssh with private keys: a secret others can read is not a secret,
  // and one others can write lets them choose it.
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "0%03o",
                  static_cast<unsigned>(st.st_mode & 0777));
    return absl::PermissionDeniedError(
        absl::StrCat(what, ": mode ", mode,
                     " lets group or others access it; run chmod 600 ", path));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": longer than ", max_bytes, " bytes"));
  }
  absl::StatusOr<std::string> contents = ReadAll(fd.get(), what, max_bytes);
  if (!contents.ok()) return contents.status();
  // The file may have grown between fstat and read.
  if (contents->size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": longer than ", max_bytes, " bytes"));
  }
  return contents;
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
