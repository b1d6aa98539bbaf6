#include "ssihv/base/mapped_region.h"

#include <sys/mman.h>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::base {

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    Reset();
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedRegion::Reset() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

absl::StatusOr<MappedRegion> MappedRegion::Anonymous(size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return LastErrnoStatus(absl::StrCat("mmap anonymous size=", size));
  }
  return Adopt(p, size);
}

absl::StatusOr<MappedRegion> MappedRegion::Shared(int fd, size_t size,
                                                  off_t offset, int prot) {
  void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, offset);
  if (p == MAP_FAILED) {
    return LastErrnoStatus(absl::StrCat("mmap shared fd=", fd, " size=", size,
                                        " offset=", offset));
  }
  return Adopt(p, size);
}

}  // namespace ssihv::base
