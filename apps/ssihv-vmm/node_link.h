// NodeLink: what one ssihv-vmm node process says to the others (node_wire.h)
// over the node transport it shares with the DSM (libpager's DsmNode owns
// the transport and hands it everything that is not a DSM frame), and the
// failure detector: heartbeats every second, a peer whose connection stays
// down or who stays silent past a timeout is lost (docs/VMM.md, "Several
// processes").
//
// Threading: the transport calls OnMessage / OnPeer on its data thread; the
// Handler's callbacks run there and must not block. The senders are
// thread-safe; ForwardIo and RequestClock block their caller (a vCPU thread,
// start-up) and must not be called on the data thread.
#ifndef SSIHV_APPS_VMM_NODE_LINK_H_
#define SSIHV_APPS_VMM_NODE_LINK_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "node_wire.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::vmm {

struct NodeLinkOptions {
  /// A peer whose connection has been down this long is lost.
  absl::Duration down_timeout = absl::Seconds(2);
  /// A peer not heard from (heartbeats or anything else) this long is lost.
  absl::Duration silence_timeout = absl::Seconds(5);
  absl::Duration heartbeat_period = absl::Seconds(1);
  /// How long a vCPU waits for room in a full send queue before the send
  /// is an error (it is never dropped silently).
  absl::Duration send_wait = absl::Seconds(2);
  /// The liveness thread's nice value: heartbeats must not wait behind
  /// vCPU threads, or a busy host looks dead. 0: inherited.
  int thread_nice = 0;
};

/// Per-peer counters (a snapshot).
struct PeerLinkStats {
  uint64_t interrupts_sent = 0;      // deliveries to its vCPUs
  uint64_t interrupts_received = 0;  // deliveries from it to ours
  uint64_t io_forwarded = 0;         // our accesses it served (node 0)
  uint64_t io_served = 0;            // its accesses we served (node 0)
  uint64_t mmio_forwarded = 0;       // the MMIO ones among io_forwarded
  uint64_t mmio_served = 0;          // the MMIO ones among io_served
  uint64_t io_ns_total = 0;          // round trips of io_forwarded
  uint64_t routing_updates_received = 0;
  uint64_t heartbeats_received = 0;
  uint64_t undelivered = 0;  // messages to it that did not leave (Undelivered)
  bool up = false;
  bool lost = false;
  double last_heard_s_ago = -1;  // -1: never
};

class NodeLink {
 public:
  /// What the VMM does with what arrives. On the transport's data thread;
  /// nothing here may block.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void OnDeliver(uint32_t from, const DeliverMsg& m) = 0;
    virtual void OnIoApicEoi(uint32_t from, uint8_t vector) = 0;
    virtual void OnRouting(uint32_t from, const RoutingMsg& m) = 0;
    /// Node 0: a forwarded access; returns the bytes read (none for a
    /// write), or an error the caller's vCPU gets.
    virtual absl::StatusOr<std::vector<uint8_t>> OnIo(uint32_t from,
                                                      const IoMsg& m) = 0;
    /// Node 0: its guest clock, for a starting node.
    virtual absl::StatusOr<ClockMsg> OnClockRequest() = 0;
    virtual void OnStop(uint32_t from, const StopMsg& m) = 0;
    /// `node` is lost (`why` says how); called once per node, from the
    /// liveness thread (which may block briefly).
    virtual void OnPeerLost(uint32_t node, const std::string& why) = 0;
    /// A message to a peer did not leave and the peer was not lost: an
    /// interrupt or an access the guest will never see. From the liveness
    /// thread (Undelivered says when).
    virtual void OnLinkError(const absl::Status& error) = 0;
    /// A control-API action forwarded by `from`. Must not block: hand it to
    /// another thread, which answers with ReplyAction(reply, status).
    virtual void OnAction(uint32_t from, const ActionMsg& m,
                          rdmax::ReplyToken reply) = 0;
  };

  NodeLink(const cluster::GuestLayout& layout, uint32_t self, Handler* handler,
           NodeLinkOptions options = {});
  ~NodeLink();
  NodeLink(const NodeLink&) = delete;
  NodeLink& operator=(const NodeLink&) = delete;

  /// The transport to send on (the DsmNode's); set before anything is sent.
  void Attach(rdmax::Transport* transport) { transport_ = transport; }
  /// Transport callbacks (DsmOptions::message_handler / peer_handler).
  void OnMessage(const rdmax::Message& m);
  void OnPeer(uint32_t node, rdmax::PeerState state);

  /// An interrupt for vCPUs of `node` (all of them its own).
  absl::Status Deliver(uint32_t node, const DeliverMsg& m);
  /// EOI of a level-triggered vector, to node 0's I/O APIC.
  absl::Status IoApicEoi(uint8_t vector);
  /// A local vCPU's routing entry changed: every peer learns it.
  absl::Status BroadcastRouting(const RoutingMsg& m);
  /// A port or MMIO access by a local vCPU, done by node 0; blocks until
  /// node 0 answered. Returns the bytes read.
  absl::StatusOr<std::vector<uint8_t>> ForwardIo(const IoMsg& m);
  /// A message to `node` that did not leave, `error` saying why. A failed
  /// connection is not an error yet: the peer may be dying, and a guest
  /// losing a node stops with the lost-peer status, not as a VMM error.
  /// So when `error` is Unavailable and the failure detector runs, the
  /// verdict decides: the node lost, nothing to report (its stop is on the
  /// way); the node still reachable a verdict's time (down_timeout and a
  /// heartbeat) later, the message is gone for good and OnLinkError gets
  /// `error`. Returns OkStatus when the verdict decides, else `error`, to
  /// report now. Deliver, IoApicEoi and BroadcastRouting apply it to
  /// their own sends; a ForwardIo caller applies it to a failed access.
  absl::Status Undelivered(uint32_t node, absl::Status error);
  /// The guest stopped here: tell every peer still up (best effort).
  void BroadcastStop(const StopMsg& m);
  /// The stop barrier: this node's vCPU threads have ended. Says so to
  /// every peer still up, then waits until each of them has said the same,
  /// was lost, or its connection went down, or `timeout` passed. The caller
  /// keeps its DSM and devices serving meanwhile: a peer's vCPU may be
  /// inside a fault on a page homed here, and tearing the transport down
  /// under it would fail that fault. Returns the peers not heard from, in
  /// id order (empty: every peer still up quiesced). Not on the data thread.
  std::vector<uint32_t> Quiesce(absl::Duration timeout);
  /// Sends `m` to every other node and waits for their answers until
  /// `timeout`: one status per other node, in id order. A node that is not
  /// connected, lost, or silent past the timeout gets an error status
  /// saying so; this never waits longer. Not on the data thread.
  std::vector<std::pair<uint32_t, absl::Status>> ForwardAction(
      const ActionMsg& m, absl::Duration timeout);
  /// Answers an action request (any thread).
  void ReplyAction(const rdmax::ReplyToken& to, const absl::Status& result);

  /// Node 0's guest clock; `*rtt` is the round trip it took.
  absl::StatusOr<ClockMsg> RequestClock(absl::Duration* rtt);

  /// Sends `mine` to every peer and waits until every peer's hello came;
  /// FailedPrecondition naming the peer when a config digest differs from
  /// ours, DeadlineExceeded naming the peers not heard from. Call after
  /// every peer is connected and before any guest memory moves. A peer
  /// whose connection is down for `down_timeout` before its hello came is
  /// lost: OnPeerLost, then Unavailable naming it.
  absl::Status ExchangeHellos(const HelloMsg& mine, absl::Time deadline);

  /// Starts heartbeats and the failure detector (after every peer is up).
  void StartLiveness();
  /// Stops it; no OnPeerLost after this returns. Idempotent.
  void StopLiveness();

  std::vector<PeerLinkStats> stats() const;  // index = node id
  nlohmann::json StatsJson() const;

 private:
  struct Peer {
    std::atomic<uint64_t> interrupts_sent{0}, interrupts_received{0},
        io_forwarded{0}, io_served{0}, mmio_forwarded{0}, mmio_served{0},
        io_ns_total{0}, routing_received{0}, heartbeats_received{0};
    std::atomic<int64_t> last_heard_ns{0};  // 0: never
    std::atomic<int64_t> down_since_ns{0};  // 0: up (or never connected)
    std::atomic<bool> up{false};
    std::atomic<bool> lost{false};
    std::atomic<uint64_t> undelivered{0};
    // The first message that did not leave since the last verdict, and
    // when (guarded by mu_).
    std::optional<absl::Status> pending_error;
    int64_t pending_since_ns = 0;
  };
  static int64_t NowNs();
  void Dispatch(const rdmax::Message& m);
  void Reply(const rdmax::Message& m, absl::Span<const uint8_t> payload);
  absl::Status SendTo(uint32_t node, NodeMessage type,
                      absl::Span<const uint8_t> payload);
  /// Sends `hello` to every peer not yet `sent` one; a peer whose
  /// connection is down is left for a later call.
  absl::Status SendHellos(absl::Span<const uint8_t> hello, absl::Time deadline,
                          std::vector<bool>& sent);
  absl::Status LostBeforeHello(uint32_t node, int64_t down_for_ns);
  void LivenessLoop();
  void CheckPeers(int64_t now);
  /// After CheckPeers: drops the undelivered messages of lost peers and
  /// reports those of peers reachable past the verdict window.
  void SettleUndelivered(int64_t now);
  /// The detector's rule: a connection down (since `down`, 0: up) for
  /// down_timeout means its peer is lost.
  bool DownPastTimeout(int64_t down, int64_t now) const {
    return down != 0 &&
           now - down >= absl::ToInt64Nanoseconds(options_.down_timeout);
  }
  bool Known(uint32_t node) const {
    return node < peers_.size() && node != self_;
  }
  /// A peer still up: connected now and not declared lost.
  bool Reachable(uint32_t node) const {
    return Known(node) && peers_[node]->up && !peers_[node]->lost;
  }
  /// Wakes the threads waiting on cv_ (the failure detector, the stop
  /// barrier) after a change made outside mu_: taking mu_ first means a
  /// waiter between its check and its wait cannot miss it.
  void WakeWaiters();

  const cluster::GuestLayout& layout_;
  const uint32_t self_;
  Handler* const handler_;
  const NodeLinkOptions options_;
  rdmax::Transport* transport_ = nullptr;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::atomic<uint64_t> malformed_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::optional<HelloMsg>> hellos_;  // guarded by mu_
  std::vector<bool> quiesced_;                   // guarded by mu_
  bool liveness_stop_ = false;
  std::atomic<bool> detecting_{false};  // the liveness thread runs
  std::thread liveness_;
};

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_NODE_LINK_H_
