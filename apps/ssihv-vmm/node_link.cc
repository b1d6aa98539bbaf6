#include "node_link.h"

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"

namespace ssihv::vmm {
namespace {

using base::Log;
using base::LogLevel;

constexpr size_t kMaxResponse = 64;

}  // namespace

int64_t NodeLink::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

NodeLink::NodeLink(const cluster::GuestLayout& layout, uint32_t self,
                   Handler* handler, NodeLinkOptions options)
    : layout_(layout), self_(self), handler_(handler), options_(options) {
  for (uint32_t i = 0; i < layout.num_nodes(); ++i) {
    peers_.push_back(std::make_unique<Peer>());
  }
  hellos_.resize(layout.num_nodes());
  quiesced_.resize(layout.num_nodes(), false);
}

NodeLink::~NodeLink() { StopLiveness(); }

void NodeLink::OnPeer(uint32_t node, rdmax::PeerState state) {
  if (!Known(node)) return;
  Peer& p = *peers_[node];
  if (state == rdmax::PeerState::kUp) {
    p.up = true;
    p.down_since_ns = 0;
    p.last_heard_ns = NowNs();
  } else {
    p.up = false;
    int64_t zero = 0;
    p.down_since_ns.compare_exchange_strong(zero, NowNs());
  }
  WakeWaiters();  // the detector and the stop barrier look again now
}

void NodeLink::WakeWaiters() {
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
}

void NodeLink::OnMessage(const rdmax::Message& m) {
  if (!Known(m.from)) return;
  Peer& p = *peers_[m.from];
  // A node declared lost is fenced: nothing it says counts any more.
  if (p.lost) return;
  p.last_heard_ns = NowNs();
  Dispatch(m);
}

void NodeLink::Reply(const rdmax::Message& m,
                     absl::Span<const uint8_t> payload) {
  absl::Status st =
      transport_->Reply(rdmax::ReplyToken::For(m), m.type, payload);
  if (!st.ok()) {
    Log(LogLevel::kWarning, "ssihv-vmm: reply to node ", m.from, ": ",
        st.message());
  }
}

void NodeLink::Dispatch(const rdmax::Message& m) {
  Peer& p = *peers_[m.from];
  const uint32_t vcpus = layout_.total_vcpus();
  absl::Status bad;
  switch (m.type) {
    case kMsgDeliver: {
      auto d = DecodeDeliver(m.payload, vcpus);
      if (!d.ok()) {
        bad = d.status();
        break;
      }
      for (uint32_t v : d->vcpus) {
        if (layout_.NodeOfVcpu(v) != self_) {
          bad = absl::InvalidArgumentError(
              absl::StrCat("deliver message: vCPU ", v, " is not this node's"));
        }
      }
      if (!bad.ok()) break;
      p.interrupts_received.fetch_add(1, std::memory_order_relaxed);
      handler_->OnDeliver(m.from, *d);
      return;
    }
    case kMsgIoApicEoi: {
      auto d = DecodeEoi(m.payload);
      if (!d.ok()) {
        bad = d.status();
        break;
      }
      handler_->OnIoApicEoi(m.from, d->vector);
      return;
    }
    case kMsgRouting: {
      auto d = DecodeRouting(m.payload, vcpus);
      if (!d.ok()) {
        bad = d.status();
        break;
      }
      if (layout_.NodeOfVcpu(d->vcpu) != m.from) {
        bad = absl::InvalidArgumentError(absl::StrCat(
            "routing message: vCPU ", d->vcpu, " is not node ", m.from, "'s"));
        break;
      }
      p.routing_received.fetch_add(1, std::memory_order_relaxed);
      handler_->OnRouting(m.from, *d);
      return;
    }
    case kMsgIo: {
      auto d = DecodeIo(m.payload);
      absl::StatusOr<std::vector<uint8_t>> read =
          d.ok() ? handler_->OnIo(m.from, *d) : d.status();
      if (!read.ok()) {
        (void)transport_->ReplyError(rdmax::ReplyToken::For(m), read.status());
        if (d.ok()) return;  // the device's error, answered above
        bad = d.status();
        break;
      }
      p.io_served.fetch_add(1, std::memory_order_relaxed);
      if (d->space == IoSpace::kMmio) {
        p.mmio_served.fetch_add(1, std::memory_order_relaxed);
      }
      Reply(m, EncodeIoResult(*read));
      return;
    }
    case kMsgClock: {
      absl::StatusOr<ClockMsg> c = handler_->OnClockRequest();
      if (!c.ok()) {
        (void)transport_->ReplyError(rdmax::ReplyToken::For(m), c.status());
        return;
      }
      Reply(m, Encode(*c));
      return;
    }
    case kMsgStop: {
      auto d = DecodeStop(m.payload);
      if (!d.ok()) {
        bad = d.status();
        break;
      }
      handler_->OnStop(m.from, *d);
      return;
    }
    case kMsgHello: {
      auto d = DecodeHello(m.payload);
      if (!d.ok()) {
        bad = d.status();
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        hellos_[m.from] = std::move(*d);
      }
      cv_.notify_all();
      return;
    }
    case kMsgQuiesced: {
      if (!m.payload.empty()) {
        bad = absl::InvalidArgumentError(absl::StrCat(
            "quiesced message: ", m.payload.size(), " payload bytes, not 0"));
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        quiesced_[m.from] = true;
      }
      cv_.notify_all();
      return;
    }
    case kMsgAction: {
      auto d = DecodeAction(m.payload);
      if (!d.ok()) {
        bad = d.status();  // answered below: the caller is waiting
        break;
      }
      handler_->OnAction(m.from, *d, rdmax::ReplyToken::For(m));
      return;
    }
    case kMsgHeartbeat: {
      auto d = DecodeHeartbeat(m.payload);
      if (!d.ok()) {
        bad = d.status();
        break;
      }
      p.heartbeats_received.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    default:
      bad = absl::InvalidArgumentError(
          absl::StrCat("unknown message type 0x", absl::Hex(m.type)));
  }
  // Malformed input from an authenticated peer of our own cluster is a bug
  // (or a different version) there: say so, drop it, never crash.
  malformed_.fetch_add(1, std::memory_order_relaxed);
  Log(LogLevel::kWarning, "ssihv-vmm: dropped a message from node ", m.from,
      ": ", bad.message());
  if (m.request_id != 0 && m.type != kMsgIo) {
    (void)transport_->ReplyError(rdmax::ReplyToken::For(m), bad);
  }
}

absl::Status NodeLink::SendTo(uint32_t node, NodeMessage type,
                              absl::Span<const uint8_t> payload) {
  if (!Known(node)) {
    return absl::InvalidArgumentError(absl::StrCat("no node ", node));
  }
  absl::Status st =
      transport_->Send(node, type, payload, absl::Now() + options_.send_wait);
  if (!st.ok()) {
    return absl::Status(
        st.code(), absl::StrCat("send to node ", node, ": ", st.message()));
  }
  return absl::OkStatus();
}

absl::Status NodeLink::Deliver(uint32_t node, const DeliverMsg& m) {
  absl::Status st = SendTo(node, kMsgDeliver, Encode(m));
  if (st.ok()) {
    peers_[node]->interrupts_sent.fetch_add(1, std::memory_order_relaxed);
  }
  return Undelivered(node, std::move(st));
}

absl::Status NodeLink::IoApicEoi(uint8_t vector) {
  return Undelivered(0, SendTo(0, kMsgIoApicEoi, Encode(EoiMsg{vector})));
}

absl::Status NodeLink::BroadcastRouting(const RoutingMsg& m) {
  const std::vector<uint8_t> b = Encode(m);
  absl::Status first;
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    if (n == self_ || peers_[n]->lost) continue;
    absl::Status st = Undelivered(n, SendTo(n, kMsgRouting, b));
    if (first.ok()) first = st;
  }
  return first;
}

absl::StatusOr<std::vector<uint8_t>> NodeLink::ForwardIo(const IoMsg& m) {
  uint8_t response[kMaxResponse];
  const int64_t start = NowNs();
  absl::StatusOr<size_t> n =
      transport_->CallSync(0, kMsgIo, Encode(m), absl::MakeSpan(response));
  if (!n.ok()) {
    return absl::Status(
        n.status().code(),
        absl::StrCat("forwarding ", m.space == IoSpace::kPio ? "port" : "MMIO",
                     " access 0x", absl::Hex(m.addr),
                     " to node 0: ", n.status().message()));
  }
  Peer& p = *peers_[0];
  p.io_forwarded.fetch_add(1, std::memory_order_relaxed);
  if (m.space == IoSpace::kMmio) {
    p.mmio_forwarded.fetch_add(1, std::memory_order_relaxed);
  }
  p.io_ns_total.fetch_add(static_cast<uint64_t>(NowNs() - start),
                          std::memory_order_relaxed);
  return DecodeIoResult(absl::MakeConstSpan(response, *n), m);
}

absl::Status NodeLink::Undelivered(uint32_t node, absl::Status error) {
  if (error.ok() || !Known(node)) return error;
  Peer& p = *peers_[node];
  // A lost node is fenced and its stop is under way: nothing to add.
  if (p.lost) return absl::OkStatus();
  // Only a failed connection waits for the verdict (a full queue, say, is
  // this node's own error); and only while the detector runs to give one.
  if (!absl::IsUnavailable(error) || !detecting_) return error;
  p.undelivered.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!p.pending_error) {
      p.pending_error = std::move(error);
      p.pending_since_ns = NowNs();
    }
  }
  cv_.notify_all();
  return absl::OkStatus();
}

void NodeLink::BroadcastStop(const StopMsg& m) {
  const std::vector<uint8_t> b = Encode(m);
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    if (!Reachable(n)) continue;
    absl::Status st = transport_->Send(n, kMsgStop, b);
    if (!st.ok()) {
      Log(LogLevel::kWarning, "ssihv-vmm: stop to node ", n, ": ",
          st.message());
    }
  }
}

std::vector<uint32_t> NodeLink::Quiesce(absl::Duration timeout) {
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    if (!Reachable(n)) continue;
    // Waits for room like a vCPU's send: a dropped one costs the timeout.
    absl::Status st =
        transport_->Send(n, kMsgQuiesced, {}, absl::Now() + options_.send_wait);
    if (!st.ok()) {
      Log(LogLevel::kWarning, "ssihv-vmm: quiesced to node ", n, ": ",
          st.message());
    }
  }
  // Down and lost peers are not waited for: nothing of theirs is in flight.
  auto pending = [this] {  // under mu_
    std::vector<uint32_t> left;
    for (uint32_t n = 0; n < peers_.size(); ++n) {
      if (Reachable(n) && !quiesced_[n]) left.push_back(n);
    }
    return left;
  };
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
               [&] { return pending().empty(); });
  return pending();
}

namespace {

// The answers of one ForwardAction; shared with the transport's callbacks,
// which may run after the caller gave up waiting.
struct ActionAnswers {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<absl::Status>> by_node;  // guarded by mu
};

}  // namespace

std::vector<std::pair<uint32_t, absl::Status>> NodeLink::ForwardAction(
    const ActionMsg& m, absl::Duration timeout) {
  auto answers = std::make_shared<ActionAnswers>();
  answers->by_node.resize(peers_.size());
  const std::vector<uint8_t> b = Encode(m);
  const char* what = ActionKindName(m.action);
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    if (n == self_) continue;
    absl::Status st;
    if (peers_[n]->lost) {
      st = absl::UnavailableError(absl::StrCat("node ", n, " is lost"));
    } else if (!peers_[n]->up) {
      st = absl::UnavailableError(absl::StrCat("node ", n, " not connected"));
    } else {
      st = transport_->Call(
          n, kMsgAction, b,
          [answers, n](absl::Status status, const rdmax::Message& response) {
            if (status.ok()) {
              absl::StatusOr<ActionResultMsg> r =
                  DecodeActionResult(response.payload);
              status = r.ok() ? FromActionResult(*r) : r.status();
            }
            std::lock_guard<std::mutex> lock(answers->mu);
            answers->by_node[n] = std::move(status);
            answers->cv.notify_all();
          });
    }
    if (!st.ok()) {
      std::lock_guard<std::mutex> lock(answers->mu);
      answers->by_node[n] = st;
    }
  }
  std::vector<std::pair<uint32_t, absl::Status>> out;
  std::unique_lock<std::mutex> lock(answers->mu);
  answers->cv.wait_until(lock, absl::ToChronoTime(absl::Now() + timeout), [&] {
    for (uint32_t n = 0; n < peers_.size(); ++n) {
      if (n != self_ && !answers->by_node[n]) return false;
    }
    return true;
  });
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    if (n == self_) continue;
    const std::optional<absl::Status>& a = answers->by_node[n];
    absl::Status st = a ? *a
                        : absl::DeadlineExceededError(absl::StrCat(
                              "node ", n, " did not answer within ",
                              absl::FormatDuration(timeout)));
    if (!st.ok()) {
      st = absl::Status(st.code(),
                        absl::StrCat(what, " on node ", n, ": ", st.message()));
    }
    out.emplace_back(n, std::move(st));
  }
  return out;
}

void NodeLink::ReplyAction(const rdmax::ReplyToken& to,
                           const absl::Status& result) {
  absl::Status st =
      transport_->Reply(to, kMsgAction, Encode(ToActionResult(result)));
  if (!st.ok()) {
    Log(LogLevel::kWarning, "ssihv-vmm: action answer to node ", to.to, ": ",
        st.message());
  }
}

absl::StatusOr<ClockMsg> NodeLink::RequestClock(absl::Duration* rtt) {
  uint8_t response[kMaxResponse];
  const int64_t start = NowNs();
  absl::StatusOr<size_t> n =
      transport_->CallSync(0, kMsgClock, {}, absl::MakeSpan(response));
  *rtt = absl::Nanoseconds(NowNs() - start);
  if (!n.ok()) {
    return absl::Status(
        n.status().code(),
        absl::StrCat("node 0's guest clock: ", n.status().message()));
  }
  return DecodeClock(absl::MakeConstSpan(response, *n));
}

std::vector<PeerLinkStats> NodeLink::stats() const {
  std::vector<PeerLinkStats> out(peers_.size());
  const int64_t now = NowNs();
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    const Peer& p = *peers_[n];
    PeerLinkStats& s = out[n];
    s.interrupts_sent = p.interrupts_sent;
    s.interrupts_received = p.interrupts_received;
    s.io_forwarded = p.io_forwarded;
    s.io_served = p.io_served;
    s.mmio_forwarded = p.mmio_forwarded;
    s.mmio_served = p.mmio_served;
    s.io_ns_total = p.io_ns_total;
    s.routing_updates_received = p.routing_received;
    s.heartbeats_received = p.heartbeats_received;
    s.undelivered = p.undelivered;
    s.up = n == self_ || p.up;
    s.lost = p.lost;
    const int64_t heard = p.last_heard_ns;
    s.last_heard_s_ago = heard == 0 ? -1 : (now - heard) / 1e9;
  }
  return out;
}

nlohmann::json NodeLink::StatsJson() const {
  nlohmann::json peers = nlohmann::json::array();
  std::vector<PeerLinkStats> s = stats();
  for (uint32_t n = 0; n < s.size(); ++n) {
    if (n == self_) continue;
    const PeerLinkStats& p = s[n];
    peers.push_back(
        {{"node", n},
         {"up", p.up},
         {"lost", p.lost},
         {"last_heard_s_ago", p.last_heard_s_ago},
         {"interrupts_sent", p.interrupts_sent},
         {"interrupts_received", p.interrupts_received},
         {"io_forwarded", p.io_forwarded},
         {"io_forwarded_mean_us",
          p.io_forwarded ? p.io_ns_total / 1e3 / p.io_forwarded : 0.0},
         {"io_served", p.io_served},
         {"routing_updates_received", p.routing_updates_received},
         {"heartbeats_received", p.heartbeats_received},
         {"undelivered", p.undelivered}});
  }
  return {{"peers", peers}, {"malformed_messages", malformed_.load()}};
}

}  // namespace ssihv::vmm
