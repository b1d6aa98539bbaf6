#include "tcp/tcp_transport.h"

#include <sys/epoll.h>

#include "absl/strings/str_cat.h"
#include "auth.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"
#include "sys/posix.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

constexpr uint64_t kRestoreTimerToken = 1;
// A blocked reader wakes this often to check its deadline.
constexpr absl::Duration kReceiveTimeout = absl::Milliseconds(100);

}  // namespace

TcpTransport::TcpTransport(const cluster::ClusterConfig& config, NodeId self,
                           TransportOptions options)
    : FramedTransport(config, self, std::move(options)),
      current_(config.num_nodes()) {}

TcpTransport::~TcpTransport() { Shutdown(); }

std::string TcpTransport::Describe() const {
  return absl::StrCat("tcp node ", self(), " on ",
                      config_.nodes[self()].address);
}

absl::Status TcpTransport::Start() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (started_) return absl::FailedPreconditionError("Start: called twice");
    started_ = true;
  }
  SSIHV_RETURN_IF_ERROR(ValidateOptions(config_, self(), options_));
  SSIHV_RETURN_IF_ERROR(loop_.Init());
  SSIHV_ASSIGN_OR_RETURN(restore_timer_, sys::TimerFdCreate());
  SSIHV_RETURN_IF_ERROR(sys::EpollAdd(loop_.epoll_fd(), restore_timer_.get(),
                                      EPOLLIN, kRestoreTimerToken));
  control_ = std::make_unique<ControlPlane>(
      config_, self(), options_, WireBackend::kTcp,
      [this](ControlPlane::Authenticated a) {
        loop_.Post([this, a] {
          if (a.lane) {
            AdoptLane(a.peer, base::UniqueFd(a.fd));
          } else {
            Adopt(a);
          }
        });
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
  return st;
}

void TcpTransport::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (!started_ || stopped_) return;
    stopped_ = true;
  }
  control_->Stop();
  // Closing posts each connection's teardown; Stop() runs after them (the
  // loop drains its task queue before returning).
  loop_.Post([this] {
    for (auto& [token, conn] : by_token_) conn->Close("shutting down");
  });
  loop_.Post([this] { loop_.Stop(); });
  data_thread_.join();
  JoinServedLanes();
  {
    std::lock_guard<std::mutex> lock(restore_mu_);
    restore_.clear();
  }
  std::lock_guard<std::mutex> lock(conns_mu_);
  for (auto& c : current_) c.reset();
  advertised_.clear();
  by_token_.clear();
}

void TcpTransport::RunDataThread() {
  EnterDataThread();
  loop_.Run(
      [this](uint64_t token, uint32_t events) {
        if (token == kRestoreTimerToken) {
          OnRestoreTimer();
          return;
        }
        auto it = by_token_.find(token);
        if (it == by_token_.end()) return;
        std::shared_ptr<TcpConnection> conn = it->second;
        conn->OnEvents(events);
      },
      [this] {
        absl::Time now = absl::Now();
        std::vector<std::shared_ptr<TcpConnection>> conns;
        for (auto& [token, conn] : by_token_) conns.push_back(conn);
        for (auto& conn : conns) conn->CheckTimeouts(now);
      },
      kPendingTick);
}

void TcpTransport::RestoreInLater(std::shared_ptr<TcpConnection> conn) {
  if (options_.tcp_rearm_delay <= absl::ZeroDuration()) return;
  std::lock_guard<std::mutex> lock(restore_mu_);
  restore_.push_back(std::move(conn));
  if (!restore_armed_) {
    restore_armed_ = true;
    sys::TimerFdArm(restore_timer_.get(), options_.tcp_rearm_delay);
  }
}

void TcpTransport::OnRestoreTimer() {
  sys::TimerFdDrain(restore_timer_.get());
  std::vector<std::shared_ptr<TcpConnection>> due;
  {
    std::lock_guard<std::mutex> lock(restore_mu_);
    due.swap(restore_);
    restore_armed_ = false;
  }
  for (auto& conn : due) conn->RestoreInWhenFree();
}

void TcpTransport::Adopt(ControlPlane::Authenticated a) {
  base::UniqueFd fd(a.fd);
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (stopped_) return;
  }
  absl::Status st = sys::SetBlocking(fd.get());
  if (st.ok()) st = sys::SetTcpNoDelay(fd.get());
  if (st.ok()) st = sys::SetKeepAlive(fd.get(), kSocketKeepAlive);
  if (st.ok()) st = sys::SetReceiveTimeout(fd.get(), kReceiveTimeout);
  const uint64_t token = next_token_++;
  auto conn =
      std::make_shared<TcpConnection>(this, a.peer, std::move(fd), token);
  if (st.ok()) {
    st = sys::EpollAdd(loop_.epoll_fd(), conn->fd(), EPOLLIN | EPOLLRDHUP,
                       token);
  }
  if (!st.ok()) {
    Log(LogLevel::kError, "rdmax node ", self(), ": connection from node ",
        a.peer, ": ", st.message());
    if (a.dialer) control_->ConnectionLost(a.peer);
    return;
  }
  // Older connections from the same peer belong to a previous incarnation
  // (or lost a race); the newest authenticated one wins.
  for (auto& [t, other] : by_token_) {
    if (other->peer() == a.peer) {
      other->Close(
          absl::StrCat("replaced by a newer connection from node ", a.peer));
    }
  }
  by_token_[token] = conn;
  // The region table is the first frame: under the exclusive region lock,
  // so a concurrent RegisterRegion advertises to this connection exactly
  // once (either in the table or as an add after it).
  std::unique_lock<std::shared_mutex> regions_lock(regions_.mutex());
  std::vector<RegionEntry> entries = regions_.ExportedEntries();
  std::vector<uint8_t> table(entries.size() * kRegionEntrySize);
  for (size_t i = 0; i < entries.size(); ++i) {
    EncodeRegionEntry(entries[i], table.data() + i * kRegionEntrySize);
  }
  FrameHeader h;
  h.kind = FrameKind::kRegionTable;
  h.length = static_cast<uint32_t>(table.size());
  struct iovec iov = {table.data(), table.size()};
  conn->SendFrame(h, &iov, 1, SendMode::kForce, absl::InfinitePast())
      .IgnoreError();
  std::lock_guard<std::mutex> lock(conns_mu_);
  advertised_.push_back(conn);
}

void TcpTransport::OnConnectionUp(std::shared_ptr<TcpConnection> conn) {
  std::shared_ptr<TcpConnection> old;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    old = std::exchange(current_[conn->peer()], conn);
  }
  if (old != nullptr && old != conn) {
    // The peer restarted: report the old incarnation gone first.
    StopServedLanes(*old);
    Bump(stats_.connections_lost);
    NotePeerState(conn->peer(), PeerState::kDown);
  }
  Bump(stats_.connections_established);
  NotePeerState(conn->peer(), PeerState::kUp);
}

void TcpTransport::PostTeardown(std::shared_ptr<TcpConnection> conn) {
  loop_.Post([this, conn = std::move(conn)] {
    conn->Teardown();
    by_token_.erase(conn->token());
    bool was_current = false;
    bool peer_connected = false;
    {
      std::lock_guard<std::mutex> lock(conns_mu_);
      if (current_[conn->peer()] == conn) {
        current_[conn->peer()].reset();
        was_current = true;
      }
      std::erase(advertised_, conn);
      peer_connected = current_[conn->peer()] != nullptr;
    }
    for (auto& [t, other] : by_token_) {
      peer_connected |= other->peer() == conn->peer() && !other->dead();
    }
    StopServedLanes(*conn);
    if (was_current) {
      Bump(stats_.connections_lost);
      NotePeerState(conn->peer(), PeerState::kDown);
    }
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      stopping = stopped_;
    }
    // Only the dialing side redials, and only if no other connection to
    // the peer is alive (else a replaced connection would start a loop).
    if (!stopping && conn->peer() < self() && !peer_connected) {
      control_->ConnectionLost(conn->peer());
    }
  });
}

void TcpTransport::PostService(std::shared_ptr<TcpConnection> conn) {
  loop_.Post([conn = std::move(conn)] { conn->ServiceRead(); });
}

absl::StatusOr<std::shared_ptr<TcpConnection>> TcpTransport::Connection(
    NodeId peer, absl::string_view op) {
  // A connection is up before it becomes current (OnConnectionUp).
  return LiveChannel(conns_mu_, current_, peer, op);
}

absl::StatusOr<std::shared_ptr<FrameChannel>> TcpTransport::Channel(
    NodeId peer, absl::string_view op) {
  return Connection(peer, op);
}

std::vector<std::shared_ptr<FrameChannel>> TcpTransport::Advertised() {
  std::lock_guard<std::mutex> lock(conns_mu_);
  return {advertised_.begin(), advertised_.end()};
}

absl::Status TcpTransport::RegisterRegion(RegionId id, void* base,
                                          size_t length, RegionAccess access) {
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  SSIHV_RETURN_IF_ERROR(regions_.Validate(id, base, length));
  if (regions_.ExportedEntries().size() >= kMaxRegions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "RegisterRegion id=", id, ": at most ", kMaxRegions, " regions"));
  }
  LocalRegion r;
  r.id = id;
  r.base = static_cast<uint8_t*>(base);
  r.length = length;
  r.access = access;
  regions_.Add(r);
  if (access == RegionAccess::kRemoteRead) {
    uint8_t entry[kRegionEntrySize];
    EncodeRegionEntry(LocalRegions::EntryOf(r), entry);
    Broadcast(FrameKind::kRegionAdd, entry);
  }
  return absl::OkStatus();
}

absl::Status TcpTransport::UnregisterRegion(RegionId id) {
  // The exclusive lock waits for fetches being served from the region.
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  SSIHV_ASSIGN_OR_RETURN(LocalRegion r, regions_.Remove(id));
  if (r.access == RegionAccess::kRemoteRead) {
    uint8_t payload[8];
    EncodeRegionId(id, payload);
    Broadcast(FrameKind::kRegionRemove, payload);
  }
  return absl::OkStatus();
}

absl::StatusOr<PendingOp*> TcpTransport::StartFetch(TcpConnection& conn,
                                                    RegionId region,
                                                    absl::Span<uint8_t> dst,
                                                    absl::Time deadline) {
  PendingOp* op =
      conn.pending().Acquire(OpKind::kFetch, true, deadline, deadline);
  if (op == nullptr) {
    return absl::DeadlineExceededError(
        absl::StrCat("Fetch node=", conn.peer(), ": no request slot in time"));
  }
  op->dst = dst.data();
  op->length = static_cast<uint32_t>(dst.size());
  op->region = region;
  return op;
}

absl::Status TcpTransport::SendFetchRequest(TcpConnection& conn,
                                            const PendingOp& op,
                                            RegionId region, uint64_t offset,
                                            SendMode mode,
                                            absl::Time deadline) {
  uint8_t payload[kFetchRequestSize];
  EncodeFetchRequest({region, op.length, offset}, payload);
  FrameHeader h;
  h.kind = FrameKind::kFetchRequest;
  h.id = op.id;
  h.length = kFetchRequestSize;
  return conn.SendFrame(h, payload, mode, deadline);
}

absl::Status TcpTransport::Fetch(NodeId peer, RegionId region, uint64_t offset,
                                 absl::Span<uint8_t> dst) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("Fetch"));
  SSIHV_ASSIGN_OR_RETURN(auto conn, Connection(peer, "Fetch"));
  SSIHV_RETURN_IF_ERROR(CheckFetch(*conn, region, offset, dst));
  absl::Time deadline = absl::Now() + options_.op_timeout;
  if (options_.fetch_lanes > 0) {
    std::optional<absl::Status> over_lane =
        FetchOverLane(conn, region, offset, dst, deadline);
    if (over_lane.has_value()) return *over_lane;
  }
  SSIHV_ASSIGN_OR_RETURN(PendingOp * op,
                         StartFetch(*conn, region, dst, deadline));
  absl::Status st =
      SendFetchRequest(*conn, *op, region, offset, SendMode::kWait, deadline);
  uint32_t prev;
  if (!st.ok() && PendingTable::Claim(op, &prev)) {
    conn->pending().Release(op);
    return st;
  }
  conn->AwaitSync(op, deadline);
  absl::Status result = op->status;
  conn->pending().Release(op);
  return result;
}

absl::StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(
    const cluster::ClusterConfig& config, NodeId self,
    TransportOptions options) {
  SSIHV_RETURN_IF_ERROR(ValidateOptions(config, self, options));
  return std::unique_ptr<Transport>(
      new TcpTransport(config, self, std::move(options)));
}

}  // namespace ssihv::rdmax
