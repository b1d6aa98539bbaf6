#include "launcher.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/cluster/config.h"

namespace ssihv::launch {
namespace {

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
// ssihv-vmm's statuses for a bad command line and a failed setup
// (apps/ssihv-vmm/options.h): a node that ends with one of these never ran
// the guest, so the others are stopped at once instead of waiting for it.
constexpr int kVmmUsage = 2;
constexpr int kVmmSetup = 3;
// The SLIT distance between the nodes of the launcher's default cluster:
// above cluster::kGuestBalanceDistance (DefaultLaunchConfigJson).
constexpr uint32_t kLaunchRemoteDistance = 100;

struct Node {
  uint32_t id = 0;
  pid_t pid = -1;
  base::UniqueFd pidfd;
  base::UniqueFd out;   // nodes > 0: their stdout + stderr
  std::string partial;  // relayed text not yet ended by a newline
  std::optional<int> status;
};

int StatusOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;
}

void WriteAll(int fd, absl::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<size_t>(n));
  }
}

void Say(absl::string_view what) {
  WriteAll(2, absl::StrCat("ssihv-launch: ", what, "\n"));
}

// Relays whole lines of a node's output to stderr, prefixed; on EOF the
// rest. Returns false at EOF.
bool Relay(Node& node) {
  char buf[4096];
  ssize_t n = ::read(node.out.get(), buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n > 0) node.partial.append(buf, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t nl; (nl = node.partial.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    WriteAll(
        2, absl::StrCat(
               "node ", node.id, ": ",
               absl::string_view(node.partial).substr(start, nl + 1 - start)));
  }
  node.partial.erase(0, start);
  if (n > 0) return true;
  if (!node.partial.empty()) {
    WriteAll(2, absl::StrCat("node ", node.id, ": ", node.partial, "\n"));
    node.partial.clear();
  }
  return false;
}

absl::StatusOr<base::UniqueFd> PidFd(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return base::ErrnoStatus(errno, absl::StrCat("pidfd_open ", pid));
  return base::UniqueFd(fd);
}

// fork + exec of one node. Nodes > 0 get /dev/null as stdin and a pipe as
// stdout and stderr; node 0 keeps the launcher's terminal.
absl::Status Spawn(const std::string& vmm, std::vector<std::string> args,
                   const sigset_t& old_mask, Node& node) {
  int pipe_fds[2] = {-1, -1};
  if (node.id != 0 && ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return base::ErrnoStatus(errno, "pipe2");
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(vmm.c_str()));
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return base::ErrnoStatus(errno, "fork");
  if (pid == 0) {
    // The child: default signal handling, the caller's mask, its fds.
    for (int s : kForwardedSignals) ::signal(s, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    if (node.id != 0) {
      int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) ::dup2(null_fd, 0);
      ::dup2(pipe_fds[1], 1);
      ::dup2(pipe_fds[1], 2);
    }
    ::execv(vmm.c_str(), argv.data());
    std::fprintf(stderr, "ssihv-launch: exec %s: %s\n", vmm.c_str(),
                 std::strerror(errno));
    ::_exit(127);
  }
  node.pid = pid;
  if (node.id != 0) {
    ::close(pipe_fds[1]);
    node.out = base::UniqueFd(pipe_fds[0]);
  }
  SSIHV_ASSIGN_OR_RETURN(node.pidfd, PidFd(pid));
  return absl::OkStatus();
}

void SignalAll(const std::vector<Node>& nodes, int sig) {
  for (const Node& n : nodes) {
    if (!n.status) ::kill(n.pid, sig);
  }
}

// The event loop: children's exits (pidfds), their output (pipes) and the
// signals sent to the launcher (signalfd), until every child is gone.
int Supervise(std::vector<Node>& nodes, int sigfd, std::chrono::seconds grace) {
  std::optional<int> first_setup_failure;
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  bool killed = false;
  for (;;) {
    std::vector<pollfd> fds = {{sigfd, POLLIN, 0}};
    std::vector<std::pair<Node*, bool>> who = {{nullptr, false}};
    bool running = false;
    for (Node& n : nodes) {
      if (!n.status) {
        fds.push_back({n.pidfd.get(), POLLIN, 0});
        who.push_back({&n, true});
        running = true;
      }
      if (n.out.valid()) {
        fds.push_back({n.out.get(), POLLIN, 0});
        who.push_back({&n, false});
      }
    }
    if (!running && fds.size() == 1) break;
    int timeout_ms = -1;
    if (kill_at && !killed) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *kill_at - std::chrono::steady_clock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    int r = ::poll(fds.data(), fds.size(), timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 && kill_at && !killed) {
      Say(absl::StrCat("nodes still running ", grace.count(),
                       " s after node 0 ended: killing them"));
      SignalAll(nodes, SIGKILL);
      killed = true;
      continue;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      if (i == 0) {
        signalfd_siginfo info;
        if (::read(sigfd, &info, sizeof(info)) == sizeof(info)) {
          SignalAll(nodes, static_cast<int>(info.ssi_signo));
        }
        continue;
      }
      Node& n = *who[i].first;
      if (!who[i].second) {
        if (!Relay(n)) n.out.Reset();
        continue;
      }
      int st = 0;
      if (::waitpid(n.pid, &st, WNOHANG) != n.pid) continue;
      n.status = StatusOf(st);
      if (n.id != 0) {
        Say(absl::StrCat("node ", n.id, " exited with status ", *n.status));
      }
      if ((*n.status == kVmmUsage || *n.status == kVmmSetup) &&
          !first_setup_failure) {
        first_setup_failure = *n.status;
        SignalAll(nodes, SIGTERM);
      }
      if (n.id == 0 && !kill_at) {
        kill_at = std::chrono::steady_clock::now() + grace;
      }
    }
  }
  // A node that could not even start stopped the others: its status says
  // more than node 0's 130.
  int node0 = *nodes[0].status;
  if (first_setup_failure && node0 != kVmmUsage && node0 != kVmmSetup) {
    return *first_setup_failure;
  }
  return node0;
}

}  // namespace

std::string LaunchUsage() {
  return R"(Usage: ssihv-launch --config cluster.json [--vmm PATH] [--grace S] [ssihv-vmm args...]

Starts one ssihv-vmm process per node of the cluster config on this machine
(`ssihv-vmm --config cluster.json <args> --node K`): one guest across all of
them. Node 0 owns the terminal (the guest's console); the other nodes'
output goes to stderr, each line prefixed with "node K: ". SIGINT, SIGTERM,
SIGHUP and SIGQUIT are passed to every node. Every argument the launcher does
not know goes to each ssihv-vmm (--kernel, --initrd, --append, ...).

  --config FILE   the cluster config (docs/CLUSTER_CONFIG.md); without it,
                  ssihv-vmm's embedded 2-node default with the nodes at
                  SLIT distance 100 (far: the guest keeps tasks on their
                  node). A config without a
                  secret_file gets a one-time random secret (0600, in a
                  private temporary folder removed at exit).
  --vmm PATH      the ssihv-vmm binary (default: the one beside ssihv-launch)
  --grace S       seconds the other nodes may take to stop after node 0
                  ended before they are killed (default 20)
  --help          this text

Exit status: node 0's (docs/VMM.md); when another node failed to start
(status 2 or 3) and the others were stopped for it, that node's status;
2 bad launcher arguments; 3 a node could not be started.
For several machines run `ssihv-vmm --config cluster.json --node K` on each
host with the same config file (docs/VMM.md).
)";
}

absl::StatusOr<LaunchOptions> ParseLaunchArgs(
    const std::vector<std::string>& args) {
  LaunchOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](absl::string_view flag) -> absl::StatusOr<std::string> {
      if (a.size() > flag.size() && a[flag.size()] == '=') {
        return a.substr(flag.size() + 1);
      }
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": needs a value"));
      }
      return args[++i];
    };
    auto is = [&](absl::string_view flag) {
      return a == flag || absl::StartsWith(a, absl::StrCat(flag, "="));
    };
    if (a == "--help" || a == "-h") {
      o.help = true;
    } else if (is("--config")) {
      SSIHV_ASSIGN_OR_RETURN(o.config_path, value("--config"));
    } else if (is("--vmm")) {
      SSIHV_ASSIGN_OR_RETURN(o.vmm, value("--vmm"));
    } else if (is("--grace")) {
      SSIHV_ASSIGN_OR_RETURN(std::string s, value("--grace"));
      int64_t secs = 0;
      if (!absl::SimpleAtoi(s, &secs) || secs < 1 || secs > 3600) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--grace: '", s, "' is not a number of seconds in 1..3600"));
      }
      o.grace = std::chrono::seconds(secs);
    } else if (is("--node")) {
      return absl::InvalidArgumentError(
          "--node: the launcher starts every node itself (run ssihv-vmm "
          "--node K to start one node)");
    } else {
      o.vmm_args.push_back(a);
    }
  }
  return o;
}

absl::StatusOr<std::string> FindVmm() {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.erase(dir.rfind('/'));
    for (const std::string& c :
         {dir + "/ssihv-vmm", dir + "/../ssihv-vmm/ssihv-vmm"}) {
      if (::access(c.c_str(), X_OK) == 0) return c;
    }
  }
  const char* path = ::getenv("PATH");
  for (absl::string_view d : absl::StrSplit(path ? path : "", ':')) {
    std::string c = absl::StrCat(d, "/ssihv-vmm");
    if (!d.empty() && ::access(c.c_str(), X_OK) == 0) return c;
  }
  return absl::NotFoundError(
      "no ssihv-vmm beside ssihv-launch nor on PATH (use --vmm PATH)");
}

// The embedded default keeps distance 20 (a one-process VM's NUMA view); at
// that distance a guest across processes moves tasks between nodes on fork,
// exec and wake-up as if they were near, each move carrying the task's
// pages between the processes.
std::string DefaultLaunchConfigJson() {
  cluster::ClusterConfig config = cluster::DefaultClusterConfig();
  for (size_t from = 0; from < config.distances.size(); ++from) {
    for (size_t to = 0; to < config.distances[from].size(); ++to) {
      if (from != to) config.distances[from][to] = kLaunchRemoteDistance;
    }
  }
  return cluster::ClusterConfigToJson(config);
}

absl::StatusOr<std::string> PrepareConfig(const std::string& config_path,
                                          const std::string& scratch_dir,
                                          std::string* note) {
  std::string text;
  if (config_path.empty()) {
    text = DefaultLaunchConfigJson();
  } else {
    SSIHV_ASSIGN_OR_RETURN(text, base::ReadFile(config_path));
  }
  absl::StatusOr<cluster::ClusterConfig> config =
      cluster::ParseClusterConfig(text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--config ", config_path.empty() ? "(embedded default)" : config_path,
        ": ", config.status().message()));
  }
  if (!config->secret_file.empty()) {
    *note = "";
    return config_path;
  }
  uint8_t raw[32];
  if (::getrandom(raw, sizeof(raw), 0) != static_cast<ssize_t>(sizeof(raw))) {
    return base::ErrnoStatus(errno, "getrandom (cluster secret)");
  }
  std::string secret;
  for (uint8_t b : raw) absl::StrAppend(&secret, absl::Hex(b, absl::kZeroPad2));
  const std::string secret_path = scratch_dir + "/secret";
  {
    base::UniqueFd fd(::open(secret_path.c_str(),
                             O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      return base::ErrnoStatus(errno, absl::StrCat("create ", secret_path));
    }
    WriteAll(fd.get(), secret + "\n");
  }
  nlohmann::json j = nlohmann::json::parse(text);
  j["secret_file"] = secret_path;
  const std::string out = scratch_dir + "/cluster.json";
  SSIHV_RETURN_IF_ERROR(base::WriteFileAtomically(out, j.dump(2) + "\n"));
  *note = absl::StrCat(
      "the config names no secret_file: the nodes use a "
      "one-time random secret (",
      secret_path, ")");
  return out;
}

absl::StatusOr<int> Launch(const LaunchOptions& options) {
  std::string vmm = options.vmm;
  if (vmm.empty()) {
    SSIHV_ASSIGN_OR_RETURN(vmm, FindVmm());
  }
  char scratch_template[] = "/tmp/ssihv-launch.XXXXXX";
  if (::mkdtemp(scratch_template) == nullptr) {
    return base::ErrnoStatus(errno, "mkdtemp /tmp/ssihv-launch.XXXXXX");
  }
  const std::string scratch = scratch_template;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      for (const char* f : {"/cluster.json", "/secret"}) {
        ::unlink((dir + f).c_str());
      }
      ::rmdir(dir.c_str());
    }
  } cleanup{scratch};
  std::string note;
  SSIHV_ASSIGN_OR_RETURN(std::string config,
                         PrepareConfig(options.config_path, scratch, &note));
  if (!note.empty()) Say(note);
  SSIHV_ASSIGN_OR_RETURN(cluster::ClusterConfig parsed,
                         config.empty()
                             ? absl::StatusOr<cluster::ClusterConfig>(
                                   cluster::DefaultClusterConfig())
                             : cluster::LoadClusterConfig(config));

  sigset_t forwarded, old_mask;
  sigemptyset(&forwarded);
  for (int s : kForwardedSignals) sigaddset(&forwarded, s);
  ::sigprocmask(SIG_BLOCK, &forwarded, &old_mask);
  base::UniqueFd sigfd(::signalfd(-1, &forwarded, SFD_CLOEXEC));
  if (!sigfd.valid()) return base::ErrnoStatus(errno, "signalfd");

  std::vector<Node> nodes(parsed.num_nodes());
  absl::Status spawned;
  for (uint32_t k = 0; k < nodes.size() && spawned.ok(); ++k) {
    nodes[k].id = k;
    std::vector<std::string> args;
    if (!config.empty()) args = {"--config", config};
    args.insert(args.end(), options.vmm_args.begin(), options.vmm_args.end());
    args.insert(args.end(), {"--node", std::to_string(k)});
    spawned = Spawn(vmm, args, old_mask, nodes[k]);
  }
  if (!spawned.ok()) {
    // Nothing half-started is left behind.
    for (Node& n : nodes) {
      if (n.pid > 0) {
        ::kill(n.pid, SIGKILL);
        ::waitpid(n.pid, nullptr, 0);
      }
    }
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return spawned;
  }
  Say(absl::StrCat("started ", nodes.size(), " nodes of ",
                   options.config_path.empty() ? "the embedded default cluster"
                                               : options.config_path,
                   " (", vmm, ")"));
  int status = Supervise(nodes, sigfd.get(), options.grace);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return status;
}

}  // namespace ssihv::launch
