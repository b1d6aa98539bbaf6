// What every backend shares: the config and options, the handlers, the
// statistics counters, this node's registered regions, the set of
// connected peers (for WaitForPeer) and the "am I on the data thread" mark
// that turns blocking calls from callbacks into errors.
#ifndef SSIHV_RDMAX_TRANSPORT_BASE_H_
#define SSIHV_RDMAX_TRANSPORT_BASE_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "regions.h"
#include "ssihv/cluster/config.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::rdmax {

struct AtomicStats {
  std::atomic<uint64_t> messages_sent{0};
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> fetches{0};
  std::atomic<uint64_t> fetch_bytes{0};
  std::atomic<uint64_t> fetches_served{0};
  std::atomic<uint64_t> fetches_refused{0};
  std::atomic<uint64_t> bounce_copies{0};
  std::atomic<uint64_t> send_queue_full{0};
  std::atomic<uint64_t> connections_established{0};
  std::atomic<uint64_t> connections_lost{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> malformed_frames{0};
  std::atomic<uint64_t> send_queue_high_water{0};
  std::atomic<uint64_t> lane_fetches{0};
  std::atomic<uint64_t> lanes_dialed{0};
  std::atomic<uint64_t> lanes_accepted{0};
  std::atomic<uint64_t> lanes_refused{0};
  std::atomic<uint64_t> lanes_open{0};     // gauge
  std::atomic<uint64_t> lanes_serving{0};  // gauge
  std::atomic<uint64_t> lane_calls{0};
  std::atomic<uint64_t> lane_calls_served{0};

  TransportStats Snapshot() const;
  void NoteQueueDepth(uint64_t bytes);
};

/// Relaxed increment of a statistics counter.
inline void Bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.fetch_add(by, std::memory_order_relaxed);
}

/// Checks what the network backends share: `self` is a node of `config`,
/// the secret, the sizes.
absl::Status ValidateOptions(const cluster::ClusterConfig& config, NodeId self,
                             const TransportOptions& options);

class TransportBase : public Transport {
 public:
  bool IsConnected(NodeId peer) const override;
  absl::Status WaitForPeer(NodeId peer, absl::Time deadline) override;
  void SetMessageHandler(MessageHandler handler) override {
    message_handler_ = std::move(handler);
  }
  void SetPeerHandler(PeerHandler handler) override {
    peer_handler_ = std::move(handler);
  }
  void SetLaneHandler(LaneHandler handler) override {
    lane_handler_ = std::move(handler);
  }
  /// Backends without lane calls (loopback): nothing is sent.
  absl::StatusOr<size_t> CallOnLane(NodeId to, MessageType type,
                                    absl::Span<const uint8_t> payload,
                                    absl::Span<uint8_t> response) override;
  TransportStats stats() const override { return stats_.Snapshot(); }
  std::vector<PeerTransportStats> peer_stats() const override;
  uint32_t max_message_bytes() const override {
    return options_.max_message_bytes;
  }
  int service_nice() const { return options_.service_nice; }

  // Counted where the backends see the traffic: the node's total and the
  // peer's share together (PeerTransportStats says what each covers).
  void CountSent(NodeId to, uint64_t payload_bytes);
  // A lost connection to the peer, or a message to it that was not sent.
  void CountPeerError(NodeId peer);
  void CountFetched(NodeId from, uint64_t bytes);
  void CountServed(NodeId to, uint64_t bytes);
  // A reply is not a message, but its payload is traffic with the peer:
  // bytes only.
  void CountReplyBytes(NodeId peer, uint64_t bytes, bool sent);

  /// A lane server's (TCP or RDMA) answer to a lane call of `request`'s
  /// type and id with `payload`: sets *response to its header and returns
  /// its payload, the lane handler's, or an Unimplemented error encoded
  /// into *error when there is none. Counts the call and its bytes.
  /// InvalidArgument when the handler answered with more than
  /// max_message_bytes (the caller ends the lane).
  absl::StatusOr<absl::Span<const uint8_t>> ServeLaneCall(
      NodeId peer, const FrameHeader& request,
      absl::Span<const uint8_t> payload, FrameHeader* response,
      std::vector<uint8_t>* error);

 protected:
  TransportBase(const cluster::ClusterConfig& config, NodeId self,
                TransportOptions options);

  /// InvalidArgument unless `peer` is another node of the cluster.
  absl::Status CheckPeer(NodeId peer, absl::string_view op) const;
  /// FailedPrecondition when called on this transport's data thread.
  absl::Status CheckMayBlock(absl::string_view op) const;
  /// Marks the calling thread as this transport's data thread.
  void EnterDataThread() const;
  bool OnDataThread() const;

  /// Records the peer's state and calls the peer handler (data thread).
  void NotePeerState(NodeId peer, PeerState state);
  /// Delivers a message or request to the handler (data thread). Without a
  /// handler, requests get an Unimplemented error via `reply_error`.
  void Deliver(const Message& message);

  const cluster::ClusterConfig config_;
  const TransportOptions options_;
  FrameLimits limits_;
  MessageHandler message_handler_;
  PeerHandler peer_handler_;
  LaneHandler lane_handler_;
  mutable AtomicStats stats_;
  LocalRegions regions_;

 private:
  struct PeerCounters {
    std::atomic<uint64_t> messages_sent{0};
    std::atomic<uint64_t> messages_received{0};
    std::atomic<uint64_t> bytes_sent{0};
    std::atomic<uint64_t> bytes_received{0};
    std::atomic<uint64_t> errors{0};
  };
  // Indexed by node id; nullptr for an id outside the cluster (not counted).
  PeerCounters* PeerOf(NodeId peer) const;

  std::unique_ptr<PeerCounters[]> peer_counters_;
  mutable std::mutex peers_mu_;
  std::condition_variable peers_cv_;
  std::vector<bool> connected_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TRANSPORT_BASE_H_
