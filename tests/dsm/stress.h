// The multi-process proof of the DSM node (issue 6): N node processes on
// 127.0.0.1, each mapping the same guest-RAM layout through its DsmNode
// over the TCP transport, T threads per process running
//
// * lock-protected increments of counters on pages homed on every node
//   (an x86 test-and-test-and-set spinlock with `xchg`: a locked write
//   needs the page Modified on the writing node), checked at the end on
//   every node: no increment lost;
// * a writer/reader pattern: every thread is writer w = node * T + t and
//   stores (w << 48 | sequence) in its slot, slots of several writers share
//   pages homed on every node; every thread also reads random slots and
//   checks that each holds its writer's id and never goes backwards.
//
// The parent forks the nodes, drives them through pipes (ready, go, done,
// check, exit) and checks what each reports. Used by the CTest
// (tests/dsm, a few seconds) and the long stress (bench/pager/dsm_stress).
#ifndef SSIHV_TESTS_DSM_STRESS_H_
#define SSIHV_TESTS_DSM_STRESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ssihv::dsm_stress {

struct StressOptions {
  int nodes = 2;         ///< node processes, 2..8
  int threads = 2;       ///< threads per node
  double seconds = 2.0;  ///< how long every thread runs
  int iterations = 0;    ///< per-thread cap on increments; 0 = no cap
  int counters_per_node = 2;
  int fault_threads = 1;          ///< pager fault threads per node
  int timeout_s = 240;            ///< whole run; nodes are killed after it
  std::string transport = "tcp";  ///< "tcp" or "rdma" (cluster config key)
  bool verbose = false;           ///< print each node's statistics
};

struct NodeReport {
  uint64_t increments = 0;     ///< increments done by this node's threads
  uint64_t counter_sum = 0;    ///< sum of all counters as this node reads them
  std::string counter_values;  ///< each counter as this node reads it
  uint64_t bad_slots = 0;      ///< final slots not (w << 48 | iterations)
  uint64_t bad_reads = 0;      ///< wrong id or a sequence going back
  uint64_t reads = 0;          ///< slot reads checked during the run
  double run_seconds = 0;      ///< workload time on this node
  std::string stats_json;      ///< DsmNode::StatsJson() after the run
};

struct StressResult {
  uint64_t expected_sum = 0;  ///< increments reported by all threads
  std::vector<NodeReport> nodes;
  double wall_seconds = 0;
  /// Empty when every node agrees: every counter sum == expected, no bad
  /// slot or read.
  std::vector<std::string> violations;
};

/// Runs the whole multi-process stress. An error means the run itself
/// failed (a node crashed, timed out, could not start); a run that completed
/// but lost increments reports them in `violations`.
absl::StatusOr<StressResult> RunStress(const StressOptions& options);

}  // namespace ssihv::dsm_stress

#endif  // SSIHV_TESTS_DSM_STRESS_H_
