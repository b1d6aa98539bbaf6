// Userfaultfd: an owned, negotiated userfaultfd (RAII over src/sys/uffd.h).
#ifndef SSIHV_PAGER_USERFAULTFD_H_
#define SSIHV_PAGER_USERFAULTFD_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::pager {

/// What a caller needs from the kernel. Features not required are still
/// enabled when the kernel has them.
struct UffdRequirements {
  bool write_protect = true;  // UFFD_FEATURE_PAGEFAULT_FLAG_WP (anon WP)
  // UFFD_FEATURE_EVENT_REMOVE: required when true; never enabled when
  // false (no REMOVE events, and madvise on the range does not wait for a
  // reader of the uffd).
  bool remove_events = true;
  bool shmem = false;  // MISSING_SHMEM + WP_HUGETLBFS_SHMEM (memfd)
};

class Userfaultfd {
 public:
  Userfaultfd(Userfaultfd&&) = default;
  Userfaultfd& operator=(Userfaultfd&&) = default;

  /// Opens a non-blocking userfaultfd (via /dev/userfaultfd, else the
  /// syscall; never UFFD_USER_MODE_ONLY) and negotiates the API. A missing
  /// required feature is FailedPrecondition naming each one and the kernel
  /// version that added it.
  static absl::StatusOr<Userfaultfd> Open(const UffdRequirements& req);

  /// Takes a duplicate of a userfaultfd created and negotiated elsewhere
  /// (another process: sys::UffdAdopt). Its features are unknown here:
  /// features() is 0, opened_via() "adopted".
  static absl::StatusOr<Userfaultfd> Adopt(int fd);

  int fd() const { return fd_.get(); }
  /// Features enabled on this fd (UFFD_FEATURE_*).
  uint64_t features() const { return features_; }
  bool Has(uint64_t feature) const { return (features_ & feature) == feature; }
  /// "/dev/userfaultfd" or "userfaultfd(2)".
  const std::string& opened_via() const { return opened_via_; }

  /// Registers [addr, addr + len) in `mode` (UFFDIO_REGISTER_MODE_*) and
  /// checks that the kernel allows COPY, ZEROPAGE (anon) and WRITEPROTECT
  /// (when WP mode) on it.
  absl::Status Register(void* addr, uint64_t len, uint64_t mode,
                        bool shmem) const;
  absl::Status Unregister(void* addr, uint64_t len) const;

  // Fault path: 0 or errno (see sys/uffd.h for EEXIST/EAGAIN meanings).
  int Copy(void* dst, const void* src, uint64_t len, bool write_protect,
           int64_t* done = nullptr) const;
  int ZeroPage(void* dst, uint64_t len, int64_t* done = nullptr) const;
  int WriteProtect(void* addr, uint64_t len, bool protect) const;
  int Wake(void* addr, uint64_t len) const;

  /// Names of UFFD_FEATURE_* bits, for messages and stats ("THREAD_ID|...").
  static std::string FeatureNames(uint64_t features);

 private:
  Userfaultfd(base::UniqueFd fd, uint64_t features, std::string via)
      : fd_(std::move(fd)), features_(features), opened_via_(std::move(via)) {}

  base::UniqueFd fd_;
  uint64_t features_ = 0;
  std::string opened_via_;
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_USERFAULTFD_H_
