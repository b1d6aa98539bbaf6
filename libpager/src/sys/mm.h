// Raw memory-management calls on guest RAM: madvise, memfd, ftruncate.
#ifndef SSIHV_PAGER_SYS_MM_H_
#define SSIHV_PAGER_SYS_MM_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::pager::sys {

/// madvise(2). With UFFD_FEATURE_EVENT_REMOVE negotiated, MADV_DONTNEED and
/// MADV_REMOVE on a registered range first queue a REMOVE event and block the
/// caller until some thread reads it from the uffd: never call this from the
/// only thread that reads the uffd.
absl::Status Madvise(void* addr, uint64_t len, int advice,
                     absl::string_view advice_name);

/// memfd_create(2) with MFD_CLOEXEC.
absl::StatusOr<base::UniqueFd> MemfdCreate(const char* name);

/// ftruncate(2).
absl::Status Ftruncate(int fd, uint64_t size);

}  // namespace ssihv::pager::sys

#endif  // SSIHV_PAGER_SYS_MM_H_
