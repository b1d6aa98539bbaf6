// A two- or three-node DSM cluster for the remote-fault benchmarks: node 1
// in this process, the home (node 0, and node 2 for a Shared home) in a
// forked process that rewrites pages on command (remote_bench.cc's
// comment says what each benchmark does with it).
#ifndef SSIHV_BENCH_PAGER_REMOTE_CLUSTER_H_
#define SSIHV_BENCH_PAGER_REMOTE_CLUSTER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench_util.h"
#include "ssihv/cluster/config.h"
#include "ssihv/pager/dsm_node.h"

namespace ssihv::bench {

inline constexpr uint64_t kRemoteWindow = 2048;  // pages read per rewrite
inline constexpr uint64_t kHomeMib = 64;
inline constexpr uint64_t kHomePages = kHomeMib * 1024 * 1024 / kPage;

/// What the home writes into `page` in rewrite `round`.
inline uint64_t Pattern(uint64_t round, uint64_t page) {
  return round << 32 | page;
}

/// A cluster config of `nodes` nodes on free 127.0.0.1 ports over
/// `transport`, its secret file in `dir` (node 0: kHomeMib of memory).
absl::StatusOr<cluster::ClusterConfig> RemoteConfig(const char* transport,
                                                    int nodes,
                                                    const std::string& dir);

/// With SSIHV_BENCH_STATS=1: the node's DsmNode::StatsJson() on stderr.
void PrintStats(pager::DsmNode& node);

struct RemoteOptions {
  const char* transport = "tcp";
  /// The home holds its pages Shared: node 2 (in the home's process) reads
  /// every page the home rewrites.
  bool shared = false;
  /// Node 1's DsmOptions::read_ahead_pages (0 for the benchmarks of one
  /// fault: their walks through the window would be served ahead).
  uint32_t read_ahead = 0;
  /// Node 1's DsmOptions::write_run_pages.
  uint32_t write_runs = pager::DsmOptions().write_run_pages;
  /// Node 1's DsmOptions::read_refresh (off but for BM_RemoteTickRead: the
  /// others read pages their home rewrote, which would soon be refreshed
  /// instead of missed).
  bool refresh = false;
  /// The home's DsmOptions::background_downgrade: off but for the
  /// benchmarks of it, so that a page the home rewrote is Modified there,
  /// as the others say.
  absl::Duration home_downgrade = absl::ZeroDuration();
};

class RemoteCluster {
 public:
  static std::unique_ptr<RemoteCluster> Start(benchmark::State& state,
                                              const RemoteOptions& options);
  ~RemoteCluster();

  /// The home writes the next round into pages [first, first + count)
  /// (invalidating node 1's copies); any thread. The round, or 0 when the
  /// home did not answer.
  uint64_t Rewrite(uint64_t first, uint64_t count);
  /// The home's background-downgrade counters (docs/PAGER.md).
  enum class HomeCounter { kDowngrades, kUseful, kWasted };
  /// One of them, read from the home process (0 if it did not answer).
  uint64_t HomeStat(HomeCounter counter);
  volatile uint64_t* At(uint64_t page);
  static bool Check(uint64_t round, uint64_t page, uint64_t v) {
    return v == Pattern(round, page);
  }
  pager::DsmNode& node() { return *node_; }

 private:
  RemoteCluster() = default;
  absl::Status Init(const RemoteOptions& options);

  std::string dir_;
  pid_t pid_ = -1;
  int cmd_ = -1;
  int report_ = -1;
  uint64_t base_ = 0;
  std::mutex mu_;
  uint64_t round_ = 0;
  std::unique_ptr<pager::DsmNode> node_;
};

}  // namespace ssihv::bench

#endif  // SSIHV_BENCH_PAGER_REMOTE_CLUSTER_H_
