// Firecracker's page-fault handler handshake: the message body is a JSON
// array of GuestRegionUffdMapping objects, one per guest memory region,
// sent with the userfaultfd in an SCM_RIGHTS control message:
//
//   [{"base_host_virt_addr": 140..., "size": 134217728, "offset": 0,
//     "page_size": 4096}, ...]
//
// Older Firecracker versions name the page size only "page_size_kib" (its
// value is in bytes all the same); current ones send both, equal. Pure
// parsing and validation, no I/O.
#ifndef SSIHV_APPS_UFFD_HANDLER_MAPPINGS_H_
#define SSIHV_APPS_UFFD_HANDLER_MAPPINGS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ssihv::uffd_handler {

struct GuestRegionMapping {
  uint64_t base_host_virt_addr = 0;  ///< in the VM process's address space
  uint64_t size = 0;                 ///< bytes
  uint64_t offset = 0;               ///< of the region's bytes in the memory
  uint64_t page_size = 0;            ///< bytes
};

/// Largest handshake accepted: Firecracker sends a few regions (~100 bytes
/// each).
inline constexpr size_t kMaxHandshakeBytes = 64 * 1024;
/// Most regions accepted in one handshake.
inline constexpr size_t kMaxRegions = 1024;
/// The page size this handler serves (4 KiB pages; hugetlbfs is refused).
inline constexpr uint64_t kSupportedPageSize = 4096;

/// The length of the first complete JSON value at the start of `data`
/// (leading whitespace included), or 0 while it is incomplete. Only
/// brackets outside strings are counted: enough to know when a stream
/// socket has delivered the whole message; the parser validates it.
size_t CompleteJsonLength(absl::string_view data);

/// Parses and validates a handshake body against memory of `memory_size`
/// bytes. Errors are InvalidArgument and name the region and field, e.g.
/// "regions[1].page_size: 3000 is not a power of two". Checks: a non-empty
/// array of objects; unsigned integers; a page size that is a power of two
/// (and kSupportedPageSize); base, size and offset multiples of it, size
/// non-zero, no overflow; regions that overlap neither in the VM's address
/// space nor in the memory; every region inside the memory.
absl::StatusOr<std::vector<GuestRegionMapping>> ParseMappings(
    absl::string_view json, uint64_t memory_size);

}  // namespace ssihv::uffd_handler

#endif  // SSIHV_APPS_UFFD_HANDLER_MAPPINGS_H_
