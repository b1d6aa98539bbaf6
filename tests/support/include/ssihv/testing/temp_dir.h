// A directory under /tmp for one test's files, removed with its contents.
#ifndef SSIHV_TESTING_TEMP_DIR_H_
#define SSIHV_TESTING_TEMP_DIR_H_

#include <cstdint>
#include <string>
#include <vector>

namespace ssihv::testing {

class TempDir {
 public:
  /// mkdtemp of /tmp/`prefix`.XXXXXX (a Catch2 REQUIRE on failure).
  explicit TempDir(const std::string& prefix = "ssihv-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// Writes `bytes` (or `text`) to path/`name`; returns that path.
  std::string Write(const std::string& name,
                    const std::vector<uint8_t>& bytes) const;
  std::string Write(const std::string& name, const std::string& text) const;

  std::string path;
};

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_TEMP_DIR_H_
