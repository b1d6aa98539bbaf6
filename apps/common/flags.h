// Command lines of the front ends, table-driven: "--flag value",
// "--flag=value" and value-less switches; errors name the flag.
#ifndef SSIHV_APPS_COMMON_FLAGS_H_
#define SSIHV_APPS_COMMON_FLAGS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ssihv::apps {

struct FlagSpec {
  std::string name;         ///< "--socket"
  std::string alias;        ///< "-h", or empty
  bool takes_value = true;  ///< false: a switch ("--once")
  /// Stores the value ("" for a switch); an error is prefixed with the flag.
  std::function<absl::Status(const std::string& value)> set;
};

/// Applies `args` (argv without argv[0]) to `specs`. InvalidArgument for an
/// unknown argument, a missing or empty value, or what a setter returns:
/// "--fault-threads: '0' is not a number in 1..64".
absl::Status ParseFlags(const std::vector<std::string>& args,
                        const std::vector<FlagSpec>& specs);

/// A setter for a string flag.
std::function<absl::Status(const std::string&)> StringFlag(std::string* out);
/// A setter for an integer flag in [lo, hi].
std::function<absl::Status(const std::string&)> IntFlag(int* out, int lo,
                                                        int hi);
/// A setter for a switch.
std::function<absl::Status(const std::string&)> BoolFlag(bool* out);

}  // namespace ssihv::apps

#endif  // SSIHV_APPS_COMMON_FLAGS_H_
