// One guest-memory fault as the pager hands it to a PageSource, and the kinds
// under which its resolution is counted.
#ifndef SSIHV_PAGER_FAULT_H_
#define SSIHV_PAGER_FAULT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ssihv::pager {

/// Every resolution is one 4 KiB page: the DSM coherence unit and the
/// granularity of userfaultfd on anonymous memory.
inline constexpr uint64_t kPageSize = 4096;

/// Why the faulting thread stopped.
enum class FaultAccess : uint8_t {
  kRead,          ///< read of a page that is not mapped
  kWrite,         ///< write to a page that is not mapped
  kWriteProtect,  ///< write to a mapped, write-protected (read-only) page
};

/// How a fault was resolved; statistics are kept per kind.
enum class FaultKind : uint8_t {
  kLocalZero,    ///< zero page / zeroed page, no data source involved
  kLocalCopy,    ///< bytes from a local source (image, snapshot)
  kRemoteRead,   ///< bytes from another node, mapped read-only
  kRemoteWrite,  ///< bytes from another node, mapped writable
  kUpgrade,      ///< write permission granted on a page already mapped
};
inline constexpr size_t kNumFaultKinds = 5;

/// "local_zero", "local_copy", "remote_read", "remote_write", "upgrade".
std::string_view FaultKindName(FaultKind kind);
std::string_view FaultAccessName(FaultAccess access);

struct Fault {
  uint64_t gpa = 0;         ///< page-aligned guest-physical address
  uint8_t* host = nullptr;  ///< page-aligned host address of that page
  FaultAccess access = FaultAccess::kRead;
  /// Kernel thread id of the faulting thread (a vCPU thread under KVM);
  /// 0 when the kernel lacks UFFD_FEATURE_THREAD_ID.
  uint32_t thread_id = 0;
  /// CLOCK_MONOTONIC nanoseconds when the pager read the fault; service
  /// times are measured from here to the resolving ioctl.
  int64_t start_ns = 0;
  /// The same thread handles more faults it read together with this one
  /// right after it: a source that would block this thread for the
  /// fault's answer may rather let those start first (the DSM node sends
  /// such a request on the main connection instead of waiting on a lane).
  bool more_follow = false;

  bool is_write() const { return access != FaultAccess::kRead; }
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_FAULT_H_
