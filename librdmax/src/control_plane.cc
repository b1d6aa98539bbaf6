#include "control_plane.h"

#include <boost/asio.hpp>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/thread_name.h"
#include "sys/posix.h"

namespace ssihv::rdmax {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using base::Log;
using base::LogLevel;

namespace {

// Largest handshake payload (a challenge); anything bigger is refused by
// the header decoder before a byte of payload is read.
constexpr size_t kMaxHandshakePayload = kChallengeSize;

absl::StatusOr<tcp::endpoint> ResolveNumeric(absl::string_view key,
                                             const std::string& address) {
  std::string host;
  uint16_t port;
  absl::Status st = cluster::SplitAddress(key, address, &host, &port);
  if (!st.ok()) return st;
  boost::system::error_code ec;
  asio::ip::address ip = asio::ip::make_address(host, ec);
  if (ec) {
    // A host name: resolve it once, synchronously (start-up only).
    asio::io_context io;
    tcp::resolver resolver(io);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return absl::NotFoundError(
          absl::StrCat(key, ": cannot resolve '", host, "': ", ec.message()));
    }
    return results.begin()->endpoint();
  }
  return tcp::endpoint(ip, port);
}

}  // namespace

// Outside the anonymous namespace: ControlPlaneImpl, declared in
// control_plane.h, keeps pointers to it.
class HandshakeSession;

class ControlPlaneImpl : public std::enable_shared_from_this<ControlPlaneImpl> {
 public:
  ControlPlaneImpl(const cluster::ClusterConfig& config, NodeId self,
                   const TransportOptions& options, WireBackend backend,
                   ControlPlane::OnAuthenticated on_auth,
                   ControlPlane::OnAuthFailure on_failure)
      : config_(config),
        self_(self),
        options_(options),
        backend_(backend),
        on_auth_(std::move(on_auth)),
        on_failure_(std::move(on_failure)),
        work_(asio::make_work_guard(io_)),
        acceptor_(io_),
        rng_(std::random_device{}()) {}

  absl::Status Start();
  // Cancels everything in flight; run() returns once the cancelled
  // handlers have run (which also breaks the session -> impl references).
  void Stop();
  void ConnectionLost(NodeId peer) {
    asio::post(io_, [self = shared_from_this(), peer] {
      if (peer < self->dials_.size()) {
        self->ScheduleDial(peer, /*after_failure=*/false);
      }
    });
  }
  void DialLane(NodeId peer, ControlPlane::LaneDone done) {
    asio::post(io_, [self = shared_from_this(), peer,
                     done = std::move(done)]() mutable {
      self->DialLaneNow(peer, std::move(done));
    });
  }
  void Track(const std::shared_ptr<HandshakeSession>& s) {
    std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
    sessions_.push_back(s);
  }
  asio::io_context& io() { return io_; }

  // Handshake sessions call these.
  void Authenticated(NodeId peer, bool dialer, bool lane, tcp::socket socket);
  void LaneDialed(NodeId peer, tcp::socket socket, ControlPlane::LaneDone done);
  void LaneFailed(NodeId peer, const absl::Status& why,
                  ControlPlane::LaneDone done);
  void Failed(const absl::Status& why, bool dialer, NodeId peer);
  const cluster::ClusterConfig& config() const { return config_; }
  NodeId self() const { return self_; }
  const TransportOptions& options() const { return options_; }
  WireBackend backend() const { return backend_; }
  bool stopped() const { return stopped_; }

 private:
  struct Dial {
    explicit Dial(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    tcp::endpoint endpoint;
    absl::Duration backoff = absl::ZeroDuration();
    bool pending = false;  // a dial or a timer is in flight
  };
  void Accept();
  void ScheduleDial(NodeId peer, bool after_failure);
  void DialNow(NodeId peer);
  void DialLaneNow(NodeId peer, ControlPlane::LaneDone done);

  const cluster::ClusterConfig config_;
  const NodeId self_;
  const TransportOptions options_;
  const WireBackend backend_;
  ControlPlane::OnAuthenticated on_auth_;
  ControlPlane::OnAuthFailure on_failure_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<Dial>> dials_;  // peers 0..self-1
  // Every node's address (lanes go to any peer); unset if unresolvable.
  std::vector<std::optional<tcp::endpoint>> endpoints_;
  std::vector<std::weak_ptr<HandshakeSession>> sessions_;
  std::vector<std::weak_ptr<tcp::socket>> connecting_;
  std::mt19937 rng_;
  bool stopped_ = false;
};

// One connection's handshake, in either role, under one deadline.
class HandshakeSession : public std::enable_shared_from_this<HandshakeSession> {
 public:
  // `lane_done` set: this is a fetch lane this node dials.
  HandshakeSession(std::shared_ptr<ControlPlaneImpl> cp, tcp::socket socket,
                   bool dialer, NodeId target,
                   ControlPlane::LaneDone lane_done = nullptr)
      : cp_(std::move(cp)),
        socket_(std::move(socket)),
        timer_(cp_->io()),
        dialer_(dialer),
        target_(target),
        lane_done_(std::move(lane_done)) {}

  void Cancel() {
    boost::system::error_code ec;
    timer_.cancel();
    socket_.close(ec);
  }

  void Run() {
    cp_->Track(shared_from_this());
    timer_.expires_after(
        absl::ToChronoNanoseconds(cp_->options().handshake_timeout));
    timer_.async_wait(
        [self = shared_from_this()](boost::system::error_code ec) {
          if (!ec)
            self->Fail(absl::DeadlineExceededError("handshake timed out"));
        });
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    if (dialer_) {
      dial_ = std::make_unique<DialerHandshake>(
          cp_->options().secret, cp_->self(), target_,
          lane_done_ ? WireBackend::kTcpLane : cp_->backend());
      auto hello = dial_->Hello();
      if (!hello.ok()) return Fail(hello.status());
      Write(FrameKind::kHello, *hello, [self = shared_from_this()] {
        self->Read(WirePhase::kDialerHandshake,
                   [self](const FrameHeader& h) { self->OnChallenge(h); });
      });
    } else {
      acc_ = std::make_unique<AcceptorHandshake>(
          cp_->options().secret, cp_->self(),
          static_cast<uint32_t>(cp_->config().num_nodes()), cp_->backend());
      Read(WirePhase::kAcceptorHandshake,
           [self = shared_from_this()](const FrameHeader& h) {
             self->OnHello(h);
           });
    }
  }

 private:
  template <typename Then>
  void Read(WirePhase phase, Then then) {
    asio::async_read(
        socket_, asio::buffer(header_),
        [self = shared_from_this(), phase, then](boost::system::error_code ec,
                                                 size_t) mutable {
          if (ec) return self->Fail(self->Closed(ec));
          auto h = DecodeFrameHeader(self->header_, phase, FrameLimits{});
          if (!h.ok()) return self->Fail(h.status());
          if (h->length > kMaxHandshakePayload) {
            return self->Fail(absl::InvalidArgumentError("handshake payload"));
          }
          self->payload_.resize(h->length);
          asio::async_read(self->socket_, asio::buffer(self->payload_),
                           [self, h = *h, then](boost::system::error_code ec2,
                                                size_t) mutable {
                             if (ec2) return self->Fail(self->Closed(ec2));
                             then(h);
                           });
        });
  }

  template <typename Then>
  void Write(FrameKind kind, std::vector<uint8_t> payload, Then then) {
    FrameHeader h;
    h.kind = kind;
    h.length = static_cast<uint32_t>(payload.size());
    out_.resize(kFrameHeaderSize);
    EncodeFrameHeader(h, out_.data());
    out_.insert(out_.end(), payload.begin(), payload.end());
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), then](
                          boost::system::error_code ec, size_t) mutable {
                        if (ec) return self->Fail(self->Closed(ec));
                        then();
                      });
  }

  absl::Status Closed(const boost::system::error_code& ec) {
    return absl::UnavailableError(absl::StrCat(
        "connection closed during the handshake (", ec.message(), ")"));
  }

  void OnHello(const FrameHeader& h) {
    if (h.kind != FrameKind::kHello) {
      return Fail(absl::InvalidArgumentError("expected hello"));
    }
    auto challenge = acc_->OnHello(payload_);
    if (!challenge.ok()) return Fail(challenge.status());
    claimed_ = acc_->peer();
    Write(FrameKind::kChallenge, *challenge, [self = shared_from_this()] {
      self->Read(WirePhase::kAcceptorHandshake,
                 [self](const FrameHeader& p) { self->OnProof(p); });
    });
  }

  void OnProof(const FrameHeader& h) {
    if (h.kind != FrameKind::kProof) {
      return Fail(absl::InvalidArgumentError("expected proof"));
    }
    absl::Status st = acc_->OnProof(payload_);
    if (!st.ok()) return Fail(st);
    Write(FrameKind::kWelcome, {},
          [self = shared_from_this()] { self->Done(self->acc_->peer()); });
  }

  void OnChallenge(const FrameHeader& h) {
    if (h.kind != FrameKind::kChallenge) {
      return Fail(absl::InvalidArgumentError("expected challenge"));
    }
    auto proof = dial_->OnChallenge(payload_);
    if (!proof.ok()) return Fail(proof.status());
    Write(FrameKind::kProof, *proof, [self = shared_from_this()] {
      self->Read(WirePhase::kDialerHandshake, [self](const FrameHeader& w) {
        if (w.kind != FrameKind::kWelcome) {
          return self->Fail(absl::InvalidArgumentError("expected welcome"));
        }
        self->Done(self->target_);
      });
    });
  }

  void Done(NodeId peer) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    if (lane_done_) {
      cp_->LaneDialed(peer, std::move(socket_), std::move(lane_done_));
      return;
    }
    cp_->Authenticated(peer, dialer_, acc_ != nullptr && acc_->lane(),
                       std::move(socket_));
  }

  void Fail(const absl::Status& why) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    // Log and count before closing: whoever sees the close can rely on it.
    if (lane_done_) {
      cp_->LaneFailed(target_, why, std::move(lane_done_));
    } else {
      cp_->Failed(why, dialer_, dialer_ ? target_ : claimed_);
    }
    boost::system::error_code ec;
    socket_.close(ec);
  }

  std::shared_ptr<ControlPlaneImpl> cp_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  bool dialer_;
  NodeId target_;
  NodeId claimed_ = 0;
  ControlPlane::LaneDone lane_done_;
  bool finished_ = false;
  std::array<uint8_t, kFrameHeaderSize> header_{};
  std::vector<uint8_t> payload_;
  std::vector<uint8_t> out_;
  std::unique_ptr<DialerHandshake> dial_;
  std::unique_ptr<AcceptorHandshake> acc_;
};

void ControlPlaneImpl::Stop() {
  asio::post(io_, [self = shared_from_this()] {
    self->stopped_ = true;
    boost::system::error_code ec;
    self->acceptor_.close(ec);
    for (auto& d : self->dials_) d->timer.cancel();
    for (auto& w : self->sessions_) {
      if (auto s = w.lock()) s->Cancel();
    }
    for (auto& w : self->connecting_) {
      if (auto s = w.lock()) s->close(ec);
    }
    self->sessions_.clear();
    self->connecting_.clear();
    self->work_.reset();
  });
}

absl::Status ControlPlaneImpl::Start() {
  const std::string& address = config_.nodes[self_].address;
  if (address.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nodes[", self_, "].address: required by the tcp/rdma transport"));
  }
  auto listen =
      ResolveNumeric(absl::StrCat("nodes[", self_, "].address"), address);
  if (!listen.ok()) return listen.status();
  boost::system::error_code ec;
  acceptor_.open(listen->protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(*listen, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("listen on ", address,
                                               " (nodes[", self_,
                                               "].address): ", ec.message()));
  }
  endpoints_.resize(config_.num_nodes());
  for (NodeId peer = 0; peer < config_.num_nodes(); ++peer) {
    if (peer == self_) continue;
    const std::string& a = config_.nodes[peer].address;
    auto ep = ResolveNumeric(absl::StrCat("nodes[", peer, "].address"), a);
    if (peer < self_) {
      if (!ep.ok()) return ep.status();
      auto d = std::make_unique<Dial>(io_);
      d->endpoint = *ep;
      dials_.push_back(std::move(d));
    }
    if (ep.ok()) {
      endpoints_[peer] = *ep;
    } else {
      // A higher id dials us, so its address only matters for lanes.
      Log(LogLevel::kWarning, "rdmax node ", self_, ": no fetch lanes to node ",
          peer, ": ", ep.status().message());
    }
  }
  Accept();
  for (NodeId peer = 0; peer < self_; ++peer) DialNow(peer);
  return absl::OkStatus();
}

void ControlPlaneImpl::Accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
        if (self->stopped_) return;
        if (!ec) {
          std::make_shared<HandshakeSession>(self, std::move(s), false, 0)
              ->Run();
        } else if (ec != asio::error::operation_aborted) {
          Log(LogLevel::kWarning, "rdmax node ", self->self_,
              ": accept: ", ec.message());
        }
        self->Accept();
      });
}

void ControlPlaneImpl::ScheduleDial(NodeId peer, bool after_failure) {
  Dial& d = *dials_[peer];
  if (stopped_ || d.pending) return;
  d.pending = true;
  if (after_failure) {
    d.backoff = std::clamp(d.backoff * 2, options_.reconnect_min,
                           options_.reconnect_max);
  } else {
    d.backoff = options_.reconnect_min;
  }
  // Jitter in [backoff/2, backoff] keeps restarted nodes from redialing in
  // lockstep.
  double f = std::uniform_real_distribution<double>(0.5, 1.0)(rng_);
  d.timer.expires_after(absl::ToChronoNanoseconds(d.backoff * f));
  d.timer.async_wait(
      [self = shared_from_this(), peer](boost::system::error_code ec) {
        self->dials_[peer]->pending = false;
        if (!ec && !self->stopped_) self->DialNow(peer);
      });
}

void ControlPlaneImpl::DialNow(NodeId peer) {
  Dial& d = *dials_[peer];
  d.pending = true;
  auto socket = std::make_shared<tcp::socket>(io_);
  std::erase_if(connecting_, [](const auto& w) { return w.expired(); });
  connecting_.push_back(socket);
  socket->async_connect(d.endpoint, [self = shared_from_this(), socket,
                                     peer](boost::system::error_code ec) {
    self->dials_[peer]->pending = false;
    if (self->stopped_) return;
    if (ec) {
      Log(LogLevel::kDebug, "rdmax node ", self->self_, ": dial node ", peer,
          ": ", ec.message());
      self->ScheduleDial(peer, /*after_failure=*/true);
      return;
    }
    self->dials_[peer]->pending = true;  // until authenticated or failed
    std::make_shared<HandshakeSession>(self, std::move(*socket), true, peer)
        ->Run();
  });
}

void ControlPlaneImpl::DialLaneNow(NodeId peer, ControlPlane::LaneDone done) {
  if (stopped_ || peer >= endpoints_.size() || !endpoints_[peer]) {
    done(absl::UnavailableError(
        absl::StrCat("fetch lane to node ", peer,
                     stopped_ ? ": shutting down" : ": no address")));
    return;
  }
  auto socket = std::make_shared<tcp::socket>(io_);
  std::erase_if(connecting_, [](const auto& w) { return w.expired(); });
  connecting_.push_back(socket);
  socket->async_connect(
      *endpoints_[peer],
      [self = shared_from_this(), socket, peer,
       done = std::move(done)](boost::system::error_code ec) mutable {
        if (self->stopped_ || ec) {
          done(absl::UnavailableError(absl::StrCat(
              "fetch lane to node ", peer,
              ": connect: ", self->stopped_ ? "shutting down" : ec.message())));
          return;
        }
        std::make_shared<HandshakeSession>(self, std::move(*socket), true, peer,
                                           std::move(done))
            ->Run();
      });
}

void ControlPlaneImpl::LaneDialed(NodeId peer, tcp::socket socket,
                                  ControlPlane::LaneDone done) {
  if (stopped_) {
    done(absl::UnavailableError("shutting down"));
    return;
  }
  boost::system::error_code ec;
  int fd = socket.release(ec);
  if (ec) {
    done(absl::InternalError(absl::StrCat(
        "fetch lane to node ", peer, ": releasing socket: ", ec.message())));
    return;
  }
  done(fd);
}

void ControlPlaneImpl::LaneFailed(NodeId peer, const absl::Status& why,
                                  ControlPlane::LaneDone done) {
  if (!stopped_) {
    Log(LogLevel::kWarning, "rdmax node ", self_, ": fetch lane to node ", peer,
        ": handshake failed: ", why.message());
    if (absl::IsUnauthenticated(why) || absl::IsPermissionDenied(why) ||
        absl::IsFailedPrecondition(why)) {
      on_failure_(why);
    }
  }
  done(absl::Status(why.code(), absl::StrCat("fetch lane to node ", peer, ": ",
                                             why.message())));
}

void ControlPlaneImpl::Authenticated(NodeId peer, bool dialer, bool lane,
                                     tcp::socket socket) {
  if (dialer) {
    dials_[peer]->pending = false;
    dials_[peer]->backoff = absl::ZeroDuration();
  }
  if (stopped_) return;
  boost::system::error_code ec;
  int fd = socket.release(ec);
  if (ec) {
    Log(LogLevel::kError, "rdmax node ", self_,
        ": releasing socket: ", ec.message());
    if (dialer) ScheduleDial(peer, true);
    return;
  }
  on_auth_(ControlPlane::Authenticated{peer, dialer, fd, lane});
}

void ControlPlaneImpl::Failed(const absl::Status& why, bool dialer,
                              NodeId peer) {
  if (stopped_) return;
  if (dialer) {
    Log(LogLevel::kWarning, "rdmax node ", self_, ": handshake with node ",
        peer, " failed: ", why.message());
    dials_[peer]->pending = false;
    ScheduleDial(peer, /*after_failure=*/true);
  } else {
    Log(LogLevel::kWarning, "rdmax node ", self_,
        ": dropped an incoming connection before authentication: ",
        why.message());
  }
  if (absl::IsUnauthenticated(why) || absl::IsPermissionDenied(why) ||
      absl::IsFailedPrecondition(why)) {
    on_failure_(why);
  }
}

ControlPlane::ControlPlane(const cluster::ClusterConfig& config, NodeId self,
                           const TransportOptions& options, WireBackend backend,
                           OnAuthenticated on_authenticated,
                           OnAuthFailure on_failure)
    : impl_(std::make_shared<ControlPlaneImpl>(config, self, options, backend,
                                               std::move(on_authenticated),
                                               std::move(on_failure))) {}

ControlPlane::~ControlPlane() { Stop(); }

absl::Status ControlPlane::Start() {
  absl::Status st = impl_->Start();
  if (!st.ok()) return st;
  thread_ = std::thread([impl = impl_] { impl->io().run(); });
  base::NameThread(thread_, "rdmax-control");
  return absl::OkStatus();
}

void ControlPlane::Stop() {
  if (!thread_.joinable()) return;
  impl_->Stop();
  thread_.join();
}

void ControlPlane::ConnectionLost(NodeId peer) { impl_->ConnectionLost(peer); }

void ControlPlane::DialLane(NodeId peer, LaneDone done) {
  impl_->DialLane(peer, std::move(done));
}

}  // namespace ssihv::rdmax
