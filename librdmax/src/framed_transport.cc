#include "framed_transport.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::rdmax {

absl::Status FramedTransport::CheckMessageSize(absl::string_view op, NodeId to,
                                               size_t bytes) const {
  if (bytes <= options_.max_message_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      op, " node=", to, ": payload of ", bytes,
      " bytes exceeds max_message_bytes ", options_.max_message_bytes));
}

void FramedTransport::Broadcast(FrameKind kind,
                                absl::Span<const uint8_t> payload) {
  FrameHeader h;
  h.kind = kind;
  h.length = static_cast<uint32_t>(payload.size());
  for (auto& channel : Advertised()) {
    channel->SendFrame(h, payload, SendMode::kForce, absl::InfinitePast())
        .IgnoreError();
  }
}

absl::StatusOr<std::shared_ptr<FrameChannel>> FramedTransport::SendChannel(
    NodeId to, absl::string_view op) {
  absl::StatusOr<std::shared_ptr<FrameChannel>> channel = Channel(to, op);
  if (!channel.ok()) CountPeerError(to);
  return channel;
}

absl::Status FramedTransport::Send(NodeId to, MessageType type,
                                   absl::Span<const uint8_t> payload,
                                   absl::Time deadline) {
  SSIHV_RETURN_IF_ERROR(CheckMessageSize("Send", to, payload.size()));
  SSIHV_ASSIGN_OR_RETURN(auto channel, SendChannel(to, "Send"));
  FrameHeader h;
  h.kind = FrameKind::kMessage;
  h.type = type;
  h.length = static_cast<uint32_t>(payload.size());
  bool wait = !OnDataThread() && deadline > absl::Now();
  absl::Status st = channel->SendFrame(
      h, payload, wait ? SendMode::kWait : SendMode::kNoWait, deadline);
  if (!st.ok()) {
    CountPeerError(to);
    return st;
  }
  CountSent(to, payload.size());
  return absl::OkStatus();
}

absl::Status FramedTransport::Call(NodeId to, MessageType type,
                                   absl::Span<const uint8_t> payload,
                                   ResponseCallback done) {
  SSIHV_RETURN_IF_ERROR(CheckMessageSize("Call", to, payload.size()));
  SSIHV_ASSIGN_OR_RETURN(auto channel, SendChannel(to, "Call"));
  PendingOp* op = channel->pending().Acquire(OpKind::kCall, false,
                                             absl::Now() + options_.op_timeout,
                                             absl::InfinitePast());
  if (op == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Call node=", to, ": ", options_.max_outstanding,
                     " requests already in flight"));
  }
  op->call_done = std::move(done);
  loop().HoldTick();
  FrameHeader h;
  h.kind = FrameKind::kRequest;
  h.type = type;
  h.id = op->id;
  h.length = static_cast<uint32_t>(payload.size());
  absl::Status st =
      channel->SendFrame(h, payload, SendMode::kNoWait, absl::InfinitePast());
  if (!st.ok()) {
    // Unless the connection's teardown claimed the op first (and will call
    // `done` with its error), the caller gets the error instead.
    uint32_t prev;
    if (!PendingTable::Claim(op, &prev)) return absl::OkStatus();
    done = std::move(op->call_done);  // destroyed here, never called
    channel->pending().Release(op);
    loop().ReleaseTick();
    CountPeerError(to);
    return st;
  }
  CountSent(to, payload.size());
  return absl::OkStatus();
}

absl::StatusOr<size_t> FramedTransport::CallSync(
    NodeId to, MessageType type, absl::Span<const uint8_t> payload,
    absl::Span<uint8_t> response) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("CallSync"));
  SSIHV_RETURN_IF_ERROR(CheckMessageSize("CallSync", to, payload.size()));
  SSIHV_ASSIGN_OR_RETURN(auto channel, SendChannel(to, "CallSync"));
  absl::Time deadline = absl::Now() + options_.op_timeout;
  PendingOp* op =
      channel->pending().Acquire(OpKind::kCall, true, deadline, deadline);
  if (op == nullptr) {
    return absl::DeadlineExceededError(
        absl::StrCat("CallSync node=", to, ": no request slot in time"));
  }
  op->response = response;
  FrameHeader h;
  h.kind = FrameKind::kRequest;
  h.type = type;
  h.id = op->id;
  h.length = static_cast<uint32_t>(payload.size());
  absl::Status st = channel->SendFrame(h, payload, SendMode::kWait, deadline);
  uint32_t prev;
  if (!st.ok() && PendingTable::Claim(op, &prev)) {
    channel->pending().Release(op);
    CountPeerError(to);
    return st;
  }
  CountSent(to, payload.size());
  channel->AwaitSync(op, deadline);
  absl::Status result = op->status;
  size_t n = op->response_length;
  channel->pending().Release(op);
  if (!result.ok()) return result;
  return n;
}

absl::Status FramedTransport::Reply(const ReplyToken& to, MessageType type,
                                    absl::Span<const uint8_t> payload) {
  SSIHV_RETURN_IF_ERROR(CheckMessageSize("Reply", to.to, payload.size()));
  SSIHV_ASSIGN_OR_RETURN(auto channel, Channel(to.to, "Reply"));
  FrameHeader h;
  h.kind = FrameKind::kResponse;
  h.type = type;
  h.id = to.request_id;
  h.length = static_cast<uint32_t>(payload.size());
  absl::Status st =
      channel->SendFrame(h, payload, SendMode::kReply, absl::InfinitePast());
  if (st.ok()) CountReplyBytes(to.to, payload.size(), /*sent=*/true);
  return st;
}

absl::Status FramedTransport::ReplyError(const ReplyToken& to,
                                         const absl::Status& error) {
  SSIHV_ASSIGN_OR_RETURN(auto channel, Channel(to.to, "Reply"));
  std::vector<uint8_t> payload = EncodeError(error);
  FrameHeader h;
  h.kind = FrameKind::kResponse;
  h.flags = kFlagError;
  h.id = to.request_id;
  h.length = static_cast<uint32_t>(payload.size());
  return channel->SendFrame(h, payload, SendMode::kReply, absl::InfinitePast());
}

bool FramedTransport::ReceiveFrame(FrameChannel& channel,
                                   const FrameHeader& header,
                                   absl::Span<const uint8_t> payload) {
  switch (header.kind) {
    case FrameKind::kMessage:
    case FrameKind::kRequest:
      ReceiveMessage(channel, header, payload);
      return true;
    case FrameKind::kResponse:
      ReceiveResponse(channel, header, payload);
      return true;
    default:
      return false;
  }
}

void FramedTransport::RejectFrame(FrameChannel& channel,
                                  absl::string_view what) {
  Bump(stats_.malformed_frames);
  channel.Close(
      absl::StrCat("malformed frame from node ", channel.peer(), ": ", what));
}

void FramedTransport::RejectFrame(FrameChannel& channel, FrameKind kind,
                                  absl::string_view what) {
  RejectFrame(channel, absl::StrCat(FrameKindName(kind), ": ", what));
}

void FramedTransport::ReceiveMessage(FrameChannel& channel,
                                     const FrameHeader& header,
                                     absl::Span<const uint8_t> payload) {
  if (!channel.up()) {
    return RejectFrame(channel, header.kind, "before the region table");
  }
  const bool request = header.kind == FrameKind::kRequest;
  if (request && !channel.TakeRequest(header.id)) {
    return RejectFrame(channel, header.kind, "duplicate request id");
  }
  Deliver(
      Message{channel.peer(), header.type, request ? header.id : 0, payload});
}

void FramedTransport::ReceiveResponse(FrameChannel& channel,
                                      const FrameHeader& header,
                                      absl::Span<const uint8_t> payload) {
  const NodeId peer = channel.peer();
  CountReplyBytes(peer, payload.size(), /*sent=*/false);
  // A fetch's id answered by a message response is as unknown as any other.
  PendingOp* op = channel.pending().Find(header.id);
  if (op == nullptr || op->kind != OpKind::kCall) {
    return RejectFrame(channel, header.kind,
                       absl::StrCat("unknown request ", header.id));
  }
  absl::Status status;
  if (header.flags & kFlagError) {
    absl::Status st = DecodeError(payload, &status);
    if (!st.ok()) return RejectFrame(channel, header.kind, st.message());
  }
  if (op->sync) {
    if (status.ok()) {
      op->response_length = payload.size();
      if (payload.size() > op->response.size()) {
        status = absl::OutOfRangeError(absl::StrCat(
            "CallSync node=", peer, ": response of ", payload.size(),
            " bytes does not fit the buffer of ", op->response.size()));
      } else if (!payload.empty()) {
        std::memcpy(op->response.data(), payload.data(), payload.size());
      }
    }
    op->status = status;
    PendingTable::Complete(op);
    return;
  }
  ResponseCallback done = std::move(op->call_done);
  channel.pending().Release(op);
  loop().ReleaseTick();
  Message m{peer, header.type, header.id,
            status.ok() ? payload : absl::Span<const uint8_t>()};
  if (done) done(status, m);
}

absl::Status LostInFlight(NodeId peer) {
  return absl::UnavailableError(absl::StrCat(
      "connection to node ", peer, " lost with the operation in flight"));
}

void RunFailed(std::vector<absl::AnyInvocable<void()>> callbacks,
               EventLoop& loop) {
  for (auto& cb : callbacks) {
    loop.ReleaseTick();
    cb();
  }
}

void CloseIfExpired(FrameChannel& channel, absl::Time now, bool calls_only) {
  if (channel.pending().ExpireAsync(now, calls_only)) {
    channel.Close(absl::StrCat("an asynchronous request to node ",
                               channel.peer(), " timed out"));
  }
}

void TimeOutSync(FrameChannel& channel, PendingOp* op,
                 absl::Duration op_timeout) {
  channel.Close(absl::StrCat("request to node ", channel.peer(), " timed out"));
  PendingTable::WaitDone(op, absl::InfiniteFuture(), false);
  op->status = absl::DeadlineExceededError(
      absl::StrCat("no response from node ", channel.peer(), " within ",
                   absl::FormatDuration(op_timeout)));
}

void AwaitCompletion(FrameChannel& channel, PendingOp* op, absl::Time deadline,
                     absl::Duration op_timeout) {
  if (PendingTable::WaitDone(op, deadline, false)) return;
  TimeOutSync(channel, op, op_timeout);
}

}  // namespace ssihv::rdmax
