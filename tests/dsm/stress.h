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
  /// DsmOptions::background_downgrade of every node, in us; 0: off.
  int background_downgrade_us = 0;
  int timeout_s = 240;            ///< whole run; nodes are killed after it
  std::string transport = "tcp";  ///< "tcp" or "rdma" (cluster config key)
  bool verbose = false;           ///< print each node's statistics
  uint64_t seed = 1;              ///< workload and adversity randomness

  // ---- history mode (history_run.cc) ----
  /// Instead of counters: every thread reads and writes registers (pages
  /// homed on every node, two registers per page), each write a unique
  /// value, every operation logged with CLOCK_MONOTONIC start and end in
  /// memory the parent shares; the parent checks the whole history for
  /// linearizability (history.h).
  bool history = false;
  int registers_per_node = 4;
  int write_percent = 30;
  uint64_t log_ops = uint64_t{1} << 21;  ///< per-thread log (32 B per op)
  /// A thread goes on past `seconds` until it has done this many
  /// operations (a loaded host gives a short run few), for at most
  /// kMaxExtension more; 0: stop at `seconds`.
  int min_ops = 0;

  // ---- adversities (history mode) ----
  /// Random SIGSTOP of a node process for 1..this many ms, then SIGCONT,
  /// over and over; 0: off.
  int sigstop_max_ms = 0;
  int hogs = 0;  ///< processes spinning on the CPU during the run
  /// Non-empty: run every node in a private network namespace whose
  /// loopback delays packets with `tc qdisc add dev lo root netem <netem>`
  /// (e.g. "delay 200us 100us"); needs iproute2 and CAP_NET_ADMIN.
  std::string netem;
  /// SIGKILL one random node at a random time in the middle of the run;
  /// the parent reaps it (fenced) and tells the survivors, which declare it
  /// dead (DsmNode::DeclareDead) and report its lost pages.
  bool kill_node = false;
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
  /// slot or read; in history mode, the history is linearizable, no node
  /// reported an error (unless a node was killed) and no thread hung.
  std::vector<std::string> violations;

  // ---- history mode ----
  uint64_t ops = 0;  ///< operations checked (reads include the first and
                     ///< last of each run of equal reads, see history_run)
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t pending_writes = 0;  ///< never returned (killed or stuck)
  uint64_t registers = 0;
  uint64_t reads_seen = 0;     ///< every read, before runs were compressed
  uint64_t stops = 0;          ///< SIGSTOP/SIGCONT pairs
  int killed = -1;             ///< the node SIGKILLed, or -1
  uint64_t lost_pages = 0;     ///< reported by survivors after the kill
  uint64_t stuck_threads = 0;  ///< still blocked in a fault at the end
  uint64_t full_logs = 0;      ///< threads that stopped: log full
};

/// Runs the whole multi-process stress. An error means the run itself
/// failed (a node crashed, timed out, could not start); a run that completed
/// but lost increments reports them in `violations`.
absl::StatusOr<StressResult> RunStress(const StressOptions& options);
/// The history mode (RunStress calls it when options.history).
absl::StatusOr<StressResult> RunHistoryStress(const StressOptions& options);

}  // namespace ssihv::dsm_stress

#endif  // SSIHV_TESTS_DSM_STRESS_H_
