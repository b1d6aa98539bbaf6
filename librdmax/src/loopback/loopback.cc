// The loopback transport, its fabric and the public LoopbackFabric
// (loopback_transport.h has the design).
#include "ssihv/rdmax/loopback.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "auth.h"
#include "loopback/loopback_transport.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

// The network backends' handshake, run in memory: OK when `acceptor`
// accepted a dialer claiming `claimed` with `secret`.
absl::Status Handshake(const std::string& secret, NodeId claimed,
                       LoopbackTransport& acceptor, uint32_t nodes) {
  DialerHandshake d(secret, claimed, acceptor.self(), WireBackend::kTcp);
  AcceptorHandshake a(acceptor.secret(), acceptor.self(), nodes,
                      WireBackend::kTcp);
  auto hello = d.Hello();
  auto challenge = hello.ok() ? a.OnHello(*hello) : hello;
  auto proof = challenge.ok() ? d.OnChallenge(*challenge) : challenge;
  return proof.ok() ? a.OnProof(*proof) : proof.status();
}

}  // namespace

void LoopbackFabricImpl::ConnectLocked(LoopbackTransport* a,
                                       LoopbackTransport* b) {
  if (a->HasLink(b->self()) || b->HasLink(a->self())) return;
  // As on TCP, the higher id dials.
  LoopbackTransport* dialer = a->self() > b->self() ? a : b;
  LoopbackTransport* acceptor = dialer == a ? b : a;
  absl::Status st = Handshake(dialer->secret(), dialer->self(), *acceptor,
                              static_cast<uint32_t>(config.num_nodes()));
  if (!st.ok()) {
    acceptor->NoteAuthFailure(st, dialer->self());
    dialer->NoteAuthFailure(st, acceptor->self());
    return;
  }
  auto link = std::make_shared<LoopbackLink>();
  auto dialer_end =
      std::make_shared<LoopbackChannel>(dialer, acceptor->self(), link, 0);
  auto acceptor_end =
      std::make_shared<LoopbackChannel>(acceptor, dialer->self(), link, 1);
  dialer->Adopt(dialer_end);
  acceptor->Adopt(acceptor_end);
  // Frames are posted only under the link's mutex, so both "up"s are
  // queued before the first frame on either side.
  std::lock_guard<std::mutex> lock(link->mu);
  link->ends[0] = dialer_end.get();
  link->ends[1] = acceptor_end.get();
  dialer->PostUp(std::move(dialer_end));
  acceptor->PostUp(std::move(acceptor_end));
}

void LoopbackFabricImpl::Reconnect(LoopbackTransport* self, NodeId peer) {
  std::lock_guard<std::mutex> lock(mu);
  if (started[self->self()] != self || started[peer] == nullptr) return;
  ConnectLocked(self, started[peer]);
}

LoopbackTransport::LoopbackTransport(std::shared_ptr<LoopbackFabricImpl> fabric,
                                     NodeId self, TransportOptions options)
    : FramedTransport(fabric->config, self, std::move(options)),
      fabric_(std::move(fabric)),
      current_(config_.num_nodes()) {}

LoopbackTransport::~LoopbackTransport() { Shutdown(); }

std::string LoopbackTransport::Describe() const {
  return absl::StrCat("loopback (in-process) node ", self());
}

absl::Status LoopbackTransport::Start() {
  std::lock_guard<std::mutex> lock(fabric_->mu);
  if (started_) return absl::FailedPreconditionError("Start: already started");
  if (fabric_->started[self()] != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("loopback: node ", self(), " is already attached"));
  }
  SSIHV_RETURN_IF_ERROR(loop_.Init());
  started_ = true;
  data_thread_ = std::thread([this] {
    EnterDataThread();
    loop_.Run([](uint64_t, uint32_t) {}, [this] { OnTick(); }, kPendingTick);
  });
  base::NameThread(data_thread_, "rdmax-data");
  fabric_->started[self()] = this;
  for (LoopbackTransport* other : fabric_->started) {
    if (other != nullptr && other != this) fabric_->ConnectLocked(this, other);
  }
  return absl::OkStatus();
}

void LoopbackTransport::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(fabric_->mu);
    if (!started_ || stopped_) return;
    stopped_ = true;
    fabric_->started[self()] = nullptr;  // no new links from here on
  }
  // Closing posts each end's teardown; Stop() runs after them. No peer
  // posts here afterwards, and no peer copies from this node's regions:
  // every end of this node is closed, and closing an end takes the link's
  // mutex, which a copy in progress holds.
  for (auto& channel : Channels()) channel->Close("shutting down");
  loop_.Stop();
  data_thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  channels_.clear();
  for (auto& c : current_) c.reset();
}

void LoopbackTransport::NoteAuthFailure(const absl::Status& why,
                                        NodeId claimed) {
  Bump(stats_.auth_failures);
  Log(LogLevel::kWarning, "rdmax node ", self(), ": authentication with ",
      "a peer claiming node ", claimed, " failed, dropped: ", why.message());
}

std::vector<std::shared_ptr<LoopbackChannel>> LoopbackTransport::Channels() {
  std::lock_guard<std::mutex> lock(mu_);
  return channels_;
}

bool LoopbackTransport::HasLink(NodeId peer) {
  for (auto& c : Channels()) {
    if (c->peer() == peer && c->Linked()) return true;
  }
  return false;
}

void LoopbackTransport::Adopt(std::shared_ptr<LoopbackChannel> channel) {
  std::lock_guard<std::mutex> lock(mu_);
  channels_.push_back(std::move(channel));
}

void LoopbackTransport::PostUp(std::shared_ptr<LoopbackChannel> channel) {
  loop_.Post([this, channel = std::move(channel)] { OnChannelUp(channel); });
}

void LoopbackTransport::PostFrame(std::shared_ptr<LoopbackChannel> channel,
                                  std::vector<uint8_t> frame, size_t charged) {
  loop_.Post([channel = std::move(channel), frame = std::move(frame), charged] {
    channel->Receive(frame, charged);
  });
}

void LoopbackTransport::PostRemoteClosed(
    std::shared_ptr<LoopbackChannel> channel) {
  loop_.Post([channel = std::move(channel)] {
    channel->Close(
        absl::StrCat("node ", channel->peer(), " closed the connection"));
  });
}

void LoopbackTransport::PostTeardown(std::shared_ptr<LoopbackChannel> channel) {
  loop_.Post([this, channel = std::move(channel)] { OnTeardown(channel); });
}

void LoopbackTransport::OnChannelUp(
    const std::shared_ptr<LoopbackChannel>& channel) {
  if (channel->dead()) return;  // closed before it came up: never reported
  channel->MarkUp();
  const NodeId peer = channel->peer();
  std::shared_ptr<LoopbackChannel> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::exchange(current_[peer], channel);
  }
  if (old != nullptr) {
    // The old link's teardown is still queued: report it gone first.
    Bump(stats_.connections_lost);
    NotePeerState(peer, PeerState::kDown);
  }
  Bump(stats_.connections_established);
  NotePeerState(peer, PeerState::kUp);
}

void LoopbackTransport::OnTeardown(
    const std::shared_ptr<LoopbackChannel>& channel) {
  channel->Teardown();
  const NodeId peer = channel->peer();
  bool was_current = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(channels_, channel);
    if (current_[peer] == channel) {
      current_[peer].reset();
      was_current = true;
    }
  }
  if (was_current) {
    Bump(stats_.connections_lost);
    NotePeerState(peer, PeerState::kDown);
  }
  if (peer < self()) fabric_->Reconnect(this, peer);
}

void LoopbackTransport::OnTick() {
  absl::Time now = absl::Now();
  for (auto& channel : Channels()) channel->CheckTimeouts(now);
}

absl::StatusOr<std::shared_ptr<FrameChannel>> LoopbackTransport::Channel(
    NodeId peer, absl::string_view op) {
  return LiveChannel(mu_, current_, peer, op);
}

absl::Status LoopbackTransport::RegisterRegion(RegionId id, void* base,
                                               size_t length,
                                               RegionAccess access) {
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  SSIHV_RETURN_IF_ERROR(regions_.Validate(id, base, length));
  // Nothing to advertise: peers copy from the table itself (ServeFetch).
  regions_.Add(LocalRegion{.id = id,
                           .base = static_cast<uint8_t*>(base),
                           .length = length,
                           .access = access});
  return absl::OkStatus();
}

absl::Status LoopbackTransport::UnregisterRegion(RegionId id) {
  // The exclusive lock waits for fetches copying from it.
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  return regions_.Remove(id).status();
}

absl::Status LoopbackTransport::Fetch(NodeId peer, RegionId region,
                                      uint64_t offset,
                                      absl::Span<uint8_t> dst) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("Fetch"));
  return CopyFrom(peer, region, offset, dst);
}

absl::Status LoopbackTransport::CopyFrom(NodeId peer, RegionId region,
                                         uint64_t offset,
                                         absl::Span<uint8_t> dst) {
  SSIHV_RETURN_IF_ERROR(CheckPeer(peer, "Fetch"));
  if (dst.empty() || dst.size() > options_.max_fetch_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("Fetch node=", peer, ": length ", dst.size(),
                     " not in 1..", options_.max_fetch_bytes));
  }
  SSIHV_ASSIGN_OR_RETURN(std::shared_ptr<LoopbackChannel> channel,
                         LiveChannel(mu_, current_, peer, "Fetch"));
  absl::Status st = channel->FetchFromPeer(region, offset, dst);
  if (st.ok()) {
    CountFetched(peer, dst.size());
  } else if (!absl::IsUnavailable(st)) {
    Bump(stats_.fetches_refused);
  }
  return st;
}

absl::Status LoopbackTransport::ServeFetch(NodeId to, RegionId region,
                                           uint64_t offset,
                                           absl::Span<uint8_t> dst) {
  LocalRegions::ReadLock region_lock(regions_);
  SSIHV_ASSIGN_OR_RETURN(
      const uint8_t* p,
      regions_.ResolveForServing(self(), region, offset, dst.size()));
  std::memcpy(dst.data(), p, dst.size());
  CountServed(to, dst.size());
  return absl::OkStatus();
}

LoopbackFabric::LoopbackFabric(std::shared_ptr<LoopbackFabricImpl> impl)
    : impl_(std::move(impl)) {}

std::shared_ptr<LoopbackFabric> LoopbackFabric::Create(
    const cluster::ClusterConfig& config) {
  return std::make_shared<LoopbackFabric>(
      std::make_shared<LoopbackFabricImpl>(config));
}

absl::StatusOr<std::unique_ptr<Transport>> LoopbackFabric::CreateTransport(
    NodeId self, TransportOptions options) {
  if (self >= impl_->config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("loopback: node ", self, " is not in the cluster config"));
  }
  SSIHV_RETURN_IF_ERROR(ValidateOptions(impl_->config, self, options));
  return std::unique_ptr<Transport>(
      new LoopbackTransport(impl_, self, std::move(options)));
}

absl::Status LoopbackFabric::TryAuthenticateAs(NodeId target, NodeId claimed,
                                               const std::string& secret) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (target >= impl_->started.size() || impl_->started[target] == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("loopback: node ", target, " is not started"));
  }
  LoopbackTransport* t = impl_->started[target];
  absl::Status st = Handshake(secret, claimed, *t,
                              static_cast<uint32_t>(impl_->config.num_nodes()));
  if (!st.ok()) t->NoteAuthFailure(st, claimed);
  return st;
}

}  // namespace ssihv::rdmax
