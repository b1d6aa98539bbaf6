#include "tcp/tcp_connection.h"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "sys/posix.h"
#include "tcp/tcp_transport.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

constexpr uint32_t kReadEvents = EPOLLIN | EPOLLRDHUP;
// Room kept in the read buffer beyond the largest buffered frame, so one
// recvmsg can take several small frames.
constexpr size_t kReadAhead = 64 * 1024;

size_t ReaderCapacity(const FrameLimits& l) {
  size_t largest =
      std::max<size_t>({l.max_message_bytes, kRegionEntrySize * kMaxRegions,
                        4 + kMaxErrorMessage});
  return kFrameHeaderSize + largest + kReadAhead;
}

size_t IovBytes(const struct iovec* iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; ++i) total += iov[i].iov_len;
  return total;
}

}  // namespace

TcpConnection::TcpConnection(TcpTransport* transport, NodeId peer,
                             base::UniqueFd fd, uint64_t token)
    : transport_(transport),
      peer_(peer),
      fd_(std::move(fd)),
      token_(token),
      reply_cost_(kFrameHeaderSize +
                  std::max<size_t>(transport->options().max_message_bytes,
                                   4 + kMaxErrorMessage)),
      fetch_reply_cost_(kFrameHeaderSize +
                        transport->options().max_fetch_bytes),
      // The ring may overshoot the bound by one forced fetch response and
      // one reply (room is checked before each is accepted, not after).
      ring_(transport->options().send_queue_bytes + reply_cost_ +
            fetch_reply_cost_),
      capacity_(transport->options().send_queue_bytes),
      reader_(transport->limits(), ReaderCapacity(transport->limits()),
              WirePhase::kEstablished),
      armed_(kReadEvents),
      pending_(std::max<uint32_t>(1, transport->options().max_outstanding),
               peer),
      lanes_(transport->options().fetch_lanes,
             transport->options().reconnect_min,
             transport->options().reconnect_max, &transport->atomic_stats()) {}

TcpConnection::~TcpConnection() = default;

size_t TcpConnection::RoomLocked() const {
  size_t used = ring_.size() + reserved_;
  return used < capacity_ ? capacity_ - used : 0;
}

void TcpConnection::UpdateArm() {
  uint32_t events = (want_in_ && !caller_off_ ? kReadEvents : 0) |
                    (want_out_ ? uint32_t{EPOLLOUT} : 0u);
  if (events == armed_ || dead()) return;
  armed_ = events;
  // ENOENT after teardown removed the fd is harmless.
  sys::EpollModify(transport_->loop().epoll_fd(), fd_.get(), events, token_)
      .IgnoreError();
}

void TcpConnection::SetWantIn(bool want) {
  std::lock_guard<std::mutex> lock(arm_mu_);
  want_in_ = want;
  UpdateArm();
}

void TcpConnection::RestoreIn() {
  std::lock_guard<std::mutex> lock(arm_mu_);
  caller_off_ = false;
  UpdateArm();  // level-triggered: bytes that came meanwhile raise an event
}

void TcpConnection::RestoreInWhenFree() {
  if (dead()) return;
  // Announce first, then try: either we get the role, or the caller holding
  // it sees the flag after releasing it (AwaitSync) and restores itself.
  restore_pending_.store(true, std::memory_order_seq_cst);
  std::unique_lock<std::mutex> role(read_mu_, std::try_to_lock);
  if (!role.owns_lock()) return;
  restore_pending_.store(false, std::memory_order_seq_cst);
  RestoreIn();
}

bool TcpConnection::TakeRequest(uint64_t id) {
  std::lock_guard<std::mutex> lock(send_mu_);
  if (!open_requests_.insert(id).second) return false;
  reserved_ += reply_cost_;
  return true;
}

absl::Status TcpConnection::SendFrame(const FrameHeader& header,
                                      absl::Span<const uint8_t> payload,
                                      SendMode mode, absl::Time deadline) {
  struct iovec iov = {const_cast<uint8_t*>(payload.data()), payload.size()};
  return SendFrame(header, &iov, 1, mode, deadline);
}

absl::Status TcpConnection::SendFrame(const FrameHeader& header,
                                      const struct iovec* payload, int count,
                                      SendMode mode, absl::Time deadline) {
  uint8_t hdr[kFrameHeaderSize];
  EncodeFrameHeader(header, hdr);
  struct iovec iov[4];
  iov[0] = {hdr, kFrameHeaderSize};
  for (int i = 0; i < count; ++i) iov[i + 1] = payload[i];
  const int n = count + 1;
  const size_t total = kFrameHeaderSize + header.length;

  std::unique_lock<std::mutex> lock(send_mu_);
  bool resume_reading = false;
  if (mode == SendMode::kReply) {
    if (open_requests_.erase(header.id) == 0) {
      return absl::NotFoundError(absl::StrCat(
          "Reply node=", peer_, " request=", header.id,
          ": no such request (already answered, or the connection was "
          "replaced)"));
    }
    reserved_ -= std::min(reserved_, reply_cost_);
    resume_reading = paused_;
  }
  for (;;) {
    if (dead()) {
      return absl::UnavailableError(
          absl::StrCat("connection to node ", peer_, " is closed"));
    }
    if (mode == SendMode::kReply || mode == SendMode::kForce ||
        ring_.size() + reserved_ + total <= capacity_) {
      break;
    }
    if (mode == SendMode::kWait && absl::Now() < deadline) {
      send_cv_.wait_for(lock, absl::ToChronoNanoseconds(std::min(
                                  deadline - absl::Now(), absl::Seconds(1))));
      continue;
    }
    Bump(transport_->atomic_stats().send_queue_full);
    return absl::ResourceExhaustedError(
        absl::StrCat("send queue to node ", peer_, " is full (",
                     ring_.size() + reserved_, " bytes queued or reserved)"));
  }
  size_t sent = 0;
  SendBatch* batch = SendBatchAccess::Engaged();
  if (ring_.empty() && batch == nullptr) {
    sys::IoResult r = sys::SendMsgNoWait(fd_.get(), iov, n);
    if (r.bytes > 0) {
      sent = static_cast<size_t>(r.bytes);
    } else if (r.err != EAGAIN && r.err != EWOULDBLOCK) {
      lock.unlock();
      Close(absl::StrCat("send to node ", peer_, ": ", std::strerror(r.err)));
      return absl::UnavailableError(
          absl::StrCat("connection to node ", peer_, " failed"));
    }
  }
  if (sent < total) {
    ring_.Append(iov, n, sent);
    transport_->atomic_stats().NoteQueueDepth(ring_.size());
    if (batch != nullptr) {
      if (!held_) SendBatchAccess::Hold(*batch, shared_from_this());
      held_ = true;
    } else {
      std::lock_guard<std::mutex> arm(arm_mu_);
      want_out_ = true;
      UpdateArm();
    }
  }
  lock.unlock();
  if (resume_reading) transport_->PostService(shared_from_this());
  return absl::OkStatus();
}

void TcpConnection::OnWritable() {
  std::unique_lock<std::mutex> lock(send_mu_);
  while (!ring_.empty()) {
    struct iovec iov[2];
    int n = ring_.Segments(iov);
    sys::IoResult r = sys::SendMsgNoWait(fd_.get(), iov, n);
    if (r.bytes > 0) {
      ring_.Consume(static_cast<size_t>(r.bytes));
      continue;
    }
    if (r.err == EAGAIN || r.err == EWOULDBLOCK) break;
    lock.unlock();
    Close(absl::StrCat("send to node ", peer_, ": ", std::strerror(r.err)));
    return;
  }
  {
    // EPOLLOUT while bytes are left (a flushed batch may leave some).
    std::lock_guard<std::mutex> arm(arm_mu_);
    want_out_ = !ring_.empty();
    UpdateArm();
  }
  send_cv_.notify_all();
  bool resume = paused_ && RoomLocked() > 0;
  lock.unlock();
  if (resume) ServiceRead();
}

void TcpConnection::FlushHeld() {
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    held_ = false;
  }
  OnWritable();
}

void TcpConnection::OnEvents(uint32_t events) {
  if (events & (EPOLLERR | EPOLLHUP)) {
    Close(absl::StrCat("connection to node ", peer_, " reset"));
    return;
  }
  if (events & EPOLLOUT) OnWritable();
  if (events & kReadEvents) ServiceRead();
}

bool TcpConnection::MayConsume(const FrameHeader& h) {
  if (reader_is_caller_) {
    if (h.kind != FrameKind::kResponse && h.kind != FrameKind::kFetchResponse) {
      return false;
    }
    PendingOp* op = pending_.Find(h.id);
    return op != nullptr && op->sync;
  }
  if (h.kind == FrameKind::kFetchRequest || h.kind == FrameKind::kRequest) {
    std::lock_guard<std::mutex> lock(send_mu_);
    if (RoomLocked() == 0) {
      paused_ = true;  // resumed by OnWritable or a Reply
      return false;
    }
    paused_ = false;
  }
  return true;
}

absl::StatusOr<uint8_t*> TcpConnection::FetchTarget(uint64_t id,
                                                    uint32_t length) {
  PendingOp* op = pending_.Find(id);
  if (op == nullptr || op->kind != OpKind::kFetch) {
    return absl::InvalidArgumentError(
        absl::StrCat("fetch response for unknown id ", id));
  }
  if (op->length != length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fetch response of ", length, " bytes for a fetch of ", op->length));
  }
  return op->dst;
}

TcpConnection::Stop TcpConnection::DrainFrames(PendingOp* caller_op,
                                               SendBatch* batch) {
  for (;;) {
    Frame f;
    switch (reader_.Next(*this, &f)) {
      case FrameReader::Result::kFrame:
        // More bytes behind this frame: its answers can wait for theirs.
        if (batch != nullptr && reader_.HasBuffered()) {
          SendBatchAccess::Engage(*batch);
        }
        Dispatch(f);
        if (dead()) return Stop::kError;
        if (caller_op != nullptr &&
            caller_op->state.load(std::memory_order_acquire) ==
                PendingOp::kDone) {
          return Stop::kDone;
        }
        continue;
      case FrameReader::Result::kNeedMore:
        return Stop::kDone;
      case FrameReader::Result::kYield:
        return Stop::kYield;
      case FrameReader::Result::kError:
        transport_->RejectFrame(*this, reader_.error().message());
        return Stop::kError;
    }
  }
}

TcpConnection::Stop TcpConnection::DrainBatched() {
  SendBatch batch = SendBatchAccess::Dormant();
  return DrainFrames(nullptr, &batch);
}

void TcpConnection::ServiceRead() {
  if (dead()) return;
  std::unique_lock<std::mutex> role(read_mu_, std::try_to_lock);
  if (!role.owns_lock()) return;  // a caller reads; it re-arms when done
  reader_is_caller_ = false;
  for (;;) {
    Stop s = DrainBatched();
    if (s == Stop::kError) return;
    if (s == Stop::kYield) {
      role.unlock();
      SetWantIn(false);  // paused: no level-triggered wake-ups meanwhile
      // Room may have come back between MayConsume and here.
      bool resume;
      {
        std::lock_guard<std::mutex> lock(send_mu_);
        resume = RoomLocked() > 0;
        if (resume) paused_ = false;
      }
      if (resume) {
        SetWantIn(true);
        transport_->PostService(shared_from_this());
      }
      return;
    }
    struct iovec iov[3];
    int n = reader_.PrepareRead(iov);
    if (n == 0) return;
    size_t room = IovBytes(iov, n);
    sys::IoResult r = sys::RecvMsgNoWait(fd_.get(), iov, n);
    if (r.bytes > 0) {
      reader_.Commit(static_cast<size_t>(r.bytes));
      if (static_cast<size_t>(r.bytes) < room) {
        // The socket is (very likely) drained: dispatch and go back to
        // epoll instead of paying a recvmsg that says EAGAIN.
        if (DrainBatched() != Stop::kYield) return;
        continue;  // handle the yield above
      }
      continue;
    }
    reader_.Commit(0);
    if (r.bytes == 0) {
      Close(absl::StrCat("node ", peer_, " closed the connection"));
    } else if (r.err != EAGAIN && r.err != EWOULDBLOCK) {
      Close(absl::StrCat("receive from node ", peer_, ": ",
                         std::strerror(r.err)));
    }
    return;
  }
}

bool TcpConnection::ReadAsCaller(PendingOp* op, absl::Time deadline) {
  for (;;) {
    Stop s = DrainFrames(op);
    if (op->state.load(std::memory_order_acquire) == PendingOp::kDone) {
      return true;
    }
    if (s == Stop::kError) return false;
    if (s == Stop::kYield) return true;
    struct iovec iov[3];
    int n = 0;
    if (op->kind == OpKind::kFetch) {
      n = reader_.PrepareSpeculativeRead(iov, op->id, op->dst, op->length);
    }
    if (n == 0) n = reader_.PrepareRead(iov);
    if (n == 0) return true;
    sys::IoResult r = sys::RecvMsgBlocking(fd_.get(), iov, n);
    if (r.bytes > 0) {
      reader_.Commit(static_cast<size_t>(r.bytes));
      continue;
    }
    reader_.Commit(0);
    if (r.bytes == 0) {
      Close(absl::StrCat("node ", peer_, " closed the connection"));
      return false;
    }
    if (r.err == EAGAIN || r.err == EWOULDBLOCK || r.err == EINTR) {
      if (dead()) return false;
      if (absl::Now() >= deadline) {
        op->status = absl::DeadlineExceededError(absl::StrCat(
            "no response from node ", peer_, " within ",
            absl::FormatDuration(transport_->options().op_timeout)));
        Close(absl::StrCat("request to node ", peer_, " timed out"));
        return false;
      }
      continue;
    }
    Close(
        absl::StrCat("receive from node ", peer_, ": ", std::strerror(r.err)));
    return false;
  }
}

void TcpConnection::AwaitSync(PendingOp* op, absl::Time deadline) {
  for (;;) {
    if (op->state.load(std::memory_order_acquire) == PendingOp::kDone) return;
    if (!dead() && read_mu_.try_lock()) {
      reader_is_caller_ = true;
      // Keep the data thread from waking for our response. The epoll_ctl
      // overlaps the request's flight; switching back on is left to the
      // data thread's timer (tcp_rearm_delay), so a stream of fetches pays
      // it once, not per fetch.
      bool switched_off = false;
      {
        std::lock_guard<std::mutex> lock(arm_mu_);
        if (!caller_off_) {
          caller_off_ = switched_off = true;
          UpdateArm();
        }
      }
      if (switched_off) transport_->RestoreInLater(shared_from_this());
      bool ok = ReadAsCaller(op, deadline);
      reader_is_caller_ = false;
      bool buffered = reader_.HasBuffered();
      read_mu_.unlock();
      if (transport_->options().tcp_rearm_delay <= absl::ZeroDuration() ||
          restore_pending_.exchange(false, std::memory_order_seq_cst)) {
        RestoreIn();
      }
      if (buffered) transport_->PostService(shared_from_this());
      if (!ok) {
        // Closed: the teardown fails the op (status already set if this
        // was our timeout).
        PendingTable::WaitDone(op, absl::InfiniteFuture(), false);
        return;
      }
      if (op->state.load(std::memory_order_acquire) == PendingOp::kDone) {
        return;
      }
    }
    // Another thread holds the reader role (and completes us), or the
    // connection is closing (and the teardown does).
    if (PendingTable::WaitDone(
            op, std::min(deadline, absl::Now() + absl::Seconds(1)), false)) {
      return;
    }
    if (absl::Now() >= deadline) {
      TimeOutSync(*this, op, transport_->options().op_timeout);
      return;
    }
  }
}

void TcpConnection::Dispatch(const Frame& f) {
  if (transport_->ReceiveFrame(*this, f.header, f.payload)) return;
  switch (f.header.kind) {
    case FrameKind::kRegionTable:
    case FrameKind::kRegionAdd:
    case FrameKind::kRegionRemove:
      return OnRegionFrame(f);
    case FrameKind::kFetchRequest:
      if (!up()) {
        return transport_->RejectFrame(*this, f.header.kind,
                                       "before the region table");
      }
      return ServeFetch(f);
    case FrameKind::kFetchResponse:
      return OnFetchResponse(f);
    default:
      return transport_->RejectFrame(*this, f.header.kind,
                                     "not used on a TCP connection");
  }
}

void TcpConnection::OnRegionFrame(const Frame& f) {
  auto violation = [&](const absl::Status& st) {
    transport_->RejectFrame(*this, st.message());
  };
  if (f.header.kind == FrameKind::kRegionRemove) {
    absl::StatusOr<uint32_t> id = DecodeRegionId(f.payload);
    if (!id.ok()) return violation(id.status());
    peer_regions_.Remove(*id);
    return;
  }
  absl::StatusOr<std::vector<RegionEntry>> entries =
      DecodeRegionEntries(f.payload);
  if (!entries.ok()) return violation(entries.status());
  if (f.header.kind == FrameKind::kRegionAdd) {
    if (!up()) return violation(absl::InvalidArgumentError("add before table"));
    peer_regions_.Add((*entries)[0]);
    return;
  }
  if (up()) return violation(absl::InvalidArgumentError("second region table"));
  peer_regions_.Reset(*entries);
  up_.store(true, std::memory_order_release);
  transport_->OnConnectionUp(shared_from_this());
}

void TcpConnection::OnFetchResponse(const Frame& f) {
  PendingOp* op = pending_.Find(f.header.id);
  if (op == nullptr || op->kind != OpKind::kFetch) {
    return transport_->RejectFrame(
        *this, absl::StrCat("fetch response to unknown id ", f.header.id));
  }
  absl::Status status;
  if (f.header.flags & kFlagError) {
    absl::Status st = DecodeError(f.payload, &status);
    if (!st.ok()) return transport_->RejectFrame(*this, st.message());
  } else {
    transport_->CountFetched(peer(), op->length);
  }
  op->status = status;  // every fetch has a waiting owner (Fetch)
  PendingTable::Complete(op);
}

void TcpConnection::ServeFetch(const Frame& f) {
  absl::StatusOr<FetchRequestPayload> req =
      DecodeFetchRequest(f.payload, transport_->limits());
  if (!req.ok()) return transport_->RejectFrame(*this, req.status().message());
  FrameHeader h;
  h.kind = FrameKind::kFetchResponse;
  h.id = f.header.id;
  // The region lock is held while the kernel copies the bytes (or the ring
  // does), so UnregisterRegion cannot unmap them underneath.
  LocalRegions::ReadLock lock(transport_->regions());
  absl::StatusOr<const uint8_t*> p = transport_->regions().ResolveForServing(
      transport_->self(), req->region, req->offset, req->length);
  if (!p.ok()) {
    Bump(transport_->atomic_stats().fetches_refused);
    std::vector<uint8_t> err = EncodeError(p.status());
    h.flags = kFlagError;
    h.length = static_cast<uint32_t>(err.size());
    struct iovec iov = {err.data(), err.size()};
    SendFrame(h, &iov, 1, SendMode::kForce, absl::InfinitePast()).IgnoreError();
    return;
  }
  h.length = req->length;
  struct iovec iov = {const_cast<uint8_t*>(*p), req->length};
  if (SendFrame(h, &iov, 1, SendMode::kForce, absl::InfinitePast()).ok()) {
    transport_->CountServed(peer(), req->length);
  }
}

void TcpConnection::Close(absl::string_view reason) {
  if (dead_.exchange(true, std::memory_order_acq_rel)) return;
  Log(LogLevel::kWarning, "rdmax node ", transport_->self(), ": ", reason,
      "; closing the connection to node ", peer_);
  sys::ShutdownBoth(fd_.get());
  lanes_.CloseAll();
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    send_cv_.notify_all();
  }
  transport_->PostTeardown(shared_from_this());
}

void TcpConnection::Teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  sys::EpollRemove(transport_->loop().epoll_fd(), fd_.get());
  std::vector<absl::AnyInvocable<void()>> callbacks;
  {
    // Holding the reader role: no reader is writing into a fetch buffer.
    std::lock_guard<std::mutex> role(read_mu_);
    callbacks = pending_.FailAll(LostInFlight(peer_));
  }
  RunFailed(std::move(callbacks), transport_->loop());
}

void TcpConnection::CheckTimeouts(absl::Time now) {
  CloseIfExpired(*this, now, /*calls_only=*/false);
}

}  // namespace ssihv::rdmax
