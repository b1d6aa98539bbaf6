// Raw userfaultfd calls: one function per system call or ioctl, nothing else.
// Everything above src/sys/ goes through these.
//
// The resolving ioctls (COPY, ZEROPAGE, WRITEPROTECT, WAKE, CONTINUE) are on
// the fault path: they return 0 or an errno value instead of an absl::Status
// so that the expected outcomes (EEXIST: someone resolved it first; EAGAIN:
// the mapping is changing under a non-cooperative event) cost no allocation.
// The caller turns real failures into a Status.
//
// Kernel reference: Documentation/admin-guide/mm/userfaultfd.rst and
// ioctl_userfaultfd(2), https://docs.kernel.org/admin-guide/mm/userfaultfd.html
#ifndef SSIHV_PAGER_SYS_UFFD_H_
#define SSIHV_PAGER_SYS_UFFD_H_

#include <linux/userfaultfd.h>
#include <sys/types.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::pager::sys {

/// open("/dev/userfaultfd") + USERFAULTFD_IOC_NEW (Linux 6.1+). Access to the
/// device node is the permission check, so this works without
/// CAP_SYS_PTRACE for processes that may open the node. `flags` is
/// O_CLOEXEC (the pager's fault threads block in read); UFFD_USER_MODE_ONLY is
/// never passed, because KVM resolves guest accesses from kernel mode (KVM_RUN
/// would fail with EFAULT).
absl::StatusOr<base::UniqueFd> UffdOpenDevice(int flags);

/// The userfaultfd(2) system call (fallback before 6.1 or when the device node
/// is absent). Without UFFD_USER_MODE_ONLY it needs CAP_SYS_PTRACE or
/// vm.unprivileged_userfaultfd=1.
absl::StatusOr<base::UniqueFd> UffdSyscall(int flags);

/// A close-on-exec duplicate of `fd` after checking that it is a
/// userfaultfd (its /proc/self/fd link reads "anon_inode:[userfaultfd]"),
/// set O_NONBLOCK: the kernel reports a blocking uffd as EPOLLERR and the
/// fault threads read without blocking. The flag is on the open file
/// description, shared with whoever else holds it (it is the mode
/// Firecracker opens its uffd with anyway).
absl::StatusOr<base::UniqueFd> UffdAdopt(int fd);

/// UFFDIO_API: handshake, requesting `features`. On success `*features` and
/// `*ioctls` hold what the kernel reports. May be called once per fd.
absl::Status UffdApi(int fd, uint64_t* features, uint64_t* ioctls);

/// UFFDIO_REGISTER of [start, start + len) with `mode`
/// (UFFDIO_REGISTER_MODE_*); `*ioctls` receives the ioctls allowed on it.
absl::Status UffdRegister(int fd, uint64_t start, uint64_t len, uint64_t mode,
                          uint64_t* ioctls);

/// UFFDIO_UNREGISTER of [start, start + len).
absl::Status UffdUnregister(int fd, uint64_t start, uint64_t len);

/// UFFDIO_COPY of `len` bytes from `src` to `dst` with `mode`
/// (UFFDIO_COPY_MODE_WP maps the page read-only). Returns 0 or an errno:
/// EEXIST when the page is already mapped (another thread resolved it; the
/// kernel does not wake on failure, so the caller wakes), EAGAIN when a
/// non-cooperative event (REMOVE, ...) is changing the mapping and has not
/// been read yet (retry after the event is read), ESRCH when the process is
/// exiting.
///
/// With `len` over one page the kernel stops at the first page it cannot
/// fill: `*done` (when given) receives the bytes mapped before it, and the
/// call then answers EAGAIN if that is more than 0 (partial progress), else
/// the page's own error (EEXIST: that page is mapped).
int UffdCopy(int fd, uint64_t dst, const void* src, uint64_t len, uint64_t mode,
             int64_t* done = nullptr);

/// UFFDIO_ZEROPAGE: maps the shared zero page read-only (a later write is an
/// ordinary copy-on-write fault the kernel handles). Errors as UffdCopy.
int UffdZeropage(int fd, uint64_t start, uint64_t len, uint64_t mode,
                 int64_t* done = nullptr);

/// UFFDIO_WRITEPROTECT: `mode` UFFDIO_WRITEPROTECT_MODE_WP sets write
/// protection; 0 clears it and wakes threads blocked on the range (unless
/// UFFDIO_WRITEPROTECT_MODE_DONTWAKE).
int UffdWriteProtect(int fd, uint64_t start, uint64_t len, uint64_t mode);

/// UFFDIO_WAKE: wakes threads blocked on faults in the range.
int UffdWake(int fd, uint64_t start, uint64_t len);

/// UFFDIO_CONTINUE: resolves a MINOR fault by mapping the existing page-cache
/// page (shmem/memfd backing only).
int UffdContinue(int fd, uint64_t start, uint64_t len, uint64_t mode);

/// read(2) of up to `max` messages: on a blocking fd it sleeps until the
/// first one and returns with every message pending then (up to `max`).
/// Returns the number of messages, 0 when none are pending on a
/// non-blocking fd (EAGAIN), or -errno.
ssize_t UffdRead(int fd, uffd_msg* msgs, size_t max);

/// Sets or clears O_NONBLOCK on the uffd's open file (fcntl F_SETFL).
absl::Status UffdSetNonblocking(int fd, bool on);

// ---- Waking fault threads on an adopted uffd (another process's: no page
// of this process can be registered with it to wake a blocked read) ----

/// eventfd(2), close-on-exec, non-blocking.
absl::StatusOr<base::UniqueFd> EventfdCreate();
/// Adds `value` to the eventfd's counter (it stays readable until drained).
absl::Status EventfdWrite(int fd, uint64_t value);
/// Resets the counter to 0 (a read; nothing to read is fine).
void EventfdDrain(int fd);
/// poll(2) on a non-blocking uffd and a stop eventfd until one is readable:
/// 1 when the stop fd is, 0 when the uffd is (or hung up: the VM is gone),
/// -errno on failure. EINTR is retried.
int PollUffdOrStop(int uffd, int stop_fd);

}  // namespace ssihv::pager::sys

#endif  // SSIHV_PAGER_SYS_UFFD_H_
