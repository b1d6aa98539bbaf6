// ssihvctl calibrate: one node's side (--node K, one process per host), or
// every node as a local process supervised here.
#include "calibrate.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "calibrate_node.h"
#include "ssihv/base/log.h"

namespace ssihv::ctl {
namespace {

void Fail(const std::string& what) {
  std::fprintf(stderr, "ssihvctl calibrate: %s\n", what.c_str());
}

// Checked before anything is measured: minutes of work must not end in
// "cannot write the output".
absl::Status CheckOutputDirectory(const std::string& out) {
  const size_t slash = out.rfind('/');
  const std::string dir = slash == std::string::npos
                              ? "."
                              : (slash == 0 ? "/" : out.substr(0, slash));
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--out ", out, ": directory ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// A secret for the local nodes when the config names none: they are
// children of this process, so it never needs a file.
absl::StatusOr<std::string> EphemeralSecret() {
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError("open /dev/urandom failed");
  char raw[32];
  const ssize_t n = ::read(fd, raw, sizeof(raw));
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof(raw))) {
    return absl::UnavailableError("read /dev/urandom failed");
  }
  return absl::BytesToHexString(absl::string_view(raw, sizeof(raw)));
}

int RunNode(const cluster::ClusterConfig& config, uint32_t self,
            const NodeRunOptions& o) {
  // The transport logs every connection and, at the end, every peer that
  // leaves: the normal course of a calibration. SSIHV_LOG_LEVEL shows them.
  if (std::getenv("SSIHV_LOG_LEVEL") == nullptr) {
    base::SetMinLogLevel(base::LogLevel::kError);
  }
  absl::Status st = RunCalibrationNode(config, self, o);
  if (!st.ok()) {
    Fail(absl::StrCat("node ", self, ": ", st.message()));
    return kExitCalibrate;
  }
  return kExitOk;
}

// Forks one process per node (node 0 alone writes `out`). On a fork
// failure the ones started are killed and fewer pids are returned.
std::vector<pid_t> SpawnNodes(const cluster::ClusterConfig& config,
                              const NodeRunOptions& o) {
  std::fflush(nullptr);  // nothing buffered may be written twice
  std::vector<pid_t> pids;
  for (uint32_t k = 0; k < config.num_nodes(); ++k) {
    const pid_t pid = ::fork();  // no thread exists yet in this process
    if (pid < 0) {
      Fail(absl::StrCat("fork: ", std::strerror(errno)));
      for (pid_t p : pids) ::kill(p, SIGKILL);
      break;
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      NodeRunOptions mine = o;
      if (k != 0) mine.out.clear();
      _exit(RunNode(config, k, mine));
    }
    pids.push_back(pid);
  }
  return pids;
}

// Reaps every node; the first failure kills the others (they would wait
// for the failed one until their own timeout), and so does `deadline`.
bool Supervise(const std::vector<pid_t>& pids, absl::Time deadline) {
  bool ok = true;
  bool killed = false;
  for (size_t running = pids.size(); running > 0;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      if (!killed && absl::Now() > deadline) {
        Fail("the node processes did not finish: killed");
        for (pid_t p : pids) ::kill(p, SIGKILL);
        ok = false;
        killed = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    --running;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    if (!killed) {
      const size_t k = std::find(pids.begin(), pids.end(), pid) - pids.begin();
      Fail(absl::StrCat(
          "node ", k, " ",
          WIFSIGNALED(status)
              ? absl::StrCat("was killed by signal ", WTERMSIG(status))
              : absl::StrCat("exited with status ", WEXITSTATUS(status)),
          ": stopping the others"));
      for (pid_t p : pids) {
        if (p != pid) ::kill(p, SIGKILL);
      }
      killed = true;
    }
    ok = false;
  }
  return ok;
}

// Every node of the config as a local process, supervised here.
int RunLocal(const cluster::ClusterConfig& config, NodeRunOptions o) {
  for (const cluster::NodeConfig& n : config.nodes) {
    if (n.address.empty()) {
      Fail(absl::StrCat("nodes[", n.id,
                        "].address: every node needs one (the transport "
                        "listens there)"));
      return kExitCalibrate;
    }
  }
  if (config.secret_file.empty()) {
    absl::StatusOr<std::string> secret = EphemeralSecret();
    if (!secret.ok()) {
      Fail(std::string(secret.status().message()));
      return kExitCalibrate;
    }
    o.secret = *secret;
  }
  const std::vector<pid_t> pids = SpawnNodes(config, o);
  // Each node has its own watchdog at o.timeout; this one is the backstop.
  const bool ok = Supervise(pids, absl::Now() + o.timeout + absl::Seconds(30));
  return ok && pids.size() == config.num_nodes() ? kExitOk : kExitCalibrate;
}

}  // namespace

int RunCalibrate(const CtlOptions& options) {
  absl::StatusOr<cluster::ClusterConfig> config =
      cluster::LoadClusterConfig(options.config_path);
  if (!config.ok()) {
    Fail(absl::StrCat("--config: ", config.status().message()));
    return kExitConfig;
  }
  if (options.node && *options.node >= config->num_nodes()) {
    Fail(absl::StrCat("--node ", *options.node, ": the config has ",
                      config->num_nodes(), " nodes"));
    return kExitUsage;
  }
  absl::StatusOr<CalibrationPlan> plan =
      PlanCalibration(*config, options.pages, options.local_mib);
  if (!plan.ok()) {
    Fail(std::string(plan.status().message()));
    return kExitConfig;
  }
  NodeRunOptions o;
  o.plan = *plan;
  o.out = options.out;
  o.threads = options.threads;
  o.timeout = options.calibrate_timeout;
  const bool writes = !options.node || *options.node == 0;
  if (writes) {
    absl::Status st = CheckOutputDirectory(o.out);
    if (!st.ok()) {
      Fail(std::string(st.message()));
      return kExitCalibrate;
    }
  }
  if (options.node) return RunNode(*config, *options.node, o);
  return RunLocal(*config, o);
}

}  // namespace ssihv::ctl
