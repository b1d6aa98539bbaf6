// The in-process loopback backend. Each transport owns an Endpoint (inbox,
// regions, pending operations) and a data thread draining the inbox; the
// fabric links started endpoints after running the same authentication
// handshake as the network backends. Messages are copied into the
// receiver's bounded inbox (per-sender byte budget = the sender's
// send_queue_bytes); fetches copy straight from the peer's region under its
// region lock.
#include "ssihv/rdmax/loopback.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "auth.h"
#include "pending.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "transport_base.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

struct Event {
  enum class Kind {
    kMessage,
    kRequest,
    kResponse,
    kPeerUp,
    kPeerDown,
    kFetchDone,
    kStop
  };
  Kind kind = Kind::kMessage;
  NodeId from = 0;
  MessageType type = 0;
  uint64_t id = 0;
  std::vector<uint8_t> payload;
  absl::Status status;  // kResponse error / kFetchDone result
  FetchCallback fetch_done;
  size_t charged = 0;  // bytes charged to the sender's budget
};

constexpr size_t kEventOverhead = 64;

class LoopbackTransport;

}  // namespace

class LoopbackFabricImpl {
 public:
  explicit LoopbackFabricImpl(const cluster::ClusterConfig& config)
      : config(config), started(config.num_nodes(), nullptr) {}
  cluster::ClusterConfig config;
  std::mutex mu;
  std::condition_variable space_cv;         // an inbox freed budget
  std::vector<LoopbackTransport*> started;  // guarded by mu
};

namespace {

class LoopbackTransport final : public TransportBase {
 public:
  LoopbackTransport(std::shared_ptr<LoopbackFabricImpl> fabric, NodeId self,
                    TransportOptions options)
      : TransportBase(fabric->config, self, std::move(options)),
        fabric_(std::move(fabric)),
        linked_(config_.num_nodes(), false),
        budget_used_(config_.num_nodes(), 0) {
    for (size_t i = 0; i < config_.num_nodes(); ++i) {
      pending_.push_back(std::make_unique<PendingTable>(
          std::max<uint32_t>(1, options_.max_outstanding),
          static_cast<NodeId>(i)));
    }
  }
  ~LoopbackTransport() override { Shutdown(); }

  BackendKind kind() const override { return BackendKind::kLoopback; }
  std::string Describe() const override {
    return absl::StrCat("loopback (in-process) node ", self());
  }

  absl::Status Start() override;
  void Shutdown() override;

  absl::Status RegisterRegion(RegionId id, void* base, size_t length,
                              RegionAccess access) override {
    std::unique_lock<std::shared_mutex> lock(regions_.mutex());
    SSIHV_RETURN_IF_ERROR(regions_.Validate(id, base, length));
    LocalRegion r;
    r.id = id;
    r.base = static_cast<uint8_t*>(base);
    r.length = length;
    r.access = access;
    regions_.Add(r);
    return absl::OkStatus();
  }
  absl::Status UnregisterRegion(RegionId id) override {
    // The exclusive lock waits for fetches copying from it.
    std::unique_lock<std::shared_mutex> lock(regions_.mutex());
    return regions_.Remove(id).status();
  }

  absl::Status Send(NodeId to, MessageType type,
                    absl::Span<const uint8_t> payload,
                    absl::Time deadline) override {
    Event e;
    e.kind = Event::Kind::kMessage;
    e.type = type;
    e.payload.assign(payload.begin(), payload.end());
    return Post(to, std::move(e), /*budgeted=*/true, deadline, "Send");
  }
  absl::Status Call(NodeId to, MessageType type,
                    absl::Span<const uint8_t> payload,
                    ResponseCallback done) override;
  absl::StatusOr<size_t> CallSync(NodeId to, MessageType type,
                                  absl::Span<const uint8_t> payload,
                                  absl::Span<uint8_t> response) override;
  absl::Status Reply(const ReplyToken& to, MessageType type,
                     absl::Span<const uint8_t> payload) override {
    Event e;
    e.kind = Event::Kind::kResponse;
    e.type = type;
    e.id = to.request_id;
    e.payload.assign(payload.begin(), payload.end());
    return Post(to.to, std::move(e), false, absl::InfinitePast(), "Reply");
  }
  absl::Status ReplyError(const ReplyToken& to,
                          const absl::Status& error) override {
    Event e;
    e.kind = Event::Kind::kResponse;
    e.id = to.request_id;
    e.status = error.ok() ? absl::UnknownError("error reply with OK") : error;
    return Post(to.to, std::move(e), false, absl::InfinitePast(), "Reply");
  }
  absl::Status Fetch(NodeId peer, RegionId region, uint64_t offset,
                     absl::Span<uint8_t> dst) override {
    SSIHV_RETURN_IF_ERROR(CheckMayBlock("Fetch"));
    return CopyFrom(peer, region, offset, dst);
  }
  absl::Status FetchAsync(NodeId peer, RegionId region, uint64_t offset,
                          absl::Span<uint8_t> dst,
                          FetchCallback done) override {
    // Every failure is known at once here (refusals are immediate on every
    // backend); success is reported on the data thread like elsewhere.
    SSIHV_RETURN_IF_ERROR(CopyFrom(peer, region, offset, dst));
    Event e;
    e.kind = Event::Kind::kFetchDone;
    e.fetch_done = std::move(done);
    Enqueue(std::move(e));
    return absl::OkStatus();
  }

  // ---- used by the fabric (its mutex held) ----
  void Link(NodeId peer) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      linked_[peer] = true;
    }
    Event e;
    e.kind = Event::Kind::kPeerUp;
    e.from = peer;
    Enqueue(std::move(e));
  }
  void Unlink(NodeId peer) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!linked_[peer]) return;
      linked_[peer] = false;
      budget_used_[peer] = 0;
    }
    fabric_->space_cv.notify_all();
    Event e;
    e.kind = Event::Kind::kPeerDown;
    e.from = peer;
    Enqueue(std::move(e));
  }
  const std::string& secret() const { return options_.secret; }
  void NoteAuthFailure(const absl::Status& why, NodeId claimed) {
    Bump(stats_.auth_failures);
    Log(LogLevel::kWarning, "rdmax node ", self(), ": authentication with ",
        "a peer claiming node ", claimed, " failed, dropped: ", why.message());
  }
  // Queues an event from `from` (the caller holds the fabric's mutex, so
  // this transport is alive); ResourceExhausted when the sender's budget
  // here is used up.
  absl::Status Accept(NodeId from, Event& e, bool budgeted);

 private:
  absl::Status Post(NodeId to, Event e, bool budgeted, absl::Time deadline,
                    absl::string_view op);
  void Enqueue(Event e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      inbox_.push_back(std::move(e));
    }
    inbox_cv_.notify_one();
  }
  absl::Status CopyFrom(NodeId peer, RegionId region, uint64_t offset,
                        absl::Span<uint8_t> dst);
  void Run();
  void Dispatch(Event& e);
  void CompleteCall(Event& e);
  void FailPending(NodeId peer);

  std::shared_ptr<LoopbackFabricImpl> fabric_;
  std::mutex mu_;
  std::condition_variable inbox_cv_;
  std::deque<Event> inbox_;
  std::vector<bool> linked_;         // guarded by mu_
  std::vector<size_t> budget_used_;  // bytes queued here per sender
  std::vector<std::unique_ptr<PendingTable>> pending_;  // per peer
  std::thread thread_;
  bool started_ = false;
  bool stopped_ = false;
};

absl::Status LoopbackTransport::Start() {
  SSIHV_RETURN_IF_ERROR(ValidateSecret(options_.secret));
  std::lock_guard<std::mutex> lock(fabric_->mu);
  if (started_) return absl::FailedPreconditionError("Start: already started");
  if (fabric_->started[self()] != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("loopback: node ", self(), " is already attached"));
  }
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  fabric_->started[self()] = this;
  for (NodeId peer = 0; peer < fabric_->started.size(); ++peer) {
    LoopbackTransport* other = fabric_->started[peer];
    if (other == nullptr || other == this) continue;
    LoopbackTransport* dialer = peer < self() ? this : other;
    LoopbackTransport* acceptor = peer < self() ? other : this;
    DialerHandshake d(dialer->secret(), dialer->self(), acceptor->self(),
                      WireBackend::kTcp);
    AcceptorHandshake a(acceptor->secret(), acceptor->self(),
                        static_cast<uint32_t>(config_.num_nodes()),
                        WireBackend::kTcp);
    absl::Status st;
    auto hello = d.Hello();
    auto challenge = hello.ok() ? a.OnHello(*hello) : hello;
    auto proof = challenge.ok() ? d.OnChallenge(*challenge) : challenge;
    st = proof.ok() ? a.OnProof(*proof) : proof.status();
    if (!st.ok()) {
      acceptor->NoteAuthFailure(st, dialer->self());
      dialer->NoteAuthFailure(st, acceptor->self());
      continue;
    }
    Bump(stats_.connections_established);
    this->Link(peer);
    other->Link(self());
  }
  return absl::OkStatus();
}

void LoopbackTransport::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(fabric_->mu);
    if (!started_ || stopped_) return;
    stopped_ = true;
    fabric_->started[self()] = nullptr;
    for (NodeId peer = 0; peer < fabric_->started.size(); ++peer) {
      if (LoopbackTransport* other = fabric_->started[peer]) {
        other->Unlink(self());
        Unlink(peer);
      }
    }
  }
  Event stop;
  stop.kind = Event::Kind::kStop;
  Enqueue(std::move(stop));
  thread_.join();
  // Fetches copying from our regions hold the fabric or region lock; once
  // unlinked and with the exclusive lock taken, none is left.
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
}

absl::Status LoopbackTransport::Accept(NodeId from, Event& e, bool budgeted) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!linked_[from]) {
    return absl::UnavailableError(
        absl::StrCat("node ", from, " -> ", self(), ": not connected"));
  }
  if (budgeted) {
    e.charged = e.payload.size() + kEventOverhead;
    if (budget_used_[from] + e.charged > options_.send_queue_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("node ", from, " -> ", self(), ": send queue full (",
                       budget_used_[from], " bytes queued)"));
    }
    budget_used_[from] += e.charged;
  }
  e.from = from;
  inbox_.push_back(std::move(e));
  lock.unlock();
  inbox_cv_.notify_one();
  return absl::OkStatus();
}

absl::Status LoopbackTransport::Post(NodeId to, Event e, bool budgeted,
                                     absl::Time deadline,
                                     absl::string_view op) {
  SSIHV_RETURN_IF_ERROR(CheckPeer(to, op));
  if (e.payload.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, " node=", to, ": payload of ", e.payload.size(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }
  const bool may_wait = !OnDataThread();
  // Messages and requests are counted (as FramedTransport does); replies
  // and peer events are not.
  const bool counted =
      e.kind == Event::Kind::kMessage || e.kind == Event::Kind::kRequest;
  const uint64_t bytes = e.payload.size();  // Accept moves `e` away
  const bool reply = e.kind == Event::Kind::kResponse;
  // The fabric mutex keeps `to` alive while posting; it is released while
  // waiting for room (the receiver's handlers may need it to send).
  std::unique_lock<std::mutex> lock(fabric_->mu);
  for (;;) {
    LoopbackTransport* dest = fabric_->started[to];
    {
      std::lock_guard<std::mutex> l(mu_);
      if (dest == nullptr || !linked_[to]) {
        if (counted) CountPeerError(to);
        return absl::UnavailableError(
            absl::StrCat(op, " node=", to, ": not connected"));
      }
    }
    absl::Status st = dest->Accept(self(), e, budgeted);
    if (st.ok()) {
      if (counted) CountSent(to, bytes);
      if (reply) CountReplyBytes(to, bytes, /*sent=*/true);
      return st;
    }
    if (!absl::IsResourceExhausted(st) || !may_wait ||
        absl::Now() >= deadline) {
      if (absl::IsResourceExhausted(st)) Bump(stats_.send_queue_full);
      if (counted) CountPeerError(to);
      return st;
    }
    fabric_->space_cv.wait_for(lock, std::chrono::milliseconds(5));
  }
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
  std::lock_guard<std::mutex> lock(fabric_->mu);
  LoopbackTransport* src = fabric_->started[peer];
  {
    std::lock_guard<std::mutex> l(mu_);
    if (src == nullptr || !linked_[peer]) {
      return absl::UnavailableError(
          absl::StrCat("Fetch node=", peer, ": not connected"));
    }
  }
  LocalRegions::ReadLock region_lock(src->regions_);
  absl::StatusOr<const uint8_t*> p =
      src->regions_.ResolveForServing(peer, region, offset, dst.size());
  if (!p.ok()) {
    Bump(stats_.fetches_refused);
    return p.status();
  }
  std::memcpy(dst.data(), *p, dst.size());
  CountFetched(peer, dst.size());
  src->CountServed(self(), dst.size());
  return absl::OkStatus();
}

absl::Status LoopbackTransport::Call(NodeId to, MessageType type,
                                     absl::Span<const uint8_t> payload,
                                     ResponseCallback done) {
  SSIHV_RETURN_IF_ERROR(CheckPeer(to, "Call"));
  PendingOp* op = pending_[to]->Acquire(
      OpKind::kCall, false, absl::InfiniteFuture(), absl::InfinitePast());
  if (op == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Call node=", to, ": too many requests in flight"));
  }
  op->call_done = std::move(done);
  Event e;
  e.kind = Event::Kind::kRequest;
  e.type = type;
  e.id = op->id;
  e.payload.assign(payload.begin(), payload.end());
  absl::Status st = Post(to, std::move(e), true, absl::InfinitePast(), "Call");
  if (!st.ok()) pending_[to]->Release(op);
  return st;
}

absl::StatusOr<size_t> LoopbackTransport::CallSync(
    NodeId to, MessageType type, absl::Span<const uint8_t> payload,
    absl::Span<uint8_t> response) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("CallSync"));
  SSIHV_RETURN_IF_ERROR(CheckPeer(to, "CallSync"));
  absl::Time deadline = absl::Now() + options_.op_timeout;
  PendingOp* op =
      pending_[to]->Acquire(OpKind::kCall, true, deadline, deadline);
  if (op == nullptr) {
    return absl::DeadlineExceededError(
        absl::StrCat("CallSync node=", to, ": no request slot in time"));
  }
  op->response = response;
  Event e;
  e.kind = Event::Kind::kRequest;
  e.type = type;
  e.id = op->id;
  e.payload.assign(payload.begin(), payload.end());
  absl::Status st = Post(to, std::move(e), true, deadline, "CallSync");
  if (!st.ok()) {
    pending_[to]->Release(op);
    return st;
  }
  if (!PendingTable::WaitDone(op, deadline, false)) {
    // Loopback cannot lose a response; a timeout means the peer's handler
    // never replied. Wait for the peer-down or a late reply to settle it.
    std::lock_guard<std::mutex> lock(mu_);
    if (op->state.load() != PendingOp::kDone) {
      op->status = absl::DeadlineExceededError(
          absl::StrCat("CallSync node=", to, ": no response in time"));
      PendingTable::Complete(op);
    }
  }
  absl::Status result = op->status;
  size_t n = op->response_length;
  pending_[to]->Release(op);
  if (!result.ok()) return result;
  return n;
}

void LoopbackTransport::Run() {
  EnterDataThread();
  for (;;) {
    Event e;
    {
      std::unique_lock<std::mutex> lock(mu_);
      inbox_cv_.wait(lock, [&] { return !inbox_.empty(); });
      e = std::move(inbox_.front());
      inbox_.pop_front();
      if (e.charged > 0) {
        budget_used_[e.from] -= std::min(budget_used_[e.from], e.charged);
      }
    }
    if (e.charged > 0) fabric_->space_cv.notify_all();
    if (e.kind == Event::Kind::kStop) break;
    Dispatch(e);
  }
  for (NodeId peer = 0; peer < pending_.size(); ++peer) FailPending(peer);
}

void LoopbackTransport::Dispatch(Event& e) {
  switch (e.kind) {
    case Event::Kind::kMessage:
    case Event::Kind::kRequest: {
      Message m;
      m.from = e.from;
      m.type = e.type;
      m.request_id = e.kind == Event::Kind::kRequest ? e.id : 0;
      m.payload = e.payload;
      Deliver(m);
      break;
    }
    case Event::Kind::kResponse:
      CompleteCall(e);
      break;
    case Event::Kind::kPeerUp:
      NotePeerState(e.from, PeerState::kUp);
      break;
    case Event::Kind::kPeerDown:
      FailPending(e.from);
      Bump(stats_.connections_lost);
      NotePeerState(e.from, PeerState::kDown);
      break;
    case Event::Kind::kFetchDone:
      if (e.fetch_done) e.fetch_done(e.status);
      break;
    case Event::Kind::kStop:
      break;
  }
}

void LoopbackTransport::CompleteCall(Event& e) {
  CountReplyBytes(e.from, e.payload.size(), /*sent=*/false);
  std::unique_lock<std::mutex> lock(mu_);
  PendingOp* op = pending_[e.from]->Find(e.id);
  if (op == nullptr) return;  // timed out meanwhile
  Message m;
  m.from = e.from;
  m.type = e.type;
  m.request_id = e.id;
  m.payload = e.payload;
  if (op->sync) {
    op->status = e.status;
    if (e.status.ok()) {
      op->response_length = e.payload.size();
      if (e.payload.size() > op->response.size()) {
        op->status = absl::OutOfRangeError(absl::StrCat(
            "CallSync node=", e.from, ": response of ", e.payload.size(),
            " bytes does not fit the buffer of ", op->response.size()));
      } else if (!e.payload.empty()) {
        std::memcpy(op->response.data(), e.payload.data(), e.payload.size());
      }
    }
    PendingTable::Complete(op);
    return;
  }
  lock.unlock();
  ResponseCallback done = std::move(op->call_done);
  pending_[e.from]->Release(op);
  if (done)
    done(e.status, e.status.ok() ? m : Message{e.from, e.type, e.id, {}});
}

void LoopbackTransport::FailPending(NodeId peer) {
  std::vector<absl::AnyInvocable<void()>> callbacks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    callbacks = pending_[peer]->FailAll(absl::UnavailableError(
        absl::StrCat("node ", peer, " went down with the request in flight")));
  }
  for (auto& cb : callbacks) cb();
}

}  // namespace

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
  SSIHV_RETURN_IF_ERROR(ValidateSecret(options.secret));
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
  DialerHandshake d(secret, claimed, target, WireBackend::kTcp);
  AcceptorHandshake a(t->secret(), target,
                      static_cast<uint32_t>(impl_->config.num_nodes()),
                      WireBackend::kTcp);
  auto hello = d.Hello();
  auto challenge = hello.ok() ? a.OnHello(*hello) : hello;
  auto proof = challenge.ok() ? d.OnChallenge(*challenge) : challenge;
  absl::Status st = proof.ok() ? a.OnProof(*proof) : proof.status();
  if (!st.ok()) t->NoteAuthFailure(st, claimed);
  return st;
}

}  // namespace ssihv::rdmax
