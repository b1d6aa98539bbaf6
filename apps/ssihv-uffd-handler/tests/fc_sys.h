// The Firecracker-style test client's raw system calls, one function each:
// the userfaultfd it creates and registers, and the Unix socket it hands
// the uffd over. fc_client.cc goes through these (the house rule: raw
// ioctls in one sys file per component).
#ifndef SSIHV_APPS_UFFD_HANDLER_TESTS_FC_SYS_H_
#define SSIHV_APPS_UFFD_HANDLER_TESTS_FC_SYS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::fc_client::sys {

/// A userfaultfd from /dev/userfaultfd (USERFAULTFD_IOC_NEW), else the
/// userfaultfd(2) syscall; O_CLOEXEC | O_NONBLOCK as Firecracker opens it.
absl::StatusOr<base::UniqueFd> OpenUffd();

/// UFFDIO_API requesting `features`.
absl::Status UffdApi(int uffd, uint64_t features);

/// UFFDIO_REGISTER of [start, start + len) in MISSING mode.
absl::Status UffdRegisterMissing(int uffd, uint64_t start, uint64_t len);

/// socket(AF_UNIX, SOCK_STREAM) + connect to `path`.
absl::StatusOr<base::UniqueFd> ConnectUnix(const std::string& path);

/// One sendmsg of `body` with `fds` as SCM_RIGHTS (none when empty);
/// an error unless the whole body went.
absl::Status SendWithFds(int conn, const std::string& body,
                         const std::vector<int>& fds);

}  // namespace ssihv::fc_client::sys

#endif  // SSIHV_APPS_UFFD_HANDLER_TESTS_FC_SYS_H_
