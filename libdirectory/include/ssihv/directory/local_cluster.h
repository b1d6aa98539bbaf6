// An in-process cluster of directory Nodes joined by FIFO channels: for
// tests and benchmarks of the protocol without a transport. Page contents
// are not modelled (dsm-sim does that); effects are recorded.
#ifndef SSIHV_DIRECTORY_LOCAL_CLUSTER_H_
#define SSIHV_DIRECTORY_LOCAL_CLUSTER_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/directory/node.h"

namespace ssihv::directory {

class LocalCluster {
 public:
  static absl::StatusOr<LocalCluster> Create(
      const std::vector<uint64_t>& pages_per_node, Node::Options options = {});

  Node& node(NodeId n) { return nodes_[n]; }
  uint32_t num_nodes() const { return static_cast<uint32_t>(nodes_.size()); }

  /// A fault at node n. Its effects are performed (sends queued, fetches
  /// queued, deferrals kept); nothing is delivered yet.
  absl::Status Fault(NodeId n, PageId page, Access access);
  /// Node::RequestRun at node n (read-ahead of a run of pages). Its effects
  /// are performed; nothing is delivered yet. Returns the pages requested.
  absl::StatusOr<uint32_t> RequestRun(NodeId n, PageId first,
                                      uint32_t max_pages);
  /// Delivers queued messages (FIFO per channel, channels round-robin),
  /// completes fetches successfully and hands back deferred messages,
  /// until nothing is left. Fails on a protocol error or after max_steps.
  absl::Status Run(uint64_t max_steps = 1'000'000);
  /// Fault + Run. True if the fault was resolved at node n: by kMapLocal,
  /// or later by a completion effect for the page at node n.
  absl::StatusOr<bool> Access(NodeId n, PageId page, enum Access access);

  /// Crash-stops node n (its queued traffic is dropped) and tells every
  /// survivor.
  absl::Status Kill(NodeId n);

  /// Network messages (between different nodes) sent so far.
  uint64_t messages() const { return messages_; }
  uint64_t fetches() const { return fetches_done_; }
  /// Every effect performed at node n, in order (cleared by ClearLog()).
  const std::vector<Effect>& log(NodeId n) const { return log_[n]; }
  void ClearLog();

 private:
  struct Queued {
    NodeId from = 0;
    bool report = false;
    Message msg;
    ReportChunk chunk;
  };
  struct Pending {
    NodeId node = 0;
    NodeId from = 0;  // deferral: sender; fetch: source
    Message msg;      // deferral
    PageId page = 0;  // fetch
  };
  explicit LocalCluster(std::vector<Node> nodes);
  absl::Status Perform(NodeId n);

  std::vector<Node> nodes_;
  std::vector<bool> dead_;
  std::vector<std::deque<Queued>> channels_;  // from * N + to
  std::vector<Pending> fetch_queue_;
  std::vector<Pending> deferred_;
  std::vector<std::vector<Effect>> log_;
  Output out_;
  uint64_t messages_ = 0;
  uint64_t fetches_done_ = 0;
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_LOCAL_CLUSTER_H_
