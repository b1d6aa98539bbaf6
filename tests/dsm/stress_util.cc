#include "stress_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::dsm_stress {

absl::StatusOr<std::string> LineReader::Next(absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("no line in time");
    }
    absl::StatusOr<std::string> line = Poll(std::min(left, absl::Seconds(1)));
    if (!absl::IsNotFound(line.status())) return line;
  }
}

absl::StatusOr<std::string> LineReader::Poll(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms < 0) return absl::NotFoundError("no line yet");
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(ms));
    if (rc < 0 && errno != EINTR) return base::LastErrnoStatus("poll");
    if (rc <= 0) {
      if (ms == 0) return absl::NotFoundError("no line yet");
      continue;
    }
    char chunk[65536];
    const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
    if (n == 0) return absl::UnavailableError("pipe closed");
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::LastErrnoStatus("read pipe");
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

void WriteLine(int fd, const std::string& line) {
  std::string s = line + "\n";
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

absl::StatusOr<Child> SpawnNode(std::function<int(int, int)> node_main) {
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) < 0 || ::pipe2(from_child, O_CLOEXEC) < 0) {
    return base::LastErrnoStatus("pipe2");
  }
  const pid_t pid = ::fork();
  if (pid < 0) return base::LastErrnoStatus("fork");
  if (pid == 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the driver
    // A node the adversity holds stopped gets SIGHUP (then SIGCONT) if the
    // job that started the driver ends meanwhile (POSIX's orphaned process
    // group rule: a campaign launched from a shell that exits). Its
    // lifetime is the driver's (above), so the hang-up is not for it.
    ::signal(SIGHUP, SIG_IGN);
    _exit(node_main(to_child[0], from_child[1]));
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  Child c;
  c.pid = pid;
  c.cmd = to_child[1];
  c.report = from_child[0];
  c.reader = std::make_unique<LineReader>(c.report);
  return c;
}

namespace {

/// "exited with status N" or "killed by signal N (NAME[, core dumped])".
std::string WaitStatusText(int status) {
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)),
                        WCOREDUMP(status) ? ", core dumped" : "", ")");
  }
  return absl::StrCat("exited with status ", WEXITSTATUS(status));
}

}  // namespace

std::string DescribeEnd(pid_t pid, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return absl::StrCat("process ", pid, " already reaped");
    if (absl::Now() >= deadline) {
      return absl::StrCat("process ", pid, " still runs");
    }
    absl::SleepFor(absl::Milliseconds(10));  // polling an exit, not timing
  }
  return absl::StrCat("process ", pid, " ", WaitStatusText(status));
}

absl::Status ReapNodes(std::vector<Child>& children, bool kill, pid_t killed) {
  absl::Status st;
  for (Child& c : children) {
    if (kill) ::kill(c.pid, SIGKILL);
    int status = 0;
    if (c.pid != killed) ::waitpid(c.pid, &status, 0);
    if (!kill && c.pid != killed &&
        !(WIFEXITED(status) && WEXITSTATUS(status) == 0) && st.ok()) {
      st = absl::InternalError(
          absl::StrCat("node process ", c.pid, " ", WaitStatusText(status)));
    }
    ::close(c.cmd);
    ::close(c.report);
  }
  return st;
}

}  // namespace ssihv::dsm_stress
