// The in-process loopback backend: one more FrameChannel under the shared
// message layer (FramedTransport), so loopback messages, requests and
// responses take the same send and receive code as TCP and RDMA.
//
// A link joins two started transports after the same authentication
// handshake the network backends run. Each transport holds one end of it
// (LoopbackChannel). Sending encodes the frame as on the wire, copies it
// and posts it to the other end's data thread (an EventLoop, as on TCP and
// RDMA), which decodes it and hands it to FramedTransport::ReceiveFrame.
// Per-pair FIFO is the posting order, serialized by the link's mutex.
//
// Fetches are not frames here: a fetch copies straight from the peer's
// registered region under the link's mutex (an open link keeps the peer
// transport alive) and the peer's region lock (UnregisterRegion waits for
// it). There is no region table to advertise: a region is visible to peers
// as soon as RegisterRegion returns.
//
// Closing an end is like closing a socket: the closing side tears down at
// once; the other side receives "closed" behind the frames already posted
// to it, then tears down. The higher id re-links after a lost link (TCP's
// dialer redials), unless either node is shutting down.
#ifndef SSIHV_RDMAX_LOOPBACK_LOOPBACK_TRANSPORT_H_
#define SSIHV_RDMAX_LOOPBACK_LOOPBACK_TRANSPORT_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "event_loop.h"
#include "framed_transport.h"
#include "pending.h"
#include "ssihv/cluster/config.h"

namespace ssihv::rdmax {

class LoopbackChannel;
class LoopbackTransport;

/// The "network": which transport runs each node id.
class LoopbackFabricImpl {
 public:
  explicit LoopbackFabricImpl(const cluster::ClusterConfig& config)
      : config(config), started(config.num_nodes(), nullptr) {}

  /// Authenticates `a` and `b` to each other and links them, unless they
  /// are still linked (mu held).
  void ConnectLocked(LoopbackTransport* a, LoopbackTransport* b);
  /// ConnectLocked(self, peer) if both are still started.
  void Reconnect(LoopbackTransport* self, NodeId peer);

  const cluster::ClusterConfig config;
  std::mutex mu;
  std::vector<LoopbackTransport*> started;  // guarded by mu
};

/// What the two ends of a link share.
struct LoopbackLink {
  std::mutex mu;
  std::condition_variable room;  // queued bytes taken, or an end closed
  // The ends by side; nullptr once that end closed. A non-null end (and its
  // transport) is alive: a transport closes its ends before it stops.
  LoopbackChannel* ends[2] = {nullptr, nullptr};
  // Bytes each side posted that the other has not taken yet: the sender's
  // bounded send queue (send_queue_bytes).
  size_t queued[2] = {0, 0};
};

/// One transport's end of a link.
class LoopbackChannel final
    : public FrameChannel,
      public std::enable_shared_from_this<LoopbackChannel> {
 public:
  LoopbackChannel(LoopbackTransport* owner, NodeId peer,
                  std::shared_ptr<LoopbackLink> link, int side);

  absl::Status SendFrame(const FrameHeader& header,
                         absl::Span<const uint8_t> payload, SendMode mode,
                         absl::Time deadline) override;
  PendingTable& pending() override { return pending_; }
  /// Waits for the completion the data thread delivers.
  void AwaitSync(PendingOp* op, absl::Time deadline) override;
  NodeId peer() const override { return peer_; }
  /// The peer was reported up on this node (set on the data thread before
  /// any frame of the link is read there).
  bool up() const override { return up_.load(std::memory_order_acquire); }
  bool TakeRequest(uint64_t id) override;
  void Close(absl::string_view reason) override;

  bool dead() const { return dead_.load(std::memory_order_acquire); }
  /// Neither end has closed: a new link to the peer would be a duplicate.
  bool Linked() const;
  /// Copies [offset, offset + dst.size()) of the peer's region `region`
  /// into `dst` (Unavailable once either end closed).
  absl::Status FetchFromPeer(RegionId region, uint64_t offset,
                             absl::Span<uint8_t> dst);

  // ---- data thread ----
  void MarkUp() { up_.store(true, std::memory_order_release); }
  /// A frame the other end posted (`charged` bytes of its queue).
  void Receive(const std::vector<uint8_t>& frame, size_t charged);
  /// Fails everything in flight (after Close). Idempotent.
  void Teardown();
  /// Closes when an asynchronous call's deadline passed.
  void CheckTimeouts(absl::Time now);

 private:
  /// The other end, or nullptr when either end closed (link mu held).
  LoopbackChannel* RemoteLocked() const;

  LoopbackTransport* const owner_;
  const NodeId peer_;
  const std::shared_ptr<LoopbackLink> link_;
  const int side_;
  std::atomic<bool> dead_{false};
  std::atomic<bool> up_{false};
  bool torn_down_ = false;                       // data thread
  absl::flat_hash_set<uint64_t> open_requests_;  // guarded by link_->mu
  PendingTable pending_;
};

class LoopbackTransport final : public FramedTransport {
 public:
  LoopbackTransport(std::shared_ptr<LoopbackFabricImpl> fabric, NodeId self,
                    TransportOptions options);
  ~LoopbackTransport() override;

  BackendKind kind() const override { return BackendKind::kLoopback; }
  std::string Describe() const override;
  absl::Status Start() override;
  void Shutdown() override;
  EventLoop& loop() override { return loop_; }

  absl::Status RegisterRegion(RegionId id, void* base, size_t length,
                              RegionAccess access) override;
  absl::Status UnregisterRegion(RegionId id) override;
  absl::Status Fetch(NodeId peer, RegionId region, uint64_t offset,
                     absl::Span<uint8_t> dst) override;

  // ---- for the fabric (its mutex held) ----
  const std::string& secret() const { return options_.secret; }
  void NoteAuthFailure(const absl::Status& why, NodeId claimed);
  /// True while this node has a link to `peer` that neither end closed.
  bool HasLink(NodeId peer);
  /// Takes a new link's end (not reported up yet: PostUp).
  void Adopt(std::shared_ptr<LoopbackChannel> channel);
  /// Reports `channel`'s peer up on the data thread. Posted under the
  /// link's mutex for both ends before any frame can be: each node sees the
  /// peer up before its first frame.
  void PostUp(std::shared_ptr<LoopbackChannel> channel);

  // ---- for LoopbackChannel ----
  const TransportOptions& options() const { return options_; }
  const FrameLimits& limits() const { return limits_; }
  AtomicStats& atomic_stats() { return stats_; }
  /// Runs `channel`'s Receive on the data thread (the link's mutex held).
  void PostFrame(std::shared_ptr<LoopbackChannel> channel,
                 std::vector<uint8_t> frame, size_t charged);
  /// The other end closed: `channel` closes when the data thread gets here,
  /// after the frames posted before.
  void PostRemoteClosed(std::shared_ptr<LoopbackChannel> channel);
  void PostTeardown(std::shared_ptr<LoopbackChannel> channel);
  /// Serves node `to`'s fetch from this node's regions (the link's mutex
  /// held, which keeps this transport alive).
  absl::Status ServeFetch(NodeId to, RegionId region, uint64_t offset,
                          absl::Span<uint8_t> dst);

 private:
  absl::StatusOr<std::shared_ptr<FrameChannel>> Channel(
      NodeId peer, absl::string_view op) override;
  /// Loopback has no region table: nothing to broadcast.
  std::vector<std::shared_ptr<FrameChannel>> Advertised() override {
    return {};
  }
  /// Fetch: the length check and the copy.
  absl::Status CopyFrom(NodeId peer, RegionId region, uint64_t offset,
                        absl::Span<uint8_t> dst);
  void OnChannelUp(const std::shared_ptr<LoopbackChannel>& channel);
  void OnTeardown(const std::shared_ptr<LoopbackChannel>& channel);
  void OnTick();
  std::vector<std::shared_ptr<LoopbackChannel>> Channels();

  const std::shared_ptr<LoopbackFabricImpl> fabric_;
  EventLoop loop_;
  std::thread data_thread_;
  bool started_ = false;  // guarded by fabric_->mu
  bool stopped_ = false;  // guarded by fabric_->mu

  std::mutex mu_;
  // Every end not torn down yet, and the one that is up per peer.
  std::vector<std::shared_ptr<LoopbackChannel>> channels_;
  std::vector<std::shared_ptr<LoopbackChannel>> current_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_LOOPBACK_LOOPBACK_TRANSPORT_H_
