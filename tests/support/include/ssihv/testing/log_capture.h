// Captures what base::Log writes while alive, for tests that check a
// library's messages.
#ifndef SSIHV_TESTING_LOG_CAPTURE_H_
#define SSIHV_TESTING_LOG_CAPTURE_H_

#include <mutex>
#include <string>
#include <vector>

namespace ssihv::testing {

/// Installs itself as the log sink; removes the sink when destroyed (one
/// capture at a time).
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  /// True when a captured line contains `needle`.
  bool Contains(const std::string& needle) const;
  /// Every captured line, each ended by '\n'.
  std::string All() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_LOG_CAPTURE_H_
