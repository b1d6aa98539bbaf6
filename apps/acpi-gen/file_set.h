// Writes a set of files into one directory all-or-nothing: every file is
// first written and fsync'ed under a temporary name, and only when all of
// them are complete are they renamed into place. A failure at any point
// removes everything this call created, so a directory never holds a
// partial table set from a failed run.
#ifndef SSIHV_APPS_ACPI_GEN_FILE_SET_H_
#define SSIHV_APPS_ACPI_GEN_FILE_SET_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace ssihv::acpigen {

struct OutputFile {
  std::string name;  // a plain file name, no '/'
  std::vector<uint8_t> contents;
};

/// NotFound if `dir` does not exist, FailedPrecondition if it is not a
/// directory, else the errno Status of the first failing call, naming the
/// path. Files that already existed under a final name and were replaced
/// before a later rename failed cannot be restored; the rename phase only
/// fails on I/O errors or a name occupied by a directory.
absl::Status WriteFileSet(const std::string& dir,
                          const std::vector<OutputFile>& files);

}  // namespace ssihv::acpigen

#endif  // SSIHV_APPS_ACPI_GEN_FILE_SET_H_
