// A child process for end-to-end tests: argv and extra environment in, its
// stdout and stderr collected by a reader thread, signals, and a bounded
// wait. Several can run at once (the nodes of a cluster).
#ifndef SSIHV_TESTING_SUBPROCESS_H_
#define SSIHV_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace ssihv::testing {

class Subprocess {
 public:
  /// Starts argv[0] (a path) with `env` ("NAME=value") added to this
  /// process's environment; stdin is `input` (then closed) or /dev/null.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv,
      const std::vector<std::string>& env = {}, const std::string& input = "");
  ~Subprocess();  // kills the child if it still runs
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig) const;
  /// Waits up to `timeout` for the exit; the status (128 + signal when
  /// killed), or nullopt on timeout (the child keeps running).
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  /// Waits until `text` appears in stdout or stderr (or the child's output
  /// ends, or `timeout`); true when it appeared.
  bool WaitForOutput(const std::string& text,
                     std::chrono::milliseconds timeout);
  std::string out() const;
  std::string err() const;

 private:
  Subprocess() = default;
  void ReadLoop(int out_fd, int err_fd);

  pid_t pid_ = -1;
  std::optional<int> status_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string out_, err_;
  bool output_closed_ = false;
};

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_SUBPROCESS_H_
