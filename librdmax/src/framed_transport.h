// The message layer of every backend, both directions. TCP, RDMA and the
// in-process loopback frame a message, a request and a response the same
// way and correlate calls through the peer's PendingTable. Sending is
// FramedTransport's Send/Call/CallSync/Reply; receiving those frames is
// FramedTransport::ReceiveFrame. A FrameChannel (a TCP connection, an RDMA
// peer, one end of a loopback link) provides only what differs: how a
// frame leaves, how a blocked caller gets its response, how a received
// request's reply room is reserved, and how the connection closes. Fetch
// frames, region adverts, credits and lanes stay with each network backend
// (the loopback copies fetches from the peer's region without frames).
#ifndef SSIHV_RDMAX_FRAMED_TRANSPORT_H_
#define SSIHV_RDMAX_FRAMED_TRANSPORT_H_

#include <memory>
#include <mutex>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "event_loop.h"
#include "pending.h"
#include "ssihv/rdmax/wire.h"
#include "transport_base.h"

namespace ssihv::rdmax {

/// How often a backend's data thread wakes, while an async call is in
/// flight, to expire the calls whose deadline passed.
inline constexpr absl::Duration kPendingTick = absl::Milliseconds(100);
/// TCP keepalive idle time of every socket a backend opens (on RDMA, its
/// control stream): a peer that vanished without a FIN is noticed.
inline constexpr absl::Duration kSocketKeepAlive = absl::Seconds(15);

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
  /// The node at the other end.
  virtual NodeId peer() const = 0;
  /// Messages and requests may flow: the peer's region table arrived (TCP,
  /// RDMA), or the peer was reported up (loopback).
  virtual bool up() const = 0;
  /// Registers a received request id this node must answer (reserving room
  /// for the reply). False when the id is already open.
  virtual bool TakeRequest(uint64_t id) = 0;
  /// Closes the connection, logging `reason` (any thread, idempotent); its
  /// teardown fails what is in flight.
  virtual void Close(absl::string_view reason) = 0;

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

  // ---- The receive side, for the channels ----
  /// Handles one received message, request or response from `channel`: a
  /// message or request goes to the message handler (before the region
  /// table, or with a duplicate request id, it is a violation); a response
  /// completes its pending call (copied into a CallSync buffer, or passed
  /// to a Call's callback). Runs on the thread holding the channel's
  /// receive role: the data thread, or on TCP a blocked caller, which is
  /// given only responses to synchronous operations (so handlers and
  /// callbacks run on the data thread only). Returns false, doing nothing,
  /// for any other kind: the backend's own, or a violation it reports with
  /// RejectFrame.
  bool ReceiveFrame(FrameChannel& channel, const FrameHeader& header,
                    absl::Span<const uint8_t> payload);
  /// A protocol violation by `channel`'s peer: counts a malformed frame and
  /// closes the channel with a reason naming the peer, `what` and (in the
  /// second form) the frame's kind.
  void RejectFrame(FrameChannel& channel, absl::string_view what);
  void RejectFrame(FrameChannel& channel, FrameKind kind,
                   absl::string_view what);

 protected:
  using TransportBase::TransportBase;

  /// The live connection to `peer`, or Unavailable naming `op`.
  virtual absl::StatusOr<std::shared_ptr<FrameChannel>> Channel(
      NodeId peer, absl::string_view op) = 0;
  /// The connections that were sent this node's region table: region
  /// changes go to them (Broadcast).
  virtual std::vector<std::shared_ptr<FrameChannel>> Advertised() = 0;

  /// The channel in `current[peer]` (guarded by `mu`) while it is up and
  /// not closed, else Unavailable naming `op` (InvalidArgument for a node
  /// that is no peer): how every backend hands out its live channels.
  template <typename C>
  absl::StatusOr<std::shared_ptr<C>> LiveChannel(
      std::mutex& mu, const std::vector<std::shared_ptr<C>>& current,
      NodeId peer, absl::string_view op) const {
    absl::Status st = CheckPeer(peer, op);
    if (!st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu);
    std::shared_ptr<C> channel = current[peer];
    if (channel == nullptr || channel->dead() || !channel->up()) {
      return absl::UnavailableError(
          absl::StrCat(op, " node=", peer, ": not connected"));
    }
    return channel;
  }

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
  void ReceiveMessage(FrameChannel& channel, const FrameHeader& header,
                      absl::Span<const uint8_t> payload);
  void ReceiveResponse(FrameChannel& channel, const FrameHeader& header,
                       absl::Span<const uint8_t> payload);
};

/// What the operations in flight on a lost connection to `peer` get.
absl::Status LostInFlight(NodeId peer);
/// Runs, on the data thread, the callbacks of the asynchronous operations
/// a teardown failed (PendingTable::FailAll), releasing the loop tick each
/// of those operations held.
void RunFailed(std::vector<absl::AnyInvocable<void()>> callbacks,
               EventLoop& loop);
/// The data thread's timeout check: closes `channel` when one of its
/// asynchronous operations (only calls when `calls_only`) is past its
/// deadline (PendingTable::ExpireAsync).
void CloseIfExpired(FrameChannel& channel, absl::Time now, bool calls_only);

/// What a synchronous operation that outlived `op_timeout` gets: closes
/// `channel`, waits for its teardown to settle `op`, and makes
/// DeadlineExceeded the op's status.
void TimeOutSync(FrameChannel& channel, PendingOp* op,
                 absl::Duration op_timeout);
/// AwaitSync for a channel whose responses are completed by its data thread
/// (RDMA, loopback): waits for `op`, or times it out at `deadline`.
void AwaitCompletion(FrameChannel& channel, PendingOp* op, absl::Time deadline,
                     absl::Duration op_timeout);

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_FRAMED_TRANSPORT_H_
