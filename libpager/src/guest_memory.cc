#include "ssihv/pager/guest_memory.h"

#include <sys/mman.h>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"
#include "sys/mm.h"

namespace ssihv::pager {

std::string_view BackingName(Backing backing) {
  return backing == Backing::kMemfd ? "memfd" : "anonymous";
}

absl::StatusOr<GuestMemory> GuestMemory::Create(uint64_t size,
                                                Backing backing) {
  if (size == 0 || size % 4096 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GuestMemory size=", size, ": must be a positive multiple of 4096"));
  }
  base::UniqueFd memfd;
  base::MappedRegion mapping;
  if (backing == Backing::kAnonymous) {
    SSIHV_ASSIGN_OR_RETURN(mapping, base::MappedRegion::Anonymous(size));
  } else {
    SSIHV_ASSIGN_OR_RETURN(memfd, sys::MemfdCreate("ssihv-guest-ram"));
    SSIHV_RETURN_IF_ERROR(sys::Ftruncate(memfd.get(), size));
    SSIHV_ASSIGN_OR_RETURN(mapping,
                           base::MappedRegion::Shared(memfd.get(), size));
  }
  // The pager resolves and invalidates 4 KiB pages; a transparent huge page
  // would only be split again by the first 4 KiB discard or write-protect.
  SSIHV_RETURN_IF_ERROR(
      sys::Madvise(mapping.data(), size, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"));
  return GuestMemory(std::move(memfd), std::move(mapping), backing);
}

}  // namespace ssihv::pager
