// What Firecracker does when it restores a snapshot with the "Uffd" memory
// backend (src/vmm/src/persist.rs, guest_memory_from_uffd), for tests and
// benchmarks of ssihv-uffd-handler:
//   1. maps each guest memory region private anonymous (MAP_NORESERVE);
//   2. creates a userfaultfd, close-on-exec, non-blocking, not
//      UFFD_USER_MODE_ONLY (KVM touches guest memory from the kernel),
//      and does UFFDIO_API requesting UFFD_FEATURE_EVENT_REMOVE (the
//      balloon's madvise(MADV_DONTNEED) then sends REMOVE events);
//   3. registers every region for MISSING faults (UFFDIO_REGISTER);
//   4. connects to the handler's socket and sends, in ONE sendmsg, the JSON
//      array of GuestRegionUffdMapping and the uffd as SCM_RIGHTS;
//   5. v1.12+ keeps the connection open until it exits; v1.11 and older
//      close it right away.
// Then the guest (here: threads of the test) touches the memory.
#ifndef SSIHV_APPS_UFFD_HANDLER_TESTS_FC_CLIENT_H_
#define SSIHV_APPS_UFFD_HANDLER_TESTS_FC_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::fc_client {

struct RegionSpec {
  uint64_t size = 0;    ///< bytes, a multiple of 4096
  uint64_t offset = 0;  ///< in the snapshot memory file
};

/// How the page size is named in the JSON: both (current Firecracker), only
/// "page_size", or only "page_size_kib" (older versions; value in bytes).
enum class PageSizeField { kBoth, kPageSize, kPageSizeKib };

struct VmOptions {
  std::vector<RegionSpec> regions;
  PageSizeField page_size_field = PageSizeField::kBoth;
  bool keep_connection = true;  ///< false: Firecracker <= v1.11
};

class Vm {
 public:
  /// Steps 1-5 against the handler listening on `socket`.
  static absl::StatusOr<std::unique_ptr<Vm>> Restore(const std::string& socket,
                                                     const VmOptions& options);
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  size_t num_regions() const { return regions_.size(); }
  uint8_t* region(size_t i) const { return regions_[i].memory.data(); }
  const RegionSpec& spec(size_t i) const { return regions_[i].spec; }
  int uffd() const { return uffd_.get(); }
  /// The connection (-1 once closed, as v1.11 does).
  int connection() const { return conn_.get(); }

 private:
  struct Region {
    RegionSpec spec;
    base::MappedRegion memory;  ///< private anonymous, MAP_NORESERVE
  };
  Vm() = default;
  std::vector<Region> regions_;
  base::UniqueFd uffd_;
  base::UniqueFd conn_;
};

/// The handshake JSON Firecracker would send for `regions` at `hosts`.
std::string MappingsJson(const std::vector<RegionSpec>& regions,
                         const std::vector<uint64_t>& hosts,
                         PageSizeField field, uint64_t page_size = 4096);

/// Connects to `socket` and sends `body` in one sendmsg with `fds` as
/// SCM_RIGHTS (none when empty). Returns the connection.
absl::StatusOr<base::UniqueFd> SendHandshake(const std::string& socket,
                                             const std::string& body,
                                             const std::vector<int>& fds);

/// A Firecracker-style userfaultfd: /dev/userfaultfd or the syscall,
/// O_CLOEXEC | O_NONBLOCK, UFFDIO_API with UFFD_FEATURE_EVENT_REMOVE.
absl::StatusOr<base::UniqueFd> CreateUffd();

/// UFFDIO_REGISTER of [host, host + size) in MISSING mode.
absl::Status RegisterMissing(int uffd, uint8_t* host, uint64_t size);

}  // namespace ssihv::fc_client

#endif  // SSIHV_APPS_UFFD_HANDLER_TESTS_FC_CLIENT_H_
