// One end of a loopback link (loopback_transport.h has the design).
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "loopback/loopback_transport.h"
#include "ssihv/base/log.h"

namespace ssihv::rdmax {

using base::Log;
using base::LogLevel;

LoopbackChannel::LoopbackChannel(LoopbackTransport* owner, NodeId peer,
                                 std::shared_ptr<LoopbackLink> link, int side)
    : owner_(owner),
      peer_(peer),
      link_(std::move(link)),
      side_(side),
      pending_(std::max<uint32_t>(1, owner->options().max_outstanding), peer) {}

LoopbackChannel* LoopbackChannel::RemoteLocked() const {
  return link_->ends[side_] == this ? link_->ends[1 - side_] : nullptr;
}

bool LoopbackChannel::Linked() const {
  std::lock_guard<std::mutex> lock(link_->mu);
  return RemoteLocked() != nullptr;
}

bool LoopbackChannel::TakeRequest(uint64_t id) {
  std::lock_guard<std::mutex> lock(link_->mu);
  return open_requests_.insert(id).second;
}

absl::Status LoopbackChannel::SendFrame(const FrameHeader& header,
                                        absl::Span<const uint8_t> payload,
                                        SendMode mode, absl::Time deadline) {
  // The same bytes a socket would carry: the receiver decodes them.
  std::vector<uint8_t> frame(kFrameHeaderSize + payload.size());
  EncodeFrameHeader(header, frame.data());
  if (!payload.empty()) {
    std::memcpy(frame.data() + kFrameHeaderSize, payload.data(),
                payload.size());
  }
  // A reply is never refused (its caller is waiting for it; the handler may
  // not block), and kForce is bounded by other means: neither counts
  // against the bound.
  const bool bounded = mode == SendMode::kNoWait || mode == SendMode::kWait;
  const size_t charged = bounded ? frame.size() : 0;
  const size_t capacity = owner_->options().send_queue_bytes;
  std::unique_lock<std::mutex> lock(link_->mu);
  if (mode == SendMode::kReply && open_requests_.erase(header.id) == 0) {
    return absl::NotFoundError(absl::StrCat(
        "Reply node=", peer_, " request=", header.id,
        ": no such request (already answered, or the connection was "
        "replaced)"));
  }
  for (;;) {
    LoopbackChannel* remote = RemoteLocked();
    if (remote == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("connection to node ", peer_, " is closed"));
    }
    size_t& queued = link_->queued[side_];
    if (queued + charged <= capacity) {
      queued += charged;
      owner_->atomic_stats().NoteQueueDepth(queued);
      remote->owner_->PostFrame(remote->shared_from_this(), std::move(frame),
                                charged);
      return absl::OkStatus();
    }
    if (mode == SendMode::kWait && absl::Now() < deadline) {
      link_->room.wait_for(
          lock, absl::ToChronoNanoseconds(
                    std::min(deadline - absl::Now(), absl::Seconds(1))));
      continue;
    }
    Bump(owner_->atomic_stats().send_queue_full);
    return absl::ResourceExhaustedError(absl::StrCat(
        "send queue to node ", peer_, " is full (", queued, " bytes queued)"));
  }
}

absl::Status LoopbackChannel::FetchFromPeer(RegionId region, uint64_t offset,
                                            absl::Span<uint8_t> dst) {
  std::lock_guard<std::mutex> lock(link_->mu);
  LoopbackChannel* remote = RemoteLocked();
  if (remote == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("Fetch node=", peer_, ": not connected"));
  }
  return remote->owner_->ServeFetch(owner_->self(), region, offset, dst);
}

void LoopbackChannel::AwaitSync(PendingOp* op, absl::Time deadline) {
  AwaitCompletion(*this, op, deadline, owner_->options().op_timeout);
}

void LoopbackChannel::Receive(const std::vector<uint8_t>& frame,
                              size_t charged) {
  if (charged > 0) {
    {
      std::lock_guard<std::mutex> lock(link_->mu);
      link_->queued[1 - side_] -= charged;
    }
    link_->room.notify_all();
  }
  // Like a closed socket: what arrives after the close is not read.
  if (dead()) return;
  absl::Span<const uint8_t> bytes(frame);
  absl::StatusOr<FrameHeader> h =
      DecodeFrameHeader(bytes.first(std::min(bytes.size(), kFrameHeaderSize)),
                        WirePhase::kEstablished, owner_->limits());
  if (!h.ok()) return owner_->RejectFrame(*this, h.status().message());
  if (kFrameHeaderSize + h->length != bytes.size()) {
    return owner_->RejectFrame(*this, "length does not match the frame");
  }
  // A loopback link carries only the message layer's frames: fetches and
  // regions do not travel as frames here.
  if (!owner_->ReceiveFrame(*this, *h, bytes.subspan(kFrameHeaderSize))) {
    owner_->RejectFrame(*this, h->kind, "not used on a loopback link");
  }
}

void LoopbackChannel::Close(absl::string_view reason) {
  if (dead_.exchange(true, std::memory_order_acq_rel)) return;
  Log(LogLevel::kWarning, "rdmax node ", owner_->self(), ": ", reason,
      "; closing the connection to node ", peer_);
  {
    std::lock_guard<std::mutex> lock(link_->mu);
    if (LoopbackChannel* remote = RemoteLocked()) {
      remote->owner_->PostRemoteClosed(remote->shared_from_this());
    }
    link_->ends[side_] = nullptr;
  }
  link_->room.notify_all();  // waiting senders see the close
  owner_->PostTeardown(shared_from_this());
}

void LoopbackChannel::Teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  RunFailed(pending_.FailAll(LostInFlight(peer_)), owner_->loop());
}

void LoopbackChannel::CheckTimeouts(absl::Time now) {
  // Fetches complete at once here: only calls can be in flight.
  CloseIfExpired(*this, now, /*calls_only=*/true);
}

}  // namespace ssihv::rdmax
