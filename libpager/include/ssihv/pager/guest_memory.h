// GuestMemory: the host mapping that backs guest RAM.
//
// Anonymous private memory is the default and what the DSM node requires:
// MADV_DONTNEED makes a page missing again, so the next access faults to the
// pager (the invalidation primitive of the coherence protocol). A memfd
// backing lets another process map the same RAM (a snapshot writer, an
// external device model); there MADV_DONTNEED only drops the page-table
// entry, so discards punch a hole in the file instead (MADV_REMOVE). See
// docs/PAGER.md, "Backing".
#ifndef SSIHV_PAGER_GUEST_MEMORY_H_
#define SSIHV_PAGER_GUEST_MEMORY_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::pager {

enum class Backing : uint8_t {
  kAnonymous,  ///< MAP_PRIVATE | MAP_ANONYMOUS
  kMemfd,      ///< MAP_SHARED of a memfd (shmem)
};

std::string_view BackingName(Backing backing);

class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(GuestMemory&&) = default;
  GuestMemory& operator=(GuestMemory&&) = default;

  /// Maps `size` bytes (a positive multiple of 4 KiB) of guest RAM,
  /// MAP_NORESERVE and MADV_NOHUGEPAGE: the pager resolves 4 KiB pages, and
  /// nothing is populated until it does.
  static absl::StatusOr<GuestMemory> Create(
      uint64_t size, Backing backing = Backing::kAnonymous);

  uint8_t* data() const { return mapping_.data(); }
  uint64_t size() const { return mapping_.size(); }
  Backing backing() const { return backing_; }
  /// The memfd (kMemfd), or -1. Owned by this object; dup() it to share.
  int memfd() const { return memfd_.get(); }

 private:
  GuestMemory(base::UniqueFd memfd, base::MappedRegion mapping, Backing backing)
      : memfd_(std::move(memfd)),
        mapping_(std::move(mapping)),
        backing_(backing) {}

  base::UniqueFd memfd_;  // before mapping_: unmapped first, closed last
  base::MappedRegion mapping_;
  Backing backing_ = Backing::kAnonymous;
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_GUEST_MEMORY_H_
