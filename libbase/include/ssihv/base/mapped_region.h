// A move-only owner of an mmap()ed range, unmapped on destruction.
#ifndef SSIHV_BASE_MAPPED_REGION_H_
#define SSIHV_BASE_MAPPED_REGION_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"

namespace ssihv::base {

class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  MappedRegion(MappedRegion&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  ~MappedRegion() { Reset(); }

  /// Private anonymous read-write memory (MAP_NORESERVE: guest RAM is
  /// populated on demand, not at map time).
  static absl::StatusOr<MappedRegion> Anonymous(size_t size);
  /// A shared mapping of `size` bytes of `fd` at `offset`.
  static absl::StatusOr<MappedRegion> Shared(int fd, size_t size,
                                             off_t offset = 0,
                                             int prot = 3 /* RW */);
  /// Takes ownership of an existing mapping.
  static MappedRegion Adopt(void* addr, size_t size) {
    MappedRegion r;
    r.addr_ = static_cast<uint8_t*>(addr);
    r.size_ = size;
    return r;
  }

  uint8_t* data() const { return addr_; }
  size_t size() const { return size_; }
  bool valid() const { return addr_ != nullptr; }
  void Reset();

 private:
  uint8_t* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ssihv::base

#endif  // SSIHV_BASE_MAPPED_REGION_H_
