// Maps errno values to absl::Status codes with a message that names the
// failing operation, e.g. "KVM_SET_USER_MEMORY_REGION slot=3: Invalid argument".
#ifndef SSIHV_BASE_ERRNO_STATUS_H_
#define SSIHV_BASE_ERRNO_STATUS_H_

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace ssihv::base {

/// The status code for an errno value: ENOENT/ENODEV -> NotFound,
/// EPERM/EACCES -> PermissionDenied, ENOSYS/EOPNOTSUPP -> Unimplemented,
/// EINTR/EAGAIN -> Unavailable, EEXIST -> AlreadyExists, EINVAL -> InvalidArgument,
/// ENOMEM/ENOSPC -> ResourceExhausted, anything else -> Internal.
absl::StatusCode ErrnoToCode(int err);

/// A status for `err` whose message is "<operation>: <strerror(err)>".
/// `err` must be non-zero.
absl::Status ErrnoStatus(int err, absl::string_view operation);

/// ErrnoStatus(errno, operation); call it right after the failing call.
absl::Status LastErrnoStatus(absl::string_view operation);

}  // namespace ssihv::base

#endif  // SSIHV_BASE_ERRNO_STATUS_H_
