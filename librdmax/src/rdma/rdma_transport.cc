// The RDMA transport: device resources, the data thread, peers' life
// cycle, and the Transport API (rdma_transport.h has the design).
#include "rdma/rdma_transport.h"

#include <sys/epoll.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"
#include "sys/posix.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

constexpr uint64_t kCqToken = 1;
constexpr absl::Duration kShutdownDrain = absl::Seconds(2);

}  // namespace

RdmaTransport::RdmaTransport(const cluster::ClusterConfig& config, NodeId self,
                             TransportOptions options, OpenedDevice device,
                             ChosenGid gid)
    : FramedTransport(config, self, std::move(options)),
      device_(std::move(device)),
      gid_(std::move(gid)),
      current_(config.num_nodes()) {}

RdmaTransport::~RdmaTransport() { Shutdown(); }

std::string RdmaTransport::Describe() const {
  return absl::StrCat("rdma node ", self(), " device ", device_.name, " port ",
                      device_.port, " ", gid_.description, ", ",
                      options_.busy_poll ? "busy-poll" : "event",
                      " mode, control on ", config_.nodes[self()].address);
}

absl::Status RdmaTransport::CreateResources() {
  ibv_context* ctx = device_.context.get();
  const int peers = static_cast<int>(config_.num_nodes());
  const int depth = static_cast<int>(options_.rdma_recv_depth);
  // Room for a replaced peer's flushes while its successor is up.
  const int send_entries =
      2 * peers * (depth + static_cast<int>(options_.max_outstanding) + 16);
  const int recv_entries = 2 * peers * depth;
  const int max_cqe = device_.device_attr.max_cqe;
  SSIHV_ASSIGN_OR_RETURN(pd_, sys::AllocPd(ctx));
  SSIHV_ASSIGN_OR_RETURN(channel_, sys::CreateCompChannel(ctx));
  SSIHV_ASSIGN_OR_RETURN(
      send_cq_,
      sys::CreateCq(ctx, std::min(send_entries, max_cqe), channel_.get()));
  SSIHV_ASSIGN_OR_RETURN(
      recv_cq_,
      sys::CreateCq(ctx, std::min(recv_entries, max_cqe), channel_.get()));
  SSIHV_RETURN_IF_ERROR(sys::ReqNotifyCq(recv_cq_.get()));
  if (!options_.busy_poll)
    SSIHV_RETURN_IF_ERROR(sys::ReqNotifyCq(send_cq_.get()));
  SSIHV_ASSIGN_OR_RETURN(
      bounce_mem_, base::MappedRegion::Anonymous(kBounceSlots * kBounceBytes));
  SSIHV_ASSIGN_OR_RETURN(
      bounce_mr_, sys::RegMr(pd_.get(), bounce_mem_.data(), bounce_mem_.size(),
                             IBV_ACCESS_LOCAL_WRITE));
  for (int i = 0; i < kBounceSlots; ++i) free_bounce_.push_back(i);
  return absl::OkStatus();
}

absl::Status RdmaTransport::Start() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (started_) return absl::FailedPreconditionError("Start: called twice");
    started_ = true;
  }
  SSIHV_RETURN_IF_ERROR(loop_.Init());
  SSIHV_RETURN_IF_ERROR(
      sys::EpollAdd(loop_.epoll_fd(), channel_->fd, EPOLLIN, kCqToken));
  control_ = std::make_unique<ControlPlane>(
      config_, self(), options_, WireBackend::kRdma,
      [this](ControlPlane::Authenticated a) {
        loop_.Post([this, a] { Adopt(a); });
      },
      [this](const absl::Status&) { Bump(stats_.auth_failures); });
  data_thread_ = std::thread([this] { RunDataThread(); });
  base::NameThread(data_thread_, "rdmax-data");
  absl::Status st = control_->Start();
  if (!st.ok()) {
    loop_.Stop();
    data_thread_.join();
    std::lock_guard<std::mutex> lock(state_mu_);
    stopped_ = true;
  }
  Log(LogLevel::kInfo, "rdmax: ", Describe());
  return st;
}

void RdmaTransport::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (!started_ || stopped_) return;
    stopped_ = true;
  }
  control_->Stop();
  // Close every peer and keep the loop running until their work requests
  // are flushed (so blocked fetches complete) or the drain limit passes;
  // OnTick then stops the loop.
  loop_.HoldTick();
  loop_.Post([this] {
    closing_ = true;
    shutdown_limit_ = absl::Now() + kShutdownDrain;
    for (auto& [token, peer] : by_token_) peer->Close("shutting down");
  });
  data_thread_.join();
  loop_.ReleaseTick();
  // Threads still inside Fetch/CallSync hold operations of these peers.
  for (absl::Time end = absl::Now() + kShutdownDrain; absl::Now() < end;) {
    bool busy = false;
    for (auto& p : draining_) {
      busy |= p->pending().in_use() > 0 || p->lane_users().load() > 0;
    }
    if (!busy) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  {
    std::lock_guard<std::mutex> lock(peers_mu_);
    for (auto& c : current_) c.reset();
    advertised_.clear();
  }
  retired_lanes_.clear();  // joins their threads: no lane call served after
  by_token_.clear();
  draining_.clear();  // destroys the QPs (before the CQs)
  if (unacked_send_events_ > 0) {
    sys::AckCqEvents(send_cq_.get(), unacked_send_events_);
  }
  if (unacked_recv_events_ > 0) {
    sys::AckCqEvents(recv_cq_.get(), unacked_recv_events_);
  }
  unacked_send_events_ = unacked_recv_events_ = 0;
}

void RdmaTransport::RunDataThread() {
  EnterDataThread();
  loop_.Run(
      [this](uint64_t token, uint32_t events) {
        if (token == kCqToken) {
          OnCqEvents();
          return;
        }
        auto it = by_token_.find(token);
        if (it == by_token_.end()) return;
        std::shared_ptr<RdmaPeer> peer = it->second;
        OnControlEvents(peer.get(), events);
      },
      // Only busy-poll mode spins while work requests are in flight; in
      // event mode their completions raise events (a data thread that spun
      // until each SEND completed took the CPU from the threads that would
      // answer it: docs/PERFORMANCE.md, "RDMA: no spinning in event mode,
      // selective signalling").
      [this] { OnTick(); }, kPendingTick,
      options_.busy_poll ? &async_outstanding_ : nullptr,
      [this] {
        // Busy-poll mode with asynchronous work in flight: poll the send
        // CQ here (unless a blocked caller is polling it).
        if (send_cq_mu_.try_lock()) {
          PollSendCq();
          send_cq_mu_.unlock();
        }
        ReapDrained();
      });
}

void RdmaTransport::OnTick() {
  ReapDrained();
  std::erase_if(retired_lanes_, [](const std::unique_ptr<RdmaLaneServer>& l) {
    return l->finished();  // its thread has ended: the join does not wait
  });
  absl::Time now = absl::Now();
  if (closing_) {
    if ((draining_.empty() && by_token_.empty()) || now >= shutdown_limit_) {
      loop_.Stop();
    }
    return;
  }
  for (auto& [token, peer] : by_token_) {
    // READs are not timed out here: the QP reports a lost peer.
    CloseIfExpired(*peer, now, /*calls_only=*/true);
  }
}

void RdmaTransport::NoteAsync(int delta) {
  int before = async_outstanding_.fetch_add(delta, std::memory_order_acq_rel);
  // Busy-poll: the data thread sleeps in epoll when nothing is in flight;
  // wake it when the first work request appears.
  if (options_.busy_poll && delta > 0 && before == 0 && !OnDataThread()) {
    loop_.Post([] {});
  }
}

void RdmaTransport::OnCqEvents() {
  // One event per wake-up: the channel is watched level-triggered, so a
  // second pending event wakes the loop again, and the usual single event
  // costs no ibv_get_cq_event that finds nothing (a read(2) per wake-up).
  if (ibv_cq* cq = sys::GetCqEvent(channel_.get())) {
    if (cq == send_cq_.get()) {
      ++unacked_send_events_;
    } else {
      ++unacked_recv_events_;
    }
    // Re-arm before polling: a completion arriving after the last poll
    // raises a new event instead of being missed.
    sys::ReqNotifyCq(cq).IgnoreError();
  }
  // Acknowledging takes a lock in the provider: batch it.
  if (unacked_send_events_ >= 64) {
    sys::AckCqEvents(send_cq_.get(), unacked_send_events_);
    unacked_send_events_ = 0;
  }
  if (unacked_recv_events_ >= 64) {
    sys::AckCqEvents(recv_cq_.get(), unacked_recv_events_);
    unacked_recv_events_ = 0;
  }
  while (PollRecvCq() > 0) {
  }
  if (!options_.busy_poll) {
    std::lock_guard<std::mutex> role(send_cq_mu_);
    while (PollSendCq() > 0) {
    }
  }
  ReapDrained();
}

int RdmaTransport::PollRecvCq() {
  ibv_wc wc[16];
  int n = sys::PollCq(recv_cq_.get(), 16, wc);
  for (int i = 0; i < n; ++i) {
    auto* tag = reinterpret_cast<WrTag*>(wc[i].wr_id);
    tag->peer->OnRecv(*tag, wc[i]);
  }
  return n;
}

int RdmaTransport::PollSendCq() {
  ibv_wc wc[16];
  int n = sys::PollCq(send_cq_.get(), 16, wc);
  for (int i = 0; i < n; ++i) {
    auto* tag = reinterpret_cast<WrTag*>(wc[i].wr_id);
    if (tag->kind == WrTag::Kind::kSend) {
      tag->peer->OnSendDone(*tag, wc[i]);
    } else {
      FinishRead(tag->op, tag->peer, wc[i]);
    }
  }
  return n;
}

void RdmaTransport::FinishRead(PendingOp* op, RdmaPeer* peer,
                               const ibv_wc& wc) {
  absl::Status status;
  if (wc.status == IBV_WC_WR_FLUSH_ERR) {
    status = absl::UnavailableError(absl::StrCat(
        "connection to node ", peer->id(), " lost with the fetch in flight"));
  } else if (wc.status != IBV_WC_SUCCESS) {
    status =
        absl::InternalError(absl::StrCat("RDMA READ from node ", peer->id(),
                                         ": ", sys::WcStatusName(wc.status)));
    peer->Close(status.message());
  }
  // Every fetch has a waiting owner (Fetch), which copies a bounce and
  // releases the slot. NoteWrDone is the last touch of `peer`: a draining
  // peer is freed once its work requests are done and its table is empty.
  if (op->status.ok()) op->status = status;
  PendingTable::Complete(op);
  peer->NoteWrDone();
}

void RdmaTransport::ReapDrained() {
  std::erase_if(draining_, [](const std::shared_ptr<RdmaPeer>& p) {
    return p->Drained() && p->pending().in_use() == 0;
  });
}

void RdmaTransport::Adopt(ControlPlane::Authenticated a) {
  base::UniqueFd fd(a.fd);
  if (closing_) return;
  absl::Status st = sys::SetBlocking(fd.get());
  if (st.ok()) st = sys::SetTcpNoDelay(fd.get());
  if (st.ok()) st = sys::SetKeepAlive(fd.get(), kSocketKeepAlive);
  const uint64_t token = next_token_++;
  auto peer = std::make_shared<RdmaPeer>(this, a.peer, std::move(fd), token);
  if (st.ok()) st = peer->Init();
  if (st.ok()) {
    st = sys::EpollAdd(loop_.epoll_fd(), peer->control().fd(),
                       EPOLLIN | EPOLLRDHUP, token);
  }
  if (st.ok()) {
    st = peer->control().Send(FrameKind::kRdmaParams,
                              EncodeRdmaParams(peer->LocalParams()));
  }
  if (!st.ok()) {
    Log(LogLevel::kError, "rdmax node ", self(), ": setting up node ", a.peer,
        ": ", st.message());
    if (peer->qp() != nullptr) draining_.push_back(peer);
    if (a.dialer) control_->ConnectionLost(a.peer);
    return;
  }
  for (auto& [t, other] : by_token_) {
    if (other->id() == a.peer) {
      other->Close(
          absl::StrCat("replaced by a newer connection from node ", a.peer));
    }
  }
  by_token_[token] = peer;
  // The region table goes first, queued until both QPs are ready; under the
  // exclusive region lock so each region is advertised exactly once.
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  AdvertiseTo(*peer);
  std::lock_guard<std::mutex> plock(peers_mu_);
  advertised_.push_back(peer);
}

void RdmaTransport::AdvertiseTo(RdmaPeer& peer) {
  std::vector<RegionEntry> entries = regions_.ExportedEntries();
  // A table frame must fit one receive buffer; the rest follow as adds.
  size_t first =
      std::min(entries.size(), options_.max_message_bytes / kRegionEntrySize);
  std::vector<uint8_t> table(first * kRegionEntrySize);
  for (size_t i = 0; i < first; ++i) {
    EncodeRegionEntry(entries[i], table.data() + i * kRegionEntrySize);
  }
  FrameHeader h;
  h.kind = FrameKind::kRegionTable;
  h.length = static_cast<uint32_t>(table.size());
  peer.SendFrame(h, table, SendMode::kForce, absl::InfinitePast())
      .IgnoreError();
  for (size_t i = first; i < entries.size(); ++i) {
    uint8_t e[kRegionEntrySize];
    EncodeRegionEntry(entries[i], e);
    h.kind = FrameKind::kRegionAdd;
    h.length = kRegionEntrySize;
    peer.SendFrame(h, e, SendMode::kForce, absl::InfinitePast()).IgnoreError();
  }
}

void RdmaTransport::OnControlEvents(RdmaPeer* peer, uint32_t events) {
  if (events & (EPOLLERR | EPOLLHUP)) {
    peer->Close("control connection reset");
    return;
  }
  if (events & EPOLLOUT) {
    absl::StatusOr<bool> more = peer->control().OnWritable();
    if (!more.ok()) {
      peer->Close(more.status().message());
      return;
    }
    UpdateControlArm(peer);
  }
  if (events & (EPOLLIN | EPOLLRDHUP)) {
    absl::Status st = peer->control().OnReadable(
        [&](const Frame& f) { return OnControlFrame(peer, f); });
    if (!st.ok()) {
      if (absl::IsInvalidArgument(st)) Bump(stats_.malformed_frames);
      peer->Close(absl::IsInvalidArgument(st)
                      ? absl::StrCat("malformed frame from node ", peer->id(),
                                     " (control): ", st.message())
                      : std::string(st.message()));
      return;
    }
    UpdateControlArm(peer);
  }
}

void RdmaTransport::UpdateControlArm(RdmaPeer* peer) {
  if (peer->dead()) return;
  uint32_t events = EPOLLIN | EPOLLRDHUP |
                    (peer->control().wants_write() ? uint32_t{EPOLLOUT} : 0u);
  sys::EpollModify(loop_.epoll_fd(), peer->control().fd(), events,
                   peer->token())
      .IgnoreError();
}

absl::Status RdmaTransport::OnControlFrame(RdmaPeer* peer, const Frame& f) {
  switch (f.header.kind) {
    case FrameKind::kRdmaParams: {
      if (peer->connected) {
        return absl::InvalidArgumentError("second rdma-params");
      }
      SSIHV_ASSIGN_OR_RETURN(RdmaParamsPayload remote,
                             DecodeRdmaParams(f.payload));
      absl::Status st = peer->Connect(remote);
      if (!st.ok()) return absl::FailedPreconditionError(st.message());
      peer->connected = true;
      SSIHV_RETURN_IF_ERROR(peer->control().Send(FrameKind::kRdmaReady, {}));
      if (peer->remote_ready) peer->SetLinkUp();
      return absl::OkStatus();
    }
    case FrameKind::kRdmaLaneRequest:
      return OnLaneRequest(peer, f);
    case FrameKind::kRdmaLaneAccept:
      return OnLaneAccept(peer, f);
    case FrameKind::kRdmaReady:
      if (peer->remote_ready) {
        return absl::InvalidArgumentError("second rdma-ready");
      }
      peer->remote_ready = true;
      if (peer->connected) peer->SetLinkUp();
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          FrameKindName(f.header.kind), " is not a control connection frame"));
  }
}

void RdmaTransport::OnPeerTable(RdmaPeer* raw) {
  auto it = by_token_.find(raw->token());
  if (it == by_token_.end()) return;
  std::shared_ptr<RdmaPeer> peer = it->second;
  std::shared_ptr<RdmaPeer> old;
  {
    std::lock_guard<std::mutex> lock(peers_mu_);
    old = std::exchange(current_[peer->id()], peer);
  }
  if (old != nullptr && old != peer) {
    Bump(stats_.connections_lost);
    NotePeerState(peer->id(), PeerState::kDown);
  }
  Bump(stats_.connections_established);
  NotePeerState(peer->id(), PeerState::kUp);
}

void RdmaTransport::PostTeardown(RdmaPeer* raw) {
  uint64_t token = raw->token();
  loop_.Post([this, token] {
    auto it = by_token_.find(token);
    if (it == by_token_.end()) return;
    std::shared_ptr<RdmaPeer> peer = it->second;
    by_token_.erase(it);
    sys::EpollRemove(loop_.epoll_fd(), peer->control().fd());
    peer->Teardown();
    bool was_current = false;
    bool peer_connected = false;
    {
      std::lock_guard<std::mutex> lock(peers_mu_);
      if (current_[peer->id()] == peer) {
        current_[peer->id()].reset();
        was_current = true;
      }
      std::erase(advertised_, peer);
      peer_connected = current_[peer->id()] != nullptr;
    }
    for (auto& [t, other] : by_token_) {
      peer_connected |= other->id() == peer->id() && !other->dead();
    }
    draining_.push_back(peer);
    {
      std::lock_guard<std::mutex> lock(acks_mu_);
      acks_cv_.notify_all();  // UnregisterRegion stops waiting for it
    }
    if (was_current) {
      Bump(stats_.connections_lost);
      NotePeerState(peer->id(), PeerState::kDown);
    }
    if (!closing_ && peer->id() < self() && !peer_connected) {
      control_->ConnectionLost(peer->id());
    }
    ReapDrained();
  });
}

absl::StatusOr<std::shared_ptr<RdmaPeer>> RdmaTransport::Peer(
    NodeId id, absl::string_view op) {
  return LiveChannel(peers_mu_, current_, id, op);
}

absl::StatusOr<std::shared_ptr<FrameChannel>> RdmaTransport::Channel(
    NodeId peer, absl::string_view op) {
  return Peer(peer, op);
}

std::vector<std::shared_ptr<FrameChannel>> RdmaTransport::Advertised() {
  std::lock_guard<std::mutex> lock(peers_mu_);
  return {advertised_.begin(), advertised_.end()};
}

}  // namespace ssihv::rdmax
