// One RDMA peer: QP setup, the SEND path with credits, received frames.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/rc_qp.h"
#include "rdma/rdma_transport.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

// Receive buffers kept back for credit frames (which consume a receive
// buffer but no credit) so they never meet an empty receive queue.
constexpr uint32_t kReserveBuffers = 4;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

RdmaPeer::RdmaPeer(RdmaTransport* t, NodeId id, base::UniqueFd control_fd,
                   uint64_t token)
    : t_(t),
      id_(id),
      token_(token),
      depth_(t->options().rdma_recv_depth),
      slot_bytes_(
          RoundUp(kFrameHeaderSize + t->options().max_message_bytes, 64)),
      control_(std::move(control_fd), t->limits()),
      // One SEND in a quarter of the peer's credits asks for a completion.
      signals_((t->options().rdma_recv_depth - kReserveBuffers) / 4),
      queue_(t->options().send_queue_bytes + 2 * slot_bytes_ + 4096),
      capacity_(t->options().send_queue_bytes),
      reply_cost_(kFrameHeaderSize +
                  std::max<size_t>(t->options().max_message_bytes,
                                   4 + kMaxErrorMessage)),
      pending_(t->options().max_outstanding, id),
      lanes_(t->options().fetch_lanes, t->options().reconnect_min,
             t->options().reconnect_max, &t->atomic_stats()) {}

RdmaPeer::~RdmaPeer() = default;

absl::Status RdmaPeer::Init() {
  SSIHV_ASSIGN_OR_RETURN(recv_mem_,
                         base::MappedRegion::Anonymous(depth_ * slot_bytes_));
  SSIHV_ASSIGN_OR_RETURN(
      recv_mr_, sys::RegMr(t_->pd(), recv_mem_.data(), recv_mem_.size(),
                           IBV_ACCESS_LOCAL_WRITE));
  SSIHV_ASSIGN_OR_RETURN(send_mem_,
                         base::MappedRegion::Anonymous(depth_ * slot_bytes_));
  SSIHV_ASSIGN_OR_RETURN(
      send_mr_, sys::RegMr(t_->pd(), send_mem_.data(), send_mem_.size(), 0));
  SSIHV_ASSIGN_OR_RETURN(
      qp_, CreateRcQp(t_->pd(), t_->send_cq(), t_->recv_cq(),
                      depth_ + t_->options().max_outstanding + 16, depth_));
  SSIHV_RETURN_IF_ERROR(
      InitRcQp(qp_.get(), t_->device(), IBV_ACCESS_REMOTE_READ));
  recv_tags_.resize(depth_);
  send_tags_.resize(depth_ + 1);  // + the drain SEND's (Teardown)
  read_tags_.resize(t_->options().max_outstanding);
  for (uint32_t i = 0; i < depth_; ++i) {
    recv_tags_[i] = {WrTag::Kind::kRecv, this, i, nullptr};
    send_tags_[i] = {WrTag::Kind::kSend, this, i, nullptr};
    free_slots_.push_back(depth_ - 1 - i);
    SSIHV_RETURN_IF_ERROR(Repost(i));
  }
  send_tags_[depth_] = {WrTag::Kind::kSend, this, depth_, nullptr};
  for (uint32_t i = 0; i < read_tags_.size(); ++i) {
    read_tags_[i] = {WrTag::Kind::kRead, this, i, nullptr};
  }
  psn_ = RandomPsn();
  return absl::OkStatus();
}

absl::Status RdmaPeer::Repost(uint32_t index) {
  ibv_sge sge{
      reinterpret_cast<uint64_t>(recv_mem_.data() + index * slot_bytes_),
      static_cast<uint32_t>(slot_bytes_), recv_mr_->lkey};
  ibv_recv_wr wr{};
  wr.wr_id = reinterpret_cast<uint64_t>(&recv_tags_[index]);
  wr.sg_list = &sge;
  wr.num_sge = 1;
  if (int err = sys::PostRecv(qp_.get(), &wr); err != 0) {
    return base::ErrnoStatus(err, absl::StrCat("ibv_post_recv node=", id_));
  }
  ++posted_recvs_;
  return absl::OkStatus();
}

RdmaParamsPayload RdmaPeer::LocalParams() const {
  return RcQpParams(t_->device(), t_->gid(), qp_.get(), psn_, depth_,
                    static_cast<uint32_t>(slot_bytes_));
}

absl::Status RdmaPeer::Connect(const RdmaParamsPayload& remote) {
  if (remote.recv_bytes < kFrameHeaderSize + t_->options().max_message_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", id_, " posts ", remote.recv_bytes,
        "-byte receive buffers, smaller than this node's max_message_bytes + "
        "16: use the same max_message_bytes on every node"));
  }
  remote_ = remote;
  SSIHV_RETURN_IF_ERROR(
      ConnectRcQp(qp_.get(), t_->device(), t_->gid(), psn_, remote, id_));
  std::lock_guard<std::mutex> lock(send_mu_);
  credits_ = remote.recv_depth > kReserveBuffers
                 ? remote.recv_depth - kReserveBuffers
                 : 1;
  return absl::OkStatus();
}

void RdmaPeer::SetLinkUp() {
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    link_up_ = true;
  }
  DrainQueue();
}

WrTag* RdmaPeer::ReadTag(PendingOp* op) {
  WrTag* tag = &read_tags_[pending_.IndexOf(op)];
  tag->op = op;
  return tag;
}

int RdmaPeer::PostCounted(ibv_send_wr* wr, bool async) {
  NoteWrPosted();
  if (async) t_->NoteAsync(1);
  const int err = sys::PostSend(qp_.get(), wr);
  if (err != 0) {
    NoteWrDone();
    if (async) t_->NoteAsync(-1);
  }
  return err;
}

bool RdmaPeer::PostSlotLocked(uint32_t slot, size_t length, bool credit_frame) {
  uint8_t* p = send_mem_.data() + slot * slot_bytes_;
  ibv_sge sge{reinterpret_cast<uint64_t>(p), static_cast<uint32_t>(length),
              send_mr_->lkey};
  ibv_send_wr wr{};
  wr.wr_id = reinterpret_cast<uint64_t>(&send_tags_[slot]);
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  // An acknowledgement of a withdrawn region waits for this QP's earlier
  // READs to finish: the peer may unregister the memory once it has it.
  const bool fence = p[4] == static_cast<uint8_t>(FrameKind::kRegionRemoveAck);
  // Busy-poll pollers wait for every posted work request to complete, so
  // there each SEND reports (send_signals.h).
  const bool signaled = signals_.ShouldSignal(free_slots_.size(),
                                              t_->options().busy_poll || fence);
  wr.send_flags =
      (signaled ? IBV_SEND_SIGNALED : 0) | (fence ? IBV_SEND_FENCE : 0);
  if (int err = PostCounted(&wr, /*async=*/true); err != 0) {
    free_slots_.push_back(slot);
    Log(LogLevel::kError, "rdmax: ibv_post_send SEND to node ", id_, ": ",
        std::strerror(err));
    return false;
  }
  signals_.Posted(slot, signaled);
  if (!credit_frame) --credits_;
  return true;
}

absl::Status RdmaPeer::SendFrame(const FrameHeader& h,
                                 absl::Span<const uint8_t> payload,
                                 SendMode mode, absl::Time deadline) {
  uint8_t hdr[kFrameHeaderSize];
  EncodeFrameHeader(h, hdr);
  const size_t total = kFrameHeaderSize + payload.size();
  std::unique_lock<std::mutex> lock(send_mu_);
  if (mode == SendMode::kReply) {
    if (open_requests_.erase(h.id) == 0) {
      return absl::NotFoundError(absl::StrCat(
          "Reply node=", id_, " request=", h.id,
          ": no such request (already answered, or the peer restarted)"));
    }
    reserved_ -= std::min(reserved_, reply_cost_);
  }
  for (;;) {
    if (dead()) {
      return absl::UnavailableError(
          absl::StrCat("connection to node ", id_, " is closed"));
    }
    if (queue_.empty() && CanPostLocked()) {
      uint32_t slot = free_slots_.back();
      free_slots_.pop_back();
      uint8_t* p = send_mem_.data() + slot * slot_bytes_;
      std::memcpy(p, hdr, kFrameHeaderSize);
      if (!payload.empty()) {
        std::memcpy(p + kFrameHeaderSize, payload.data(), payload.size());
      }
      if (!PostSlotLocked(slot, total, false)) {
        lock.unlock();
        Close("ibv_post_send failed");
        return absl::UnavailableError(
            absl::StrCat("send to node ", id_, " failed"));
      }
      return absl::OkStatus();
    }
    if (mode == SendMode::kReply || mode == SendMode::kForce ||
        queue_.size() + reserved_ + total <= capacity_) {
      struct iovec iov[2] = {
          {hdr, kFrameHeaderSize},
          {const_cast<uint8_t*>(payload.data()), payload.size()}};
      queue_.Append(iov, 2, 0);
      t_->atomic_stats().NoteQueueDepth(queue_.size());
      return absl::OkStatus();
    }
    if (mode == SendMode::kWait && absl::Now() < deadline &&
        !t_->on_data_thread()) {
      send_cv_.wait_for(lock, absl::ToChronoNanoseconds(std::min(
                                  deadline - absl::Now(), absl::Seconds(1))));
      continue;
    }
    Bump(t_->atomic_stats().send_queue_full);
    return absl::ResourceExhaustedError(absl::StrCat(
        "send queue to node ", id_, " is full (", queue_.size() + reserved_,
        " bytes queued or reserved, ", credits_, " credits)"));
  }
}

void RdmaPeer::DrainQueue() {
  std::lock_guard<std::mutex> lock(send_mu_);
  while (!queue_.empty() && CanPostLocked() && !dead()) {
    uint8_t hdr[kFrameHeaderSize];
    queue_.Peek(hdr, kFrameHeaderSize);
    size_t total = kFrameHeaderSize + GetU32(hdr);
    uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    queue_.Peek(send_mem_.data() + slot * slot_bytes_, total);
    queue_.Consume(total);
    if (!PostSlotLocked(slot, total, false)) break;
  }
  send_cv_.notify_all();
}

void RdmaPeer::ReturnCreditsLocked() {
  const uint32_t threshold =
      std::max<uint32_t>(1, (depth_ - kReserveBuffers) / 4);
  if (credits_to_return_ < threshold || !link_up_ || free_slots_.empty() ||
      dead()) {
    return;
  }
  FrameHeader h;
  h.kind = FrameKind::kCredit;
  h.id = credits_to_return_;
  uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  EncodeFrameHeader(h, send_mem_.data() + slot * slot_bytes_);
  if (PostSlotLocked(slot, kFrameHeaderSize, /*credit_frame=*/true)) {
    credits_to_return_ = 0;
  }
}

bool RdmaPeer::TakeRequest(uint64_t id) {
  std::lock_guard<std::mutex> lock(send_mu_);
  if (!open_requests_.insert(id).second) return false;
  reserved_ += reply_cost_;
  return true;
}

void RdmaPeer::OnSendDone(const WrTag& tag, const ibv_wc& wc) {
  size_t done;
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    done = signals_.Completed(tag.index, &free_slots_);
    // The drain SEND (always the last posted) has no slot to give back.
    if (!free_slots_.empty() && free_slots_.back() == depth_) {
      free_slots_.pop_back();
    }
    ReturnCreditsLocked();
  }
  NoteWrsDone(static_cast<int64_t>(done));
  t_->NoteAsync(-static_cast<int>(done));
  if (wc.status != IBV_WC_SUCCESS && wc.status != IBV_WC_WR_FLUSH_ERR) {
    Close(absl::StrCat("SEND to node ", id_,
                       " failed: ", sys::WcStatusName(wc.status)));
  }
  DrainQueue();
}

void RdmaPeer::OnRecv(const WrTag& tag, const ibv_wc& wc) {
  --posted_recvs_;
  if (wc.status != IBV_WC_SUCCESS) {
    if (wc.status != IBV_WC_WR_FLUSH_ERR) {
      Close(absl::StrCat("receive from node ", id_,
                         " failed: ", sys::WcStatusName(wc.status)));
    }
    return;
  }
  if (dead()) return;
  const uint8_t* p = recv_mem_.data() + tag.index * slot_bytes_;
  absl::StatusOr<FrameHeader> h = DecodeFrameHeader(
      absl::MakeConstSpan(p, std::min<size_t>(wc.byte_len, kFrameHeaderSize)),
      WirePhase::kEstablished, t_->limits());
  if (!h.ok()) return t_->RejectFrame(*this, h.status().message());
  if (kFrameHeaderSize + h->length != wc.byte_len) {
    return t_->RejectFrame(*this, "length does not match the SEND");
  }
  absl::Span<const uint8_t> payload =
      absl::MakeConstSpan(p + kFrameHeaderSize, h->length);
  if (!t_->ReceiveFrame(*this, *h, payload)) Dispatch(*h, payload);
  if (dead()) return;
  if (absl::Status st = Repost(tag.index); !st.ok()) {
    Close(st.message());
    return;
  }
  if (h->kind != FrameKind::kCredit) {
    std::lock_guard<std::mutex> lock(send_mu_);
    ++credits_to_return_;
    ReturnCreditsLocked();
  }
}

void RdmaPeer::Dispatch(const FrameHeader& h,
                        absl::Span<const uint8_t> payload) {
  auto violation = [&](absl::string_view what) {
    t_->RejectFrame(*this, h.kind, what);
  };
  switch (h.kind) {
    case FrameKind::kRegionTable:
    case FrameKind::kRegionAdd: {
      absl::StatusOr<std::vector<RegionEntry>> e = DecodeRegionEntries(payload);
      if (!e.ok()) return violation(e.status().message());
      if ((h.kind == FrameKind::kRegionTable) == up()) {
        return violation("region table out of order");
      }
      {
        std::unique_lock<std::shared_mutex> lock(regions_mu_);
        if (h.kind == FrameKind::kRegionTable) {
          regions_.Reset(*e);
        } else {
          regions_.Add((*e)[0]);
        }
      }
      if (h.kind == FrameKind::kRegionTable) {
        up_.store(true, std::memory_order_release);
        t_->OnPeerTable(this);
      }
      return;
    }
    case FrameKind::kRegionRemove: {
      absl::StatusOr<uint32_t> region = DecodeRegionId(payload);
      if (!region.ok()) return violation(region.status().message());
      {
        // Fetches check and post under the shared lock: after this, none
        // can start a READ of the region.
        std::unique_lock<std::shared_mutex> lock(regions_mu_);
        regions_.Remove(*region);
      }
      // READs over fetch lanes are not behind the fence: the ack waits for
      // those of this region (LaneReadDone sends it then).
      {
        std::lock_guard<std::mutex> lock(lane_reads_mu_);
        if (lane_reads_.contains(*region)) {
          acks_waiting_.push_back(*region);
          return;
        }
      }
      SendRemoveAck(*region);
      return;
    }
    case FrameKind::kRegionRemoveAck: {
      absl::StatusOr<uint32_t> region = DecodeRegionId(payload);
      if (!region.ok()) return violation(region.status().message());
      t_->OnRegionRemoveAck(id_, *region);
      return;
    }
    case FrameKind::kCredit: {
      {
        std::lock_guard<std::mutex> lock(send_mu_);
        credits_ += static_cast<int64_t>(h.id);
      }
      DrainQueue();
      return;
    }
    default:
      return violation("not used over RDMA SEND");
  }
}

void RdmaPeer::SendRemoveAck(uint32_t region) {
  FrameHeader ack;
  ack.kind = FrameKind::kRegionRemoveAck;
  ack.length = 8;
  uint8_t body[8];
  EncodeRegionId(region, body);
  SendFrame(ack, body, SendMode::kForce, absl::InfinitePast()).IgnoreError();
}

void RdmaPeer::LaneReadStarted(uint32_t region) {
  std::lock_guard<std::mutex> lock(lane_reads_mu_);
  ++lane_reads_[region];
}

void RdmaPeer::LaneReadDone(uint32_t region) {
  {
    std::lock_guard<std::mutex> lock(lane_reads_mu_);
    auto it = lane_reads_.find(region);
    if (--it->second > 0) return;
    lane_reads_.erase(it);
    if (std::erase(acks_waiting_, region) == 0) return;
  }
  SendRemoveAck(region);
}

void RdmaPeer::AwaitSync(PendingOp* op, absl::Time deadline) {
  AwaitCompletion(*this, op, deadline, t_->options().op_timeout);
}

void RdmaPeer::Close(absl::string_view reason) {
  if (dead_.exchange(true, std::memory_order_acq_rel)) return;
  Log(LogLevel::kWarning, "rdmax node ", t_->self(), ": ", reason,
      "; closing the connection to node ", id_);
  control_.Shutdown();
  lanes_.CloseAll();  // wakes fetches sleeping on a lane
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    send_cv_.notify_all();
  }
  t_->PostTeardown(this);
}

void RdmaPeer::Teardown() {
  // The error state flushes every posted work request; fetches complete
  // through their flush completions, never before.
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  absl::Status st = sys::ModifyQp(qp_.get(), &attr, IBV_QP_STATE, "->ERR");
  if (!st.ok()) Log(LogLevel::kError, "rdmax: ", st.message());
  const bool flushing = st.ok();
  // Lanes both ways: ours are shut down (Close did), requests in flight
  // fail, the peer's responders stop serving.
  for (size_t i = 0; i < lanes_asked.size(); ++i) lanes_.SetupFailed();
  lanes_asked.clear();
  t_->atomic_stats().lanes_serving.fetch_sub(served_lanes.size(),
                                             std::memory_order_relaxed);
  t_->RetireLaneServers(std::move(served_lanes));
  served_lanes.clear();
  RunFailed(pending_.FailAll(LostInFlight(id_), /*calls_only=*/true),
            t_->loop());
  std::lock_guard<std::mutex> lock(send_mu_);
  queue_.Consume(queue_.size());
  send_cv_.notify_all();
  // Only on a QP in error: on a live one the drain would reach the peer.
  if (flushing) PostDrainLocked();
}

void RdmaPeer::PostDrainLocked() {
  // Unsignaled SENDs that completed report nothing, and flushed ones report
  // only themselves: without a signaled SEND behind them, the slots of the
  // SENDs after the last signaled one would stay outstanding and the peer
  // never drained. A signaled SEND posted now is flushed behind them (as
  // the kernel's ib_drain_sq does), and its completion accounts for all.
  if (signals_.unreaped() == 0) return;
  ibv_send_wr wr{};
  wr.wr_id = reinterpret_cast<uint64_t>(&send_tags_[depth_]);
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  if (int err = PostCounted(&wr, /*async=*/true); err != 0) {
    Log(LogLevel::kError, "rdmax: ibv_post_send of the drain SEND to node ",
        id_, ": ", std::strerror(err), "; ", signals_.unreaped(),
        " SENDs stay outstanding");
    return;
  }
  signals_.Posted(depth_, true);
}

}  // namespace ssihv::rdmax
