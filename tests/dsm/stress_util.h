// What the stress's two workloads share (stress.cc: counters and slots;
// history_run.cc: checked register histories): line-oriented pipes to the
// node processes, the cluster files, and forking a node.
#ifndef SSIHV_TESTS_DSM_STRESS_UTIL_H_
#define SSIHV_TESTS_DSM_STRESS_UTIL_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "stress.h"

namespace ssihv::dsm_stress {

class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  /// The next line without '\n'; DeadlineExceeded / Unavailable (EOF).
  absl::StatusOr<std::string> Next(absl::Time deadline);
  /// A line if one is complete or arrives within `timeout`, else NotFound.
  absl::StatusOr<std::string> Poll(absl::Duration timeout);

 private:
  int fd_;
  std::string buf_;
};

/// Writes `line` and '\n' (ignores a closed pipe: the reader is gone).
void WriteLine(int fd, const std::string& line);

/// A forked node process and its pipes.
struct Child {
  pid_t pid = -1;
  int cmd = -1;     // parent writes
  int report = -1;  // parent reads
  std::unique_ptr<LineReader> reader;
};

/// Forks `node_main(cmd_fd, report_fd)` (its return value is the exit
/// status); the child dies with the parent.
absl::StatusOr<Child> SpawnNode(std::function<int(int, int)> node_main);

/// How node process `pid` ended, for a node whose pipe closed while it was
/// expected to report: reaps it (waiting up to `wait`) and says "exited
/// with status N" or "killed by signal N (NAME)", or that it still runs.
std::string DescribeEnd(pid_t pid, absl::Duration wait);

/// Kills (if `kill`) and reaps the children, closes their pipes; an exit
/// status other than 0 is an error unless the run already failed or the
/// node was killed on purpose (`killed` pid).
absl::Status ReapNodes(std::vector<Child>& children, bool kill,
                       pid_t killed = -1);

}  // namespace ssihv::dsm_stress

#endif  // SSIHV_TESTS_DSM_STRESS_UTIL_H_
