#include "adversity.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::dsm_stress {
namespace {

/// Runs argv (no shell) with stdout discarded; OK on exit status 0.
absl::Status RunCommand(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid < 0) return base::LastErrnoStatus("fork");
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, 1);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "`", absl::StrJoin(argv, " "), "` failed (status ", status,
      "): netem needs iproute2, CAP_NET_ADMIN and the sch_netem module"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetemNamespace>> NetemNamespace::Enter(
    const std::string& spec) {
  const std::string name = absl::StrCat("ssihv-dsm-", ::getpid());
  base::UniqueFd home(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!home.valid()) return base::LastErrnoStatus("open /proc/self/ns/net");
  if (absl::Status st = RunCommand({"ip", "netns", "add", name}); !st.ok()) {
    return st;
  }
  std::unique_ptr<NetemNamespace> ns(new NetemNamespace(name, std::move(home)));
  absl::Status st = RunCommand({"ip", "-n", name, "link", "set", "lo", "up"});
  std::vector<std::string> tc = {"tc",  "-n", name,   "qdisc", "add",
                                 "dev", "lo", "root", "netem"};
  for (absl::string_view w : absl::StrSplit(spec, ' ', absl::SkipEmpty())) {
    tc.emplace_back(w);
  }
  if (st.ok()) st = RunCommand(tc);
  if (st.ok()) {
    base::UniqueFd fd(::open(absl::StrCat("/run/netns/", name).c_str(),
                             O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || ::setns(fd.get(), CLONE_NEWNET) != 0) {
      st = base::LastErrnoStatus("setns into " + name);
    }
  }
  if (!st.ok()) return st;  // the destructor deletes the namespace
  return ns;
}

NetemNamespace::~NetemNamespace() {
  if (home_.valid()) (void)::setns(home_.get(), CLONE_NEWNET);
  (void)RunCommand({"ip", "netns", "del", name_});
}

CpuHogs::CpuHogs(int count) {
  for (int i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (;;) asm volatile("" ::: "memory");
    }
    if (pid > 0) pids_.push_back(pid);
  }
}

CpuHogs::~CpuHogs() {
  for (pid_t pid : pids_) ::kill(pid, SIGKILL);
  for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
}

Adversary::Adversary(Options options, std::vector<pid_t> pids,
                     std::function<void(int)> declare_dead)
    : options_(options),
      pids_(std::move(pids)),
      declare_dead_(std::move(declare_dead)) {}

Adversary::~Adversary() { Stop(); }

void Adversary::Start() {
  if (options_.sigstop_max_ms > 0 || options_.kill_node) {
    thread_ = std::thread([this] { Run(); });
  }
}

void Adversary::Stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

bool Adversary::Sleep(absl::Duration d) {
  const absl::Time until = absl::Now() + d;
  while (!stop_.load(std::memory_order_acquire)) {
    const absl::Duration left = until - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    absl::SleepFor(std::min(left, absl::Milliseconds(5)));
  }
  return false;
}

void Adversary::KillOne(std::mt19937_64& rng) {
  const int victim = static_cast<int>(rng() % pids_.size());
  killed_.store(victim, std::memory_order_release);
  ::kill(pids_[victim], SIGKILL);
  ::waitpid(pids_[victim], nullptr, 0);  // fenced: it cannot send any more
  declare_dead_(victim);
}

void Adversary::Run() {
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ull + 17);
  const absl::Time start = absl::Now();
  // The kill lands somewhere in the middle half of the run.
  const absl::Time kill_at =
      start + options_.run / 4 +
      options_.run / 2 * (static_cast<double>(rng() % 1000) / 1000.0);
  const int max_ms = options_.sigstop_max_ms;
  while (!stop_.load(std::memory_order_acquire)) {
    if (options_.kill_node && killed() < 0 && absl::Now() >= kill_at) {
      KillOne(rng);
    }
    if (max_ms <= 0) {
      if (!Sleep(absl::Milliseconds(2))) return;
      continue;
    }
    // A stop every 0..2*max ms, 1..max ms long, of a live node.
    if (!Sleep(absl::Milliseconds(static_cast<int64_t>(rng() % (2 * max_ms)))))
      return;
    const int n = static_cast<int>(rng() % pids_.size());
    if (n == killed()) continue;
    ::kill(pids_[n], SIGSTOP);
    stops_.fetch_add(1, std::memory_order_relaxed);
    const absl::Duration d =
        absl::Milliseconds(1 + static_cast<int64_t>(rng() % max_ms));
    const absl::Time until = absl::Now() + d;
    while (absl::Now() < until && !stop_.load(std::memory_order_acquire)) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ::kill(pids_[n], SIGCONT);
  }
}

}  // namespace ssihv::dsm_stress
