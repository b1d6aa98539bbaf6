// The RDMA transport: device resources, the data thread, peers' life
// cycle, and the Transport API (rdma_transport.h has the design).
#include "rdma/rdma_transport.h"

#include <sys/epoll.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "sys/posix.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

constexpr uint64_t kCqToken = 1;
constexpr absl::Duration kTick = absl::Milliseconds(100);
constexpr absl::Duration kKeepAlive = absl::Seconds(15);
// Bounce buffers for fetches into unregistered memory.
constexpr int kBounceSlots = 16;
constexpr size_t kBounceBytes = 64 * 1024;
constexpr absl::Duration kShutdownDrain = absl::Seconds(2);

}  // namespace

RdmaTransport::RdmaTransport(const cluster::ClusterConfig& config, NodeId self,
                             TransportOptions options, OpenedDevice device,
                             ChosenGid gid)
    : TransportBase(config, self, std::move(options)),
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
    for (auto& p : draining_) busy |= p->pending().in_use() > 0;
    if (!busy) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  {
    std::lock_guard<std::mutex> lock(peers_mu_);
    for (auto& c : current_) c.reset();
    advertised_.clear();
  }
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
      [this] { OnTick(); }, kTick, &async_outstanding_,
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
  absl::Time now = absl::Now();
  if (closing_) {
    if ((draining_.empty() && by_token_.empty()) || now >= shutdown_limit_) {
      loop_.Stop();
    }
    return;
  }
  for (auto& [token, peer] : by_token_) {
    bool expired = false;
    peer->pending().ForEachPending([&](PendingOp* op) {
      if (!op->sync && op->kind == OpKind::kCall && op->deadline <= now) {
        expired = true;
      }
    });
    if (expired) peer->Close("an asynchronous request timed out");
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
  while (ibv_cq* cq = sys::GetCqEvent(channel_.get())) {
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
  // NoteWrDone is the last touch of `peer` on every path: a draining peer
  // is freed once its work requests are done and its table is empty.
  if (op->sync) {
    if (op->status.ok()) op->status = status;
    PendingTable::Complete(op);  // the owner copies a bounce and releases
    peer->NoteWrDone();
    return;
  }
  NoteAsync(-1);
  if (status.ok()) {
    if (op->bounce >= 0) {
      std::memcpy(op->dst, bounce_mem_.data() + op->bounce * kBounceBytes,
                  op->length);
    }
    Bump(stats_.fetches);
    Bump(stats_.fetch_bytes, op->length);
  }
  if (op->bounce >= 0) ReleaseBounce(op->bounce);
  FetchCallback done = std::move(op->fetch_done);
  peer->pending().Release(op);
  peer->NoteWrDone();
  if (!done) return;
  if (OnDataThread()) {
    done(status);
  } else {
    loop_.Post([done = std::move(done), status]() mutable { done(status); });
  }
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
  if (st.ok()) st = sys::SetKeepAlive(fd.get(), kKeepAlive);
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
  uint32_t events =
      EPOLLIN | EPOLLRDHUP | (peer->control().wants_write() ? EPOLLOUT : 0);
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
  SSIHV_RETURN_IF_ERROR(CheckPeer(id, op));
  std::lock_guard<std::mutex> lock(peers_mu_);
  std::shared_ptr<RdmaPeer> p = current_[id];
  if (p == nullptr || p->dead() || !p->up()) {
    return absl::UnavailableError(
        absl::StrCat(op, " node=", id, ": not connected"));
  }
  return p;
}

void RdmaTransport::Broadcast(FrameKind kind, const uint8_t* payload,
                              size_t length) {
  std::vector<std::shared_ptr<RdmaPeer>> peers;
  {
    std::lock_guard<std::mutex> lock(peers_mu_);
    peers = advertised_;
  }
  FrameHeader h;
  h.kind = kind;
  h.length = static_cast<uint32_t>(length);
  for (auto& p : peers) {
    p->SendFrame(h, absl::MakeConstSpan(payload, length), SendMode::kForce,
                 absl::InfinitePast())
        .IgnoreError();
  }
}

absl::Status RdmaTransport::RegisterRegion(RegionId id, void* base,
                                           size_t length, RegionAccess access) {
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  SSIHV_RETURN_IF_ERROR(regions_.Validate(id, base, length));
  if (regions_.ExportedEntries().size() >= kMaxRegions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "RegisterRegion id=", id, ": at most ", kMaxRegions, " regions"));
  }
  const bool exported = access == RegionAccess::kRemoteRead;
  // LOCAL_WRITE lets the region also be a READ destination; read-only
  // memory cannot be pinned for writing, so exported regions fall back.
  absl::StatusOr<sys::Mr> mr = sys::RegMr(
      pd_.get(), base, length,
      IBV_ACCESS_LOCAL_WRITE | (exported ? IBV_ACCESS_REMOTE_READ : 0));
  if (!mr.ok() && exported) {
    mr = sys::RegMr(pd_.get(), base, length, IBV_ACCESS_REMOTE_READ);
  }
  if (!mr.ok()) {
    return absl::Status(
        mr.status().code(),
        absl::StrCat("RegisterRegion id=", id, ": ", mr.status().message()));
  }
  LocalRegion r;
  r.id = id;
  r.base = static_cast<uint8_t*>(base);
  r.length = length;
  r.access = access;
  r.mr = mr->get();
  r.lkey = (*mr)->lkey;
  r.rkey = (*mr)->rkey;
  regions_.Add(r);
  region_mrs_[id] = std::move(*mr);
  if (exported) {
    uint8_t entry[kRegionEntrySize];
    EncodeRegionEntry(LocalRegions::EntryOf(r), entry);
    Broadcast(FrameKind::kRegionAdd, entry, sizeof(entry));
  }
  return absl::OkStatus();
}

absl::Status RdmaTransport::UnregisterRegion(RegionId id) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("UnregisterRegion"));
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  SSIHV_ASSIGN_OR_RETURN(LocalRegion r, regions_.Remove(id));
  if (r.access == RegionAccess::kRemoteRead) {
    std::vector<std::shared_ptr<RdmaPeer>> peers;
    {
      std::lock_guard<std::mutex> plock(peers_mu_);
      peers = advertised_;
    }
    {
      std::lock_guard<std::mutex> alock(acks_mu_);
      for (auto& p : peers) acks_[{id, p->id()}] = false;
    }
    uint8_t payload[8];
    EncodeRegionId(id, payload);
    Broadcast(FrameKind::kRegionRemove, payload, sizeof(payload));
    // Each peer answers after its READs of the region have finished (a
    // fenced SEND); a peer that dies meanwhile has its QP flushed.
    std::unique_lock<std::mutex> alock(acks_mu_);
    bool all = acks_cv_.wait_for(
        alock, absl::ToChronoNanoseconds(options_.op_timeout), [&] {
          for (auto& p : peers) {
            if (!acks_[{id, p->id()}] && !p->dead()) return false;
          }
          return true;
        });
    for (auto& p : peers) acks_.erase({id, p->id()});
    if (!all) {
      Log(LogLevel::kWarning, "rdmax node ", self(),
          ": UnregisterRegion id=", id,
          ": not every peer acknowledged in time; deregistering anyway");
    }
  }
  region_mrs_.erase(id);
  return absl::OkStatus();
}

void RdmaTransport::OnRegionRemoveAck(NodeId peer, uint32_t region) {
  std::lock_guard<std::mutex> lock(acks_mu_);
  auto it = acks_.find({region, peer});
  if (it != acks_.end()) it->second = true;
  acks_cv_.notify_all();
}

bool RdmaTransport::AcquireBounce(size_t length, absl::Time deadline,
                                  Bounce* out) {
  if (length > kBounceBytes) return false;
  std::unique_lock<std::mutex> lock(bounce_mu_);
  while (free_bounce_.empty()) {
    if (absl::Now() >= deadline) return false;
    bounce_cv_.wait_for(lock,
                        absl::ToChronoNanoseconds(deadline - absl::Now()));
  }
  int i = free_bounce_.back();
  free_bounce_.pop_back();
  *out = {bounce_mem_.data() + i * kBounceBytes, bounce_mr_->lkey, i};
  return true;
}

void RdmaTransport::ReleaseBounce(int index) {
  std::lock_guard<std::mutex> lock(bounce_mu_);
  free_bounce_.push_back(index);
  bounce_cv_.notify_one();
}

absl::StatusOr<PendingOp*> RdmaTransport::PostRead(
    RdmaPeer& peer, RegionId region, uint64_t offset, absl::Span<uint8_t> dst,
    FetchCallback* done, absl::Time deadline) {
  const bool sync = done == nullptr;
  if (dst.empty() || dst.size() > options_.max_fetch_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("Fetch node=", peer.id(), ": length ", dst.size(),
                     " not in 1..", options_.max_fetch_bytes));
  }
  // Straight into `dst` when it lies in registered memory, else a bounce.
  uint64_t addr = reinterpret_cast<uint64_t>(dst.data());
  uint32_t lkey = 0;
  int bounce = -1;
  if (std::optional<LocalRegion> local =
          regions_.Containing(dst.data(), dst.size());
      local && local->mr != nullptr) {
    lkey = local->lkey;
  } else {
    Bounce b;
    if (!AcquireBounce(dst.size(), sync ? deadline : absl::InfinitePast(),
                       &b)) {
      return dst.size() > kBounceBytes
                 ? absl::InvalidArgumentError(absl::StrCat(
                       "Fetch node=", peer.id(), ": ", dst.size(),
                       " bytes into unregistered memory (at most ",
                       kBounceBytes, "): register the destination"))
                 : absl::ResourceExhaustedError("Fetch: no bounce buffer free");
    }
    addr = reinterpret_cast<uint64_t>(b.data);
    lkey = b.lkey;
    bounce = b.index;
    Bump(stats_.bounce_copies);
  }
  PendingOp* op = peer.pending().Acquire(
      OpKind::kFetch, sync, deadline, sync ? deadline : absl::InfinitePast());
  if (op == nullptr) {
    if (bounce >= 0) ReleaseBounce(bounce);
    return sync ? absl::DeadlineExceededError(absl::StrCat(
                      "Fetch node=", peer.id(), ": no request slot in time"))
                : absl::ResourceExhaustedError(absl::StrCat(
                      "FetchAsync node=", peer.id(), ": ",
                      options_.max_outstanding, " fetches already in flight"));
  }
  op->dst = dst.data();
  op->length = static_cast<uint32_t>(dst.size());
  op->region = region;
  op->bounce = bounce;
  if (!sync) op->fetch_done = std::move(*done);
  auto fail = [&](absl::Status st) -> absl::StatusOr<PendingOp*> {
    if (!sync) *done = std::move(op->fetch_done);
    peer.pending().Release(op);
    if (bounce >= 0) ReleaseBounce(bounce);
    return st;
  };
  // Check and post under the peer's region lock: a withdrawal waits for it,
  // and its fenced acknowledgement follows this READ.
  std::shared_lock<std::shared_mutex> rlock(peer.regions_mu());
  absl::StatusOr<RegionEntry> entry =
      peer.regions().Check(peer.id(), region, offset, dst.size());
  if (!entry.ok()) {
    Bump(stats_.fetches_refused);
    return fail(entry.status());
  }
  ibv_sge sge{addr, op->length, lkey};
  ibv_send_wr wr{};
  wr.wr_id = reinterpret_cast<uint64_t>(peer.ReadTag(op));
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_READ;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = entry->base + offset;
  wr.wr.rdma.rkey = entry->rkey;
  peer.NoteWrPosted();
  if (!sync) NoteAsync(1);
  if (int err = sys::PostSend(peer.qp(), &wr); err != 0) {
    peer.NoteWrDone();
    if (!sync) NoteAsync(-1);
    return fail(absl::UnavailableError(absl::StrCat(
        "ibv_post_send READ node=", peer.id(), ": ", std::strerror(err))));
  }
  return op;
}

bool RdmaTransport::PollUntil(PendingOp* op, absl::Time deadline) {
  for (uint32_t spins = 0;; ++spins) {
    if (op->state.load(std::memory_order_acquire) == PendingOp::kDone) {
      return true;
    }
    if (send_cq_mu_.try_lock()) {
      PollSendCq();
      send_cq_mu_.unlock();
    } else {
      __builtin_ia32_pause();
    }
    if ((spins & 4095) == 4095 && absl::Now() >= deadline) return false;
  }
}

absl::Status RdmaTransport::Fetch(NodeId peer_id, RegionId region,
                                  uint64_t offset, absl::Span<uint8_t> dst) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("Fetch"));
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(peer_id, "Fetch"));
  absl::Time deadline = absl::Now() + options_.op_timeout;
  SSIHV_ASSIGN_OR_RETURN(
      PendingOp * op, PostRead(*peer, region, offset, dst, nullptr, deadline));
  bool done = options_.busy_poll ? PollUntil(op, deadline)
                                 : PendingTable::WaitDone(op, deadline, false);
  if (!done) {
    // Flush the QP: the READ completes (with an error) before we return,
    // so it cannot land in `dst` later.
    peer->Close(absl::StrCat("fetch from node ", peer_id, " timed out"));
    if (options_.busy_poll) {
      PollUntil(op, absl::InfiniteFuture());
    } else {
      PendingTable::WaitDone(op, absl::InfiniteFuture(), false);
    }
    op->status = absl::DeadlineExceededError(
        absl::StrCat("Fetch node=", peer_id, ": no completion within ",
                     absl::FormatDuration(options_.op_timeout)));
  }
  absl::Status status = op->status;
  if (op->bounce >= 0) {
    if (status.ok()) {
      std::memcpy(dst.data(), bounce_mem_.data() + op->bounce * kBounceBytes,
                  dst.size());
    }
    ReleaseBounce(op->bounce);
  }
  if (status.ok()) {
    Bump(stats_.fetches);
    Bump(stats_.fetch_bytes, dst.size());
  }
  peer->pending().Release(op);
  return status;
}

absl::Status RdmaTransport::FetchAsync(NodeId peer_id, RegionId region,
                                       uint64_t offset, absl::Span<uint8_t> dst,
                                       FetchCallback done) {
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(peer_id, "FetchAsync"));
  return PostRead(*peer, region, offset, dst, &done,
                  absl::Now() + options_.op_timeout)
      .status();
}

absl::Status RdmaTransport::Send(NodeId to, MessageType type,
                                 absl::Span<const uint8_t> payload,
                                 absl::Time deadline) {
  if (payload.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Send node=", to, ": payload of ", payload.size(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(to, "Send"));
  FrameHeader h;
  h.kind = FrameKind::kMessage;
  h.type = type;
  h.length = static_cast<uint32_t>(payload.size());
  bool wait = !OnDataThread() && deadline > absl::Now();
  SSIHV_RETURN_IF_ERROR(peer->SendFrame(
      h, payload, wait ? SendMode::kWait : SendMode::kNoWait, deadline));
  Bump(stats_.messages_sent);
  return absl::OkStatus();
}

absl::Status RdmaTransport::Call(NodeId to, MessageType type,
                                 absl::Span<const uint8_t> payload,
                                 ResponseCallback done) {
  if (payload.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Call node=", to, ": payload of ", payload.size(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(to, "Call"));
  PendingOp* op = peer->pending().Acquire(OpKind::kCall, false,
                                          absl::Now() + options_.op_timeout,
                                          absl::InfinitePast());
  if (op == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Call node=", to, ": ", options_.max_outstanding,
                     " requests already in flight"));
  }
  op->call_done = std::move(done);
  loop_.HoldTick();
  FrameHeader h;
  h.kind = FrameKind::kRequest;
  h.type = type;
  h.id = op->id;
  h.length = static_cast<uint32_t>(payload.size());
  absl::Status st =
      peer->SendFrame(h, payload, SendMode::kNoWait, absl::InfinitePast());
  if (!st.ok()) {
    uint32_t prev;
    if (!PendingTable::Claim(op, &prev)) return absl::OkStatus();
    done = std::move(op->call_done);
    peer->pending().Release(op);
    loop_.ReleaseTick();
    return st;
  }
  Bump(stats_.messages_sent);
  return absl::OkStatus();
}

absl::StatusOr<size_t> RdmaTransport::CallSync(
    NodeId to, MessageType type, absl::Span<const uint8_t> payload,
    absl::Span<uint8_t> response) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("CallSync"));
  if (payload.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CallSync node=", to, ": payload of ", payload.size(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(to, "CallSync"));
  absl::Time deadline = absl::Now() + options_.op_timeout;
  PendingOp* op =
      peer->pending().Acquire(OpKind::kCall, true, deadline, deadline);
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
  absl::Status st = peer->SendFrame(h, payload, SendMode::kWait, deadline);
  uint32_t prev;
  if (!st.ok() && PendingTable::Claim(op, &prev)) {
    peer->pending().Release(op);
    return st;
  }
  Bump(stats_.messages_sent);
  if (!PendingTable::WaitDone(op, deadline, false)) {
    peer->Close(absl::StrCat("request to node ", to, " timed out"));
    PendingTable::WaitDone(op, absl::InfiniteFuture(), false);
    op->status = absl::DeadlineExceededError(
        absl::StrCat("CallSync node=", to, ": no response within ",
                     absl::FormatDuration(options_.op_timeout)));
  }
  absl::Status result = op->status;
  size_t n = op->response_length;
  peer->pending().Release(op);
  if (!result.ok()) return result;
  return n;
}

absl::Status RdmaTransport::Reply(const ReplyToken& to, MessageType type,
                                  absl::Span<const uint8_t> payload) {
  if (payload.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Reply node=", to.to, ": payload of ", payload.size(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(to.to, "Reply"));
  FrameHeader h;
  h.kind = FrameKind::kResponse;
  h.type = type;
  h.id = to.request_id;
  h.length = static_cast<uint32_t>(payload.size());
  return peer->SendFrame(h, payload, SendMode::kReply, absl::InfinitePast());
}

absl::Status RdmaTransport::ReplyError(const ReplyToken& to,
                                       const absl::Status& error) {
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(to.to, "Reply"));
  std::vector<uint8_t> payload = EncodeError(error);
  FrameHeader h;
  h.kind = FrameKind::kResponse;
  h.flags = kFlagError;
  h.id = to.request_id;
  h.length = static_cast<uint32_t>(payload.size());
  return peer->SendFrame(h, payload, SendMode::kReply, absl::InfinitePast());
}

absl::StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(
    const cluster::ClusterConfig& config, NodeId self,
    TransportOptions options) {
  if (self >= config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("node id ", self, " is not in the cluster config (",
                     config.num_nodes(), " nodes)"));
  }
  SSIHV_RETURN_IF_ERROR(ValidateOptions(options));
  SSIHV_ASSIGN_OR_RETURN(
      OpenedDevice device,
      OpenRdmaDevice(options.rdma_device, options.rdma_port));
  SSIHV_ASSIGN_OR_RETURN(ChosenGid gid, ChooseGid(device, options.gid_index));
  std::unique_ptr<RdmaTransport> t(new RdmaTransport(
      config, self, std::move(options), std::move(device), std::move(gid)));
  // PD, CQs and bounce buffers exist from here on: regions can be
  // registered before Start().
  SSIHV_RETURN_IF_ERROR(t->CreateResources());
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ssihv::rdmax
