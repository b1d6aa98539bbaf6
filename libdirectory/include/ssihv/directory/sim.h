// The deterministic simulator and model checker of the coherence protocol
// (the engine of apps/dsm-sim).
//
// N nodes, each a directory::Node driven exactly as libpager drives it
// (effects performed in order on a simulated page frame per node and page),
// run a workload of reads and writes; every write stores a unique value.
// The simulated network keeps each ordered pair of nodes FIFO (the
// transport's guarantee) and reorders across pairs; it can delay messages,
// lose-and-retransmit them (a longer head-of-line delay, as TCP/RC
// retransmission looks to the protocol), fail one-sided fetches, and crash
// nodes (messages from the dead node may still arrive until a receiver
// learns of the death; the failure detector tells each survivor after a
// random delay).
//
// Checked after every step:
//  - SWMR: at most one Modified copy, never alongside a Shared one (node
//    agents), and at most one writable mapping, never alongside another
//    mapping (frames);
//  - data value: every read returns the latest write to the page in the
//    simulation's global order; every mapped frame and every copy a node
//    agent holds has that value;
//  - loss: a page is declared lost only after its latest value is gone from
//    every live node and from every message that could still deliver it;
//  - liveness: once the network stops delaying, every fault completes
//    within a bound of steps (and no state is stuck with nothing enabled);
//  - agreement: whenever nothing is in flight, each home's directory equals
//    the node agents' views.
// A violation reports the seed, the invariant and the last steps.
#ifndef SSIHV_DIRECTORY_SIM_H_
#define SSIHV_DIRECTORY_SIM_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "ssihv/directory/membership.h"
#include "ssihv/directory/stats.h"

namespace ssihv::directory::sim {

struct Config {
  uint32_t nodes = 2;
  uint64_t pages = 2;        // spread evenly over the nodes' ranges
  uint32_t ops = 10;         // per thread
  uint32_t threads = 1;      // per node (concurrent faults on one node)
  bool reorder = false;      // random message delays
  bool drop = false;         // lost+retransmitted messages, failed fetches
  bool crash = false;        // node crashes
  uint32_t max_crashes = 0;  // 0: min(2, nodes - 1)
  bool pull = false;         // Node::Options::allow_pull (one-sided fetch)
  /// Background downgrades (Node::Downgrade): while work remains, any node
  /// may downgrade any page it qualifies for, at any step.
  bool downgrade = false;
  /// Request lanes (docs/PROTOCOL.md, "Channels"): requests (IsRequest)
  /// from a node that has learned of no death travel on lanes, FIFO
  /// channels of their own per ordered pair, ordered neither with each
  /// other nor with the pair's channel, which carries everything else. A
  /// driver with such lanes was built and measured, not kept
  /// (docs/PERFORMANCE.md, "Request lanes").
  bool request_lanes = false;
  /// Answer lanes (docs/PROTOCOL.md, "Answers on lanes"): a home that has
  /// learned of no death sends its answers (IsAnswer) on lanes too, each
  /// numbered per ordered pair; every pair-channel message carries how
  /// many the sender had sent on lanes to that receiver, and the receiver
  /// takes it only once it has taken all of those (or learned the sender
  /// died). What a driver that answers on the request's lane must keep.
  bool answer_lanes = false;
  TestBug bug = TestBug::kNone;
  /// Test only: a driver that breaks node.h's rule and lets a call's
  /// messages leave before the call's later local effects (they happen in
  /// a later step).
  bool driver_early_send = false;
  /// Test only: a driver that answers on lanes (answer_lanes) but lets the
  /// pair's channel overtake them (no wait for the answers sent before).
  bool driver_answers_unordered = false;
  /// Run grants: after a fault that waits for the network, the node also
  /// asks for up to this many following pages with one kReadRun
  /// (Node::RequestRun): a read run after a read fault, as libpager's
  /// read-ahead does; a write run after a write fault, as its first-touch
  /// runs do (on every write miss here, to explore more). 0: off.
  uint32_t run_pages = 0;
  uint32_t write_percent = 40;
  uint32_t trace_lines = 40;
};

struct Violation {
  std::string invariant;  // short name: "swmr", "data-value", ...
  std::string detail;
  std::string trace;  // the last steps, one per line
};

struct RunResult {
  bool ok = true;
  uint64_t seed = 0;
  uint64_t steps = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t lost_ops = 0;  // accesses answered kPageLost
  uint32_t crashes = 0;
  uint64_t calm_steps = 0;      // steps after the network calmed (liveness
                                // bound checked on every one of them)
  uint64_t max_calm_wait = 0;   // longest fault after calm, in steps
  uint64_t liveness_bound = 0;  // the bound it was checked against
  StatsSnapshot totals;         // summed over all nodes
  Violation violation;
};

/// Runs one seeded random execution. Same config and seed, same execution.
RunResult RunSeed(const Config& config, uint64_t seed);

struct ExploreResult {
  bool ok = true;
  uint64_t states = 0;  // distinct states reached
  uint64_t transitions = 0;
  uint64_t terminal = 0;  // distinct final states (all work done)
  uint32_t max_depth = 0;
  bool truncated = false;  // stopped at max_states
  Violation violation;
};

/// Explores every interleaving (and every choice of operation: each of a
/// thread's `ops` operations is any read or write of any page) depth-first
/// with state hashing. Message delays are irrelevant here: every enabled
/// event is a branch. Liveness: the state graph must be acyclic and every
/// state without enabled events must have finished all work.
ExploreResult Explore(const Config& config, uint64_t max_states);

/// Parses a --faults list ("reorder,drop,crash", "none" or empty).
absl::Status ParseFaults(const std::string& list, Config* config);
/// Applies an --inject-bug name: the protocol bugs skip-invalidation,
/// skip-downgrade, early-unblock (TestBug), or the driver bug
/// driver-early-send.
absl::Status ParseBug(const std::string& name, Config* config);

}  // namespace ssihv::directory::sim

#endif  // SSIHV_DIRECTORY_SIM_H_
