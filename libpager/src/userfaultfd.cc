#include "userfaultfd.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ssihv/base/status_macros.h"
#include "sys/uffd.h"

namespace ssihv::pager {
namespace {

struct FeatureInfo {
  uint64_t bit;
  const char* name;
  const char* meaning;
  const char* since;
};

// From include/uapi/linux/userfaultfd.h and the kernel release notes.
constexpr FeatureInfo kFeatures[] = {
    {UFFD_FEATURE_PAGEFAULT_FLAG_WP, "PAGEFAULT_FLAG_WP",
     "write-protect faults on anonymous memory", "5.7"},
    {UFFD_FEATURE_EVENT_FORK, "EVENT_FORK", "fork events", "4.11"},
    {UFFD_FEATURE_EVENT_REMAP, "EVENT_REMAP", "mremap events", "4.11"},
    {UFFD_FEATURE_EVENT_REMOVE, "EVENT_REMOVE",
     "REMOVE events for MADV_DONTNEED/MADV_REMOVE", "4.11"},
    {UFFD_FEATURE_MISSING_HUGETLBFS, "MISSING_HUGETLBFS",
     "missing faults on hugetlbfs", "4.11"},
    {UFFD_FEATURE_MISSING_SHMEM, "MISSING_SHMEM",
     "missing faults on shmem/memfd", "4.11"},
    {UFFD_FEATURE_EVENT_UNMAP, "EVENT_UNMAP", "munmap events", "4.11"},
    {UFFD_FEATURE_SIGBUS, "SIGBUS", "SIGBUS instead of fault events", "4.14"},
    {UFFD_FEATURE_THREAD_ID, "THREAD_ID", "faulting thread id", "4.14"},
    {UFFD_FEATURE_MINOR_HUGETLBFS, "MINOR_HUGETLBFS",
     "minor faults on hugetlbfs", "5.13"},
    {UFFD_FEATURE_MINOR_SHMEM, "MINOR_SHMEM", "minor faults on shmem/memfd",
     "5.14"},
    {UFFD_FEATURE_EXACT_ADDRESS, "EXACT_ADDRESS", "exact fault address",
     "5.18"},
    {UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "WP_HUGETLBFS_SHMEM",
     "write-protect on shmem/memfd and hugetlbfs", "6.0"},
};

uint64_t RequiredFeatures(const UffdRequirements& req) {
  uint64_t f = 0;
  if (req.write_protect) f |= UFFD_FEATURE_PAGEFAULT_FLAG_WP;
  if (req.remove_events) f |= UFFD_FEATURE_EVENT_REMOVE;
  if (req.shmem) f |= UFFD_FEATURE_MISSING_SHMEM;
  if (req.shmem && req.write_protect) f |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  return f;
}

// Enabled whenever present: THREAD_ID attributes faults to vCPU threads, the
// shmem bits let memfd-backed regions register later.
constexpr uint64_t kOptionalFeatures =
    UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_PAGEFAULT_FLAG_WP |
    UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MISSING_SHMEM |
    UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

struct Opened {
  base::UniqueFd fd;
  std::string via;
};

// /dev/userfaultfd first (its permission is the node's mode, and it hands out
// fds that may handle kernel-mode faults), then the syscall.
absl::StatusOr<Opened> OpenAny() {
  // Blocking: fault threads sleep in read(2) itself (no epoll round per
  // fault); pumps poll before they read (Pager::ReadIntoBacklog).
  constexpr int kFlags = O_CLOEXEC;
  auto dev = sys::UffdOpenDevice(kFlags);
  if (dev.ok()) return Opened{*std::move(dev), "/dev/userfaultfd"};
  auto sc = sys::UffdSyscall(kFlags);
  if (sc.ok()) return Opened{*std::move(sc), "userfaultfd(2)"};
  return absl::Status(
      sc.status().code(),
      absl::StrCat(
          "cannot create a userfaultfd that handles kernel-mode faults: ",
          dev.status().message(), "; ", sc.status().message(),
          " (grant read-write access to /dev/userfaultfd, or CAP_SYS_PTRACE, "
          "or set sysctl vm.unprivileged_userfaultfd=1)"));
}

std::string Lacking(uint64_t missing) {
  std::vector<std::string> parts;
  for (const auto& f : kFeatures) {
    if (missing & f.bit) {
      parts.push_back(absl::StrCat("UFFD_FEATURE_", f.name, " (", f.meaning,
                                   ", Linux ", f.since, "+)"));
    }
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

std::string Userfaultfd::FeatureNames(uint64_t features) {
  std::vector<std::string> names;
  for (const auto& f : kFeatures) {
    if (features & f.bit) names.push_back(f.name);
  }
  return absl::StrJoin(names, "|");
}

absl::StatusOr<Userfaultfd> Userfaultfd::Open(const UffdRequirements& req) {
  // UFFDIO_API may be called once per fd: a probe fd learns what the kernel
  // has, so the real handshake asks only for features that exist and a
  // missing one is reported by name rather than as a bare EINVAL.
  SSIHV_ASSIGN_OR_RETURN(Opened probe, OpenAny());
  uint64_t available = 0;
  uint64_t ioctls = 0;
  SSIHV_RETURN_IF_ERROR(sys::UffdApi(probe.fd.get(), &available, &ioctls));
  const uint64_t required = RequiredFeatures(req);
  if (uint64_t missing = required & ~available; missing != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("userfaultfd: this kernel lacks ", Lacking(missing),
                     "; it offers features 0x", absl::Hex(available), " (",
                     FeatureNames(available), ")"));
  }
  probe.fd.Reset();

  SSIHV_ASSIGN_OR_RETURN(Opened real, OpenAny());
  uint64_t optional = kOptionalFeatures & available;
  if (!req.remove_events) optional &= ~uint64_t{UFFD_FEATURE_EVENT_REMOVE};
  const uint64_t requested = required | optional;
  uint64_t features = requested;
  SSIHV_RETURN_IF_ERROR(sys::UffdApi(real.fd.get(), &features, &ioctls));
  // The kernel answers with everything it supports; what is enabled on this
  // fd is what was asked for.
  features &= requested;
  constexpr uint64_t kNeededIoctls =
      (uint64_t{1} << _UFFDIO_REGISTER) | (uint64_t{1} << _UFFDIO_UNREGISTER);
  if ((ioctls & kNeededIoctls) != kNeededIoctls) {
    return absl::FailedPreconditionError(
        absl::StrCat("UFFDIO_API: kernel offers ioctls 0x", absl::Hex(ioctls),
                     " without UFFDIO_REGISTER/UFFDIO_UNREGISTER"));
  }
  return Userfaultfd(std::move(real.fd), features, std::move(real.via));
}

absl::StatusOr<Userfaultfd> Userfaultfd::Adopt(int fd) {
  SSIHV_ASSIGN_OR_RETURN(base::UniqueFd dup, sys::UffdAdopt(fd));
  return Userfaultfd(std::move(dup), 0, "adopted");
}

absl::Status Userfaultfd::Register(void* addr, uint64_t len, uint64_t mode,
                                   bool shmem) const {
  uint64_t ioctls = 0;
  const uint64_t start = reinterpret_cast<uint64_t>(addr);
  SSIHV_RETURN_IF_ERROR(sys::UffdRegister(fd(), start, len, mode, &ioctls));
  uint64_t needed =
      (uint64_t{1} << _UFFDIO_COPY) | (uint64_t{1} << _UFFDIO_WAKE);
  if (!shmem) needed |= uint64_t{1} << _UFFDIO_ZEROPAGE;
  if (mode & UFFDIO_REGISTER_MODE_WP) {
    needed |= uint64_t{1} << _UFFDIO_WRITEPROTECT;
  }
  if ((ioctls & needed) != needed) {
    (void)sys::UffdUnregister(fd(), start, len);
    return absl::FailedPreconditionError(absl::StrCat(
        "UFFDIO_REGISTER start=0x", absl::Hex(start), " len=0x", absl::Hex(len),
        ": the kernel allows ioctls 0x", absl::Hex(ioctls),
        " on this range, needed 0x", absl::Hex(needed),
        " (COPY, WAKE, ZEROPAGE on anonymous memory, WRITEPROTECT)"));
  }
  return absl::OkStatus();
}

absl::Status Userfaultfd::Unregister(void* addr, uint64_t len) const {
  return sys::UffdUnregister(fd(), reinterpret_cast<uint64_t>(addr), len);
}

int Userfaultfd::Copy(void* dst, const void* src, uint64_t len,
                      bool write_protect, int64_t* done) const {
  return sys::UffdCopy(fd(), reinterpret_cast<uint64_t>(dst), src, len,
                       write_protect ? UFFDIO_COPY_MODE_WP : 0, done);
}

int Userfaultfd::ZeroPage(void* dst, uint64_t len, int64_t* done) const {
  return sys::UffdZeropage(fd(), reinterpret_cast<uint64_t>(dst), len, 0, done);
}

int Userfaultfd::WriteProtect(void* addr, uint64_t len, bool protect) const {
  return sys::UffdWriteProtect(fd(), reinterpret_cast<uint64_t>(addr), len,
                               protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0);
}

int Userfaultfd::Wake(void* addr, uint64_t len) const {
  return sys::UffdWake(fd(), reinterpret_cast<uint64_t>(addr), len);
}

}  // namespace ssihv::pager
