#include "ssihv/base/errno_status.h"

#include <cerrno>
#include <catch2/catch.hpp>

using ssihv::base::ErrnoStatus;
using ssihv::base::ErrnoToCode;

TEST_CASE("errno values map to the documented status codes") {
  CHECK(ErrnoToCode(ENOENT) == absl::StatusCode::kNotFound);
  CHECK(ErrnoToCode(ENODEV) == absl::StatusCode::kNotFound);
  CHECK(ErrnoToCode(EPERM) == absl::StatusCode::kPermissionDenied);
  CHECK(ErrnoToCode(EACCES) == absl::StatusCode::kPermissionDenied);
  CHECK(ErrnoToCode(ENOSYS) == absl::StatusCode::kUnimplemented);
  CHECK(ErrnoToCode(EOPNOTSUPP) == absl::StatusCode::kUnimplemented);
  CHECK(ErrnoToCode(EINTR) == absl::StatusCode::kUnavailable);
  CHECK(ErrnoToCode(EAGAIN) == absl::StatusCode::kUnavailable);
  CHECK(ErrnoToCode(EEXIST) == absl::StatusCode::kAlreadyExists);
  CHECK(ErrnoToCode(EINVAL) == absl::StatusCode::kInvalidArgument);
  CHECK(ErrnoToCode(EIO) == absl::StatusCode::kInternal);
}

TEST_CASE("errno status message names the operation and the error") {
  absl::Status st = ErrnoStatus(EINVAL, "KVM_SET_USER_MEMORY_REGION slot=3");
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(st.message() == "KVM_SET_USER_MEMORY_REGION slot=3: Invalid argument");
}
