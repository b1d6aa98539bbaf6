// The message half of the network backends. TCP and RDMA frame a message,
// a request and a response the same way and correlate calls through the
// peer's PendingTable; they differ only in how a frame leaves and how a
// blocked caller gets its response, which is what a FrameChannel (a TCP
// connection, an RDMA peer) provides.
#ifndef SSIHV_RDMAX_FRAMED_TRANSPORT_H_
#define SSIHV_RDMAX_FRAMED_TRANSPORT_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "event_loop.h"
#include "pending.h"
#include "ssihv/rdmax/wire.h"
#include "transport_base.h"

namespace ssihv::rdmax {

/// One authenticated connection to a peer, as the message layer sees it.
class FrameChannel {
 public:
  /// Sends [header | payload] (header.length must match), waiting for room
  /// in the bounded send queue as `mode` allows.
  virtual absl::Status SendFrame(const FrameHeader& header,
                                 absl::Span<const uint8_t> payload,
                                 SendMode mode, absl::Time deadline) = 0;
  /// The requests this node has outstanding on the connection.
  virtual PendingTable& pending() = 0;
  /// Blocks until the synchronous `op` completes or `deadline` passes. On
  /// timeout the connection is closed and DeadlineExceeded is the op's
  /// status.
  virtual void AwaitSync(PendingOp* op, absl::Time deadline) = 0;

 protected:
  ~FrameChannel() = default;
};

class FramedTransport : public TransportBase {
 public:
  absl::Status Send(NodeId to, MessageType type,
                    absl::Span<const uint8_t> payload,
                    absl::Time deadline) final;
  absl::Status Call(NodeId to, MessageType type,
                    absl::Span<const uint8_t> payload,
                    ResponseCallback done) final;
  absl::StatusOr<size_t> CallSync(NodeId to, MessageType type,
                                  absl::Span<const uint8_t> payload,
                                  absl::Span<uint8_t> response) final;
  absl::Status Reply(const ReplyToken& to, MessageType type,
                     absl::Span<const uint8_t> payload) final;
  absl::Status ReplyError(const ReplyToken& to,
                          const absl::Status& error) final;

  /// The data thread's loop (its tick keeps timeouts checked while calls
  /// are outstanding).
  virtual EventLoop& loop() = 0;

 protected:
  using TransportBase::TransportBase;

  /// The live connection to `peer`, or Unavailable naming `op`.
  virtual absl::StatusOr<std::shared_ptr<FrameChannel>> Channel(
      NodeId peer, absl::string_view op) = 0;
  /// The connections that were sent this node's region table: region
  /// changes go to them (Broadcast).
  virtual std::vector<std::shared_ptr<FrameChannel>> Advertised() = 0;

  /// Sends a control frame to every Advertised() connection, bounded by
  /// other means (kForce); a connection that fails is closing anyway.
  void Broadcast(FrameKind kind, absl::Span<const uint8_t> payload);

 private:
  /// Channel() for a message or request: a missing connection is also the
  /// peer's error (PeerTransportStats::errors).
  absl::StatusOr<std::shared_ptr<FrameChannel>> SendChannel(
      NodeId to, absl::string_view op);
  /// InvalidArgument naming `op` when a payload exceeds max_message_bytes.
  absl::Status CheckMessageSize(absl::string_view op, NodeId to,
                                size_t bytes) const;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_FRAMED_TRANSPORT_H_
