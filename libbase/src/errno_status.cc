#include "ssihv/base/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace ssihv::base {

absl::StatusCode ErrnoToCode(int err) {
  switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
      return absl::StatusCode::kNotFound;
    case EPERM:
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::StatusCode::kUnimplemented;
    case EINTR:
    case EAGAIN:
      return absl::StatusCode::kUnavailable;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EINVAL:
    case E2BIG:
    case ERANGE:
      return absl::StatusCode::kInvalidArgument;
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status ErrnoStatus(int err, absl::string_view operation) {
  // strerror_r's GNU variant may return a static string rather than fill buf.
  char buf[128];
  const char* text = strerror_r(err, buf, sizeof(buf));
  return absl::Status(ErrnoToCode(err), absl::StrCat(operation, ": ", text));
}

absl::Status LastErrnoStatus(absl::string_view operation) {
  return ErrnoStatus(errno, operation);
}

}  // namespace ssihv::base
