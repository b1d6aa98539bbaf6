// Whole-file reads and crash-safe writes.
#ifndef SSIHV_BASE_FILE_UTIL_H_
#define SSIHV_BASE_FILE_UTIL_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace ssihv::base {

/// Reads the whole file; the error names the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

/// Writes `contents` to a temporary file beside `path`, fsyncs it and renames
/// it over `path`, so a reader sees either the old file or the whole new one.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

}  // namespace ssihv::base

#endif  // SSIHV_BASE_FILE_UTIL_H_
