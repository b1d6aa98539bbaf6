// ssihv-uffd-handler as a child process, for tests and benchmarks: started
// with a command line, its stderr collected by a reader thread so that a
// caller can wait for a log line (an event, not a sleep).
#ifndef SSIHV_APPS_UFFD_HANDLER_TESTS_HANDLER_PROCESS_H_
#define SSIHV_APPS_UFFD_HANDLER_TESTS_HANDLER_PROCESS_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace ssihv::fc_client {

class HandlerProcess {
 public:
  /// Runs `binary` with `args`; stdout and stderr go to the log. With
  /// `cpu` >= 0 the child is pinned to that CPU.
  static absl::StatusOr<std::unique_ptr<HandlerProcess>> Start(
      const std::string& binary, const std::vector<std::string>& args,
      int cpu = -1);
  /// Kills the child (SIGKILL) if it still runs.
  ~HandlerProcess();

  /// Waits up to `timeout_s` until the log contains `text` at or after
  /// byte `from`; returns the offset just past it, or -1 on timeout or
  /// when the process exited without printing it.
  int64_t WaitForLog(const std::string& text, int64_t from = 0,
                     double timeout_s = 30);
  std::string Log() const;

  /// Sends `sig`; waits up to `timeout_s` for the exit. The exit status
  /// (128 + signal when killed by one), or -1 on timeout.
  int Signal(int sig, double timeout_s = 30);
  /// Waits up to `timeout_s` for an exit on its own; as Signal.
  int Wait(double timeout_s = 30);
  bool Running();
  pid_t pid() const { return pid_; }

 private:
  HandlerProcess() = default;
  void ReadLog(int fd);

  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;
  bool eof_ = false;
};

}  // namespace ssihv::fc_client

#endif  // SSIHV_APPS_UFFD_HANDLER_TESTS_HANDLER_PROCESS_H_
