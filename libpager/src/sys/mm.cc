#include "sys/mm.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::pager::sys {

absl::Status Madvise(void* addr, uint64_t len, int advice,
                     absl::string_view advice_name) {
  int rc;
  do {
    rc = ::madvise(addr, len, advice);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    return base::LastErrnoStatus(
        absl::StrCat("madvise(", absl::Hex(reinterpret_cast<uintptr_t>(addr)),
                     ", len=0x", absl::Hex(len), ", ", advice_name, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<base::UniqueFd> MemfdCreate(const char* name) {
  base::UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!fd) return base::LastErrnoStatus(absl::StrCat("memfd_create ", name));
  return fd;
}

absl::Status Ftruncate(int fd, uint64_t size) {
  if (::ftruncate(fd, static_cast<off_t>(size)) < 0) {
    return base::LastErrnoStatus(
        absl::StrCat("ftruncate fd=", fd, " size=", size));
  }
  return absl::OkStatus();
}

}  // namespace ssihv::pager::sys
