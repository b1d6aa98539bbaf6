// Whole-file reads and crash-safe writes.
#ifndef SSIHV_BASE_FILE_UTIL_H_
#define SSIHV_BASE_FILE_UTIL_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace ssihv::base {

/// Reads the whole file; the error names the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

/// Reads a file holding a secret (the cluster secret, the API token), named
/// in messages by its config key: "<key> <path>: ...". Refuses anything but
/// a regular file (InvalidArgument), a file that group or others may read or
/// write (PermissionDenied, saying to run chmod 600), and a file larger than
/// `max_bytes` (InvalidArgument). An open error is the errno status
/// (NotFound for a missing file).
absl::StatusOr<std::string> ReadPrivateFile(absl::string_view key,
                                            const std::string& path,
                                            size_t max_bytes);

/// Writes `contents` to a temporary file beside `path`, fsyncs it and renames
/// it over `path`, so a reader sees either the old file or the whole new one.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

}  // namespace ssihv::base

#endif  // SSIHV_BASE_FILE_UTIL_H_
