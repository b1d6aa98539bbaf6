// Adversities for the DSM stress's history mode, each switchable from the
// command line (dsm_stress --sigstop / --hogs / --netem / --kill):
//
// * NetemNamespace: a private network namespace (ip netns) whose loopback
//   delays every packet (tc qdisc netem); the driver enters it before it
//   picks ports and forks the nodes, so the nodes' only traffic is on that
//   loopback and nothing outside the namespace is touched.
// * CpuHogs: processes spinning on the CPU for the whole run.
// * Adversary: a thread of the driver that SIGSTOPs a random node process
//   for a random time and SIGCONTs it, over and over, and optionally
//   SIGKILLs one node in the middle of the run, reaps it (a fenced death)
//   and tells the survivors to declare it dead.
#ifndef SSIHV_TESTS_DSM_ADVERSITY_H_
#define SSIHV_TESTS_DSM_ADVERSITY_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::dsm_stress {

class NetemNamespace {
 public:
  /// Creates namespace ssihv-dsm-<pid>, brings its loopback up, adds
  /// `netem <spec>` to it and moves the calling thread into it. The error
  /// names the command that failed (iproute2 missing, no CAP_NET_ADMIN, no
  /// sch_netem).
  static absl::StatusOr<std::unique_ptr<NetemNamespace>> Enter(
      const std::string& spec);
  /// Returns the thread to its namespace and deletes this one.
  ~NetemNamespace();
  const std::string& name() const { return name_; }

 private:
  NetemNamespace(std::string name, base::UniqueFd home)
      : name_(std::move(name)), home_(std::move(home)) {}
  std::string name_;
  base::UniqueFd home_;  // the namespace we came from
};

/// `count` processes spinning until the object dies.
class CpuHogs {
 public:
  explicit CpuHogs(int count);
  ~CpuHogs();
  CpuHogs(const CpuHogs&) = delete;
  CpuHogs& operator=(const CpuHogs&) = delete;

 private:
  std::vector<pid_t> pids_;
};

class Adversary {
 public:
  struct Options {
    int sigstop_max_ms = 0;
    bool kill_node = false;
    absl::Duration run = absl::Seconds(1);
    uint64_t seed = 1;
  };
  /// `pids`: the node processes; `declare_dead(victim)` tells the
  /// survivors (called after the victim was reaped).
  Adversary(Options options, std::vector<pid_t> pids,
            std::function<void(int)> declare_dead);
  /// Continues every stopped node and joins the thread.
  ~Adversary();

  void Start();
  void Stop();
  /// The node killed (-1: none yet). Set before the SIGKILL.
  int killed() const { return killed_.load(std::memory_order_acquire); }
  uint64_t stops() const { return stops_.load(std::memory_order_relaxed); }

 private:
  void Run();
  /// Sleeps up to `d`; false when stopping.
  bool Sleep(absl::Duration d);
  void KillOne(std::mt19937_64& rng);

  const Options options_;
  const std::vector<pid_t> pids_;
  const std::function<void(int)> declare_dead_;
  std::atomic<bool> stop_{false};
  std::atomic<int> killed_{-1};
  std::atomic<uint64_t> stops_{0};
  std::thread thread_;
};

}  // namespace ssihv::dsm_stress

#endif  // SSIHV_TESTS_DSM_ADVERSITY_H_
