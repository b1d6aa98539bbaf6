// VmNode: what one node of a running ssihv cluster knows about itself and
// the cluster, and the actions it can take, as the control plane sees it.
// The VMM implements it (over its vCPUs, its DsmNode and its transport);
// libcontrol serves it over HTTP (api.h, server.h) and knows nothing of
// KVM, the pager or the transport. docs/API.md maps every field to the JSON
// and the metric that shows it.
//
// THREADING: the API server calls every method from its own threads,
// possibly several at once, while the guest runs. Implementations must be
// thread-safe, must not take locks a vCPU or fault thread holds for long,
// and must return promptly (a read should be a snapshot of atomics or a
// short critical section; ClusterAction may wait for the other nodes, but
// with a bounded timeout, since it holds one server thread meanwhile).
#ifndef SSIHV_CONTROL_VM_NODE_H_
#define SSIHV_CONTROL_VM_NODE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ssihv::control {

/// The life of a node process (and of the guest on it).
enum class NodeStatus : uint8_t {
  kStarting,         ///< building the VM
  kWaitingForPeers,  ///< up, waiting for the other nodes to connect
  kRunning,          ///< the guest runs
  kPaused,           ///< the guest is paused (POST /vm/pause)
  kStopping,         ///< the guest stopped; the process is shutting down
  kFailed,           ///< the node cannot go on (see NodeHealth::reason)
};
/// "starting", "waiting-for-peers", "running", "paused", "stopping",
/// "failed".
absl::string_view NodeStatusName(NodeStatus status);

struct NodeHealth {
  NodeStatus status = NodeStatus::kStarting;
  /// Seconds since the node process started.
  double uptime_s = 0;
  /// Why, for kFailed and kStopping (e.g. "node 2 lost"); may be empty.
  std::string reason;
};

/// What this node knows of a peer's liveness.
enum class PeerLiveness : uint8_t {
  kWaiting,  ///< never connected yet
  kAlive,    ///< connected (authenticated)
  kLost,     ///< was connected, is not any more (or was declared dead)
};
/// "waiting", "alive", "lost".
absl::string_view PeerLivenessName(PeerLiveness liveness);

struct PeerInfo {
  uint32_t node = 0;
  PeerLiveness liveness = PeerLiveness::kWaiting;
  /// Seconds since the last message from the peer; nullopt: never heard.
  std::optional<double> last_heard_s;
  /// The transport in use to the peer ("tcp", "rdma"); empty when none.
  std::string transport;
};

enum class VcpuState : uint8_t {
  kRunning,         ///< in or around KVM_RUN
  kHalted,          ///< HLT, waiting for an interrupt
  kWaitingForSipi,  ///< an AP after INIT, before its SIPI
  kPaused,          ///< held by POST /vm/pause
  kStopped,         ///< its thread has ended
};
/// "running", "halted", "waiting-for-sipi", "paused", "stopped".
absl::string_view VcpuStateName(VcpuState state);

/// A count under a name: an exit reason, a page state.
struct NamedCount {
  std::string name;
  uint64_t value = 0;
};

struct VcpuInfo {
  uint32_t index = 0;    ///< global vCPU number (docs/CLUSTER_CONFIG.md)
  uint32_t apic_id = 0;  ///< the vCPU's current APIC ID
  VcpuState state = VcpuState::kRunning;
  /// VM exits by reason ("io", "mmio", "hlt", ...), every reason the VMM
  /// counts, zeros included.
  std::vector<NamedCount> exits;
};

/// The home's directory entry of a page.
struct DirectoryInfo {
  std::string state;  ///< "shared", "modified", "lost", "recovering"
  std::optional<uint32_t> owner;  ///< the Modified holder
  std::vector<uint32_t> sharers;  ///< the nodes with a Shared copy
  bool busy = false;              ///< a transaction is in progress
};

struct PageInfo {
  /// This node's state of the page: "invalid", "shared", "modified",
  /// "lost".
  std::string state;
  /// Present only when this node is the page's home.
  std::optional<DirectoryInfo> directory;
};

/// Traffic of one page homed on this node since the node started, as its
/// directory counted it (GET /pages/hot): the requests it served for the
/// page, and how often the page was taken from a holder.
struct PageTraffic {
  uint64_t gpa = 0;
  uint64_t reads = 0;          ///< read transactions (a copy sent Shared)
  uint64_t writes = 0;         ///< write transactions (misses, upgrades)
  uint64_t invalidations = 0;  ///< copies invalidated
  uint64_t transfers = 0;      ///< ownership moved between nodes
};

/// A cumulative histogram as Prometheus exposes it. `bounds` are the upper
/// bounds (le) in the unit of the metric (seconds), ascending and finite;
/// `counts[i]` is the number of observations <= bounds[i] (non-decreasing);
/// `count` is every observation (the +Inf bucket) and `sum` their sum.
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  uint64_t count = 0;
  double sum = 0;
};

/// Counters of one kind of guest-memory fault ("local_zero", "local_copy",
/// "remote_read", "remote_write", "upgrade": libpager's FaultKindName).
struct FaultMetrics {
  std::string kind;
  uint64_t faults = 0;
  /// Service time in seconds (the pager's, from reading the fault to the
  /// resolving ioctl). Bounds: kLatencyBucketBounds (metrics.h).
  Histogram latency;
};

/// Counters of this node's traffic with one peer, since the node started.
struct PeerMetrics {
  uint32_t peer = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  /// Lost connections to `peer` and messages to it that could not be sent.
  uint64_t errors = 0;
  /// Port I/O and MMIO accesses of this node's vCPUs completed by `peer`.
  uint64_t pio_forwarded = 0;
  uint64_t mmio_forwarded = 0;
  /// Their round trips, summed: from the request's send to the answer.
  double io_forwarded_seconds = 0;
  /// Accesses of `peer`'s vCPUs completed here.
  uint64_t pio_served = 0;
  uint64_t mmio_served = 0;
  /// Interprocessor interrupts (fixed, NMI, INIT, SIPI) sent to vCPUs on
  /// `peer` and received from it.
  uint64_t ipis_sent = 0;
  uint64_t ipis_received = 0;
  /// The home side of `peer`'s remote faults: its page requests (reads;
  /// writes and upgrades) this node answered as the pages' home.
  uint64_t fault_reads_served = 0;
  uint64_t fault_writes_served = 0;
};

/// Everything /metrics shows beyond health, vCPUs and peer liveness.
struct MetricsSnapshot {
  std::vector<FaultMetrics> faults;    ///< one per kind
  std::vector<NamedCount> vcpu_exits;  ///< by reason, all vCPUs summed
  std::vector<PeerMetrics> peers;      ///< one per other node
  std::vector<NamedCount> dsm_pages;   ///< pages by this node's state
};

enum class VmAction : uint8_t { kPause, kResume, kStop };
/// "pause", "resume", "stop".
absl::string_view VmActionName(VmAction action);

/// What one node answered to a cluster-wide action.
struct NodeActionResult {
  uint32_t node = 0;
  absl::Status status;
};

class VmNode {
 public:
  virtual ~VmNode() = default;

  virtual NodeHealth Health() const = 0;
  /// Every other node of the cluster, in id order.
  virtual std::vector<PeerInfo> Peers() const = 0;
  /// This node's vCPUs, in index order.
  virtual std::vector<VcpuInfo> Vcpus() const = 0;
  /// The page at `page_gpa` (4 KiB-aligned, inside guest RAM: the caller
  /// checked it against the layout). Unavailable while the node has no
  /// guest memory yet.
  virtual absl::StatusOr<PageInfo> Page(uint64_t page_gpa) const = 0;
  virtual MetricsSnapshot Metrics() const = 0;
  /// The `limit` pages homed here with the most requests served, hottest
  /// first (empty in one process, which serves no other node).
  virtual std::vector<PageTraffic> HotPages(size_t limit) const = 0;
  /// Applies `action` on this node and forwards it to every other node
  /// (over the cluster transport), returning each node's answer, this one
  /// included. A status error means the action was not attempted at all:
  /// FailedPrecondition when the guest is not in a state that allows it
  /// (pause before it runs), Unavailable when the node cannot act now.
  /// Pause and resume are idempotent; stop makes every node exit after
  /// the guest stopped (the API answers first).
  virtual absl::StatusOr<std::vector<NodeActionResult>> ClusterAction(
      VmAction action) = 0;
};

}  // namespace ssihv::control

#endif  // SSIHV_CONTROL_VM_NODE_H_
