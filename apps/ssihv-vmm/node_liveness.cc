// NodeLink's start-up exchange and failure detector: hellos (the config
// digest check), heartbeats, the verdict on a silent or disconnected peer,
// and what becomes of messages that could not leave while a verdict was
// pending.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node_link.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"
#include "ssihv/base/thread_priority.h"

namespace ssihv::vmm {

using base::Log;
using base::LogLevel;

namespace {

std::string DigestHex(const std::array<uint8_t, 32>& d) {
  std::string s;
  for (int i = 0; i < 6; ++i) {
    absl::StrAppend(&s, absl::Hex(d[i], absl::kZeroPad2));
  }
  return s;
}

// Retry for a hello not yet sent to a peer the link has seen come back.
constexpr int64_t kHelloRetryNs = 10'000'000;

}  // namespace

absl::Status NodeLink::SendHellos(absl::Span<const uint8_t> hello,
                                  absl::Time deadline,
                                  std::vector<bool>& sent) {
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    if (n == self_ || sent[n]) continue;
    absl::Status st = transport_->Send(n, kMsgHello, hello, deadline);
    if (st.ok()) {
      sent[n] = true;
    } else if (!absl::IsUnavailable(st)) {
      return absl::Status(
          st.code(), absl::StrCat("hello to node ", n, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status NodeLink::ExchangeHellos(const HelloMsg& mine,
                                      absl::Time deadline) {
  const std::vector<uint8_t> b = Encode(mine);
  // A peer whose connection is down gets ours when it is back; if it does
  // not come back, it is lost (below).
  std::vector<bool> sent(peers_.size(), false);
  const int64_t down_ns = absl::ToInt64Nanoseconds(options_.down_timeout);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    lock.unlock();
    SSIHV_RETURN_IF_ERROR(SendHellos(b, deadline, sent));
    lock.lock();
    std::string missing;
    const int64_t now = NowNs();
    int64_t wait_ns = absl::ToInt64Nanoseconds(deadline - absl::Now());
    for (uint32_t n = 0; n < peers_.size(); ++n) {
      if (n == self_) continue;
      const std::optional<HelloMsg>& h = hellos_[n];
      if (h && h->config_digest != mine.config_digest) {
        return absl::FailedPreconditionError(absl::StrCat(
            "node ", n, " (", h->host, ", pid ", h->pid,
            ") runs a different cluster config (digest ",
            DigestHex(h->config_digest), "... there, ",
            DigestHex(mine.config_digest),
            "... here): start every node with the same config file"));
      }
      if (h && sent[n]) continue;
      // A peer whose connection went down before the exchange is lost by
      // the detector's rule, not awaited until the deadline.
      const int64_t down = peers_[n]->down_since_ns.load();
      if (DownPastTimeout(down, now)) {
        lock.unlock();
        return LostBeforeHello(n, now - down);
      }
      if (down != 0) wait_ns = std::min(wait_ns, down + down_ns - now);
      // Ours not sent yet to a peer the link has seen come back (read under
      // mu_, so its wake-up cannot be missed): try again soon; the
      // transport may say "connected" a moment after the link.
      if (!sent[n] && peers_[n]->up) wait_ns = std::min(wait_ns, kHelloRetryNs);
      absl::StrAppend(&missing, missing.empty() ? "" : ", ", "node ", n);
    }
    if (missing.empty()) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no hello from ", missing,
                       " (connected, but not an ssihv-vmm of this version?)"));
    }
    cv_.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(0, wait_ns)));
  }
}

absl::Status NodeLink::LostBeforeHello(uint32_t node, int64_t down_for_ns) {
  const std::string why = absl::StrFormat(
      "its connection went down before its hello and has been down for "
      "%.1f s",
      down_for_ns / 1e9);
  peers_[node]->lost = true;
  WakeWaiters();
  handler_->OnPeerLost(node, why);
  return absl::UnavailableError(
      absl::StrCat("node ", node, " was lost during start-up: ", why));
}

void NodeLink::StartLiveness() {
  const int64_t now = NowNs();
  for (auto& p : peers_) {
    int64_t zero = 0;
    p->last_heard_ns.compare_exchange_strong(zero, now);
  }
  detecting_ = true;
  liveness_ = std::thread([this] { LivenessLoop(); });
  base::NameThread(liveness_, "vmm-liveness");
}

void NodeLink::StopLiveness() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    liveness_stop_ = true;
  }
  cv_.notify_all();
  if (liveness_.joinable()) liveness_.join();
  detecting_ = false;
}

void NodeLink::LivenessLoop() {
  base::ApplyServiceNice(options_.thread_nice);
  uint64_t seq = 0;
  int64_t next_beat = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!liveness_stop_) {
    const int64_t now = NowNs();
    if (now >= next_beat) {
      lock.unlock();
      const std::vector<uint8_t> beat = Encode(HeartbeatMsg{++seq});
      for (uint32_t n = 0; n < peers_.size(); ++n) {
        if (Reachable(n)) {
          (void)transport_->Send(n, kMsgHeartbeat, beat);
        }
      }
      CheckPeers(now);
      lock.lock();
      next_beat = now + absl::ToInt64Nanoseconds(options_.heartbeat_period);
    }
    // Wakes at the next beat, or at once when a peer's connection changes.
    cv_.wait_for(lock, std::chrono::nanoseconds(
                           std::max<int64_t>(0, next_beat - NowNs())));
    if (!liveness_stop_) {
      lock.unlock();
      CheckPeers(NowNs());
      lock.lock();
    }
  }
}

void NodeLink::CheckPeers(int64_t now) {
  for (uint32_t n = 0; n < peers_.size(); ++n) {
    if (n == self_) continue;
    Peer& p = *peers_[n];
    if (p.lost) continue;
    std::string why;
    const int64_t down = p.down_since_ns.load();
    const int64_t heard = p.last_heard_ns.load();
    if (DownPastTimeout(down, now)) {
      why = absl::StrFormat("its connection has been down for %.1f s",
                            (now - down) / 1e9);
    } else if (heard != 0 && now - heard >= absl::ToInt64Nanoseconds(
                                                options_.silence_timeout)) {
      why = absl::StrFormat("nothing heard from it for %.1f s",
                            (now - heard) / 1e9);
    }
    if (why.empty()) continue;
    p.lost = true;
    WakeWaiters();  // the stop barrier waits for it no longer
    handler_->OnPeerLost(n, why);
  }
  SettleUndelivered(now);
}

void NodeLink::SettleUndelivered(int64_t now) {
  // A verdict comes within down_timeout of the connection going down, and
  // the detector looks once a heartbeat period: past both, a peer that is
  // neither down nor lost stayed reachable, and what did not reach it is
  // lost.
  const int64_t window = absl::ToInt64Nanoseconds(options_.down_timeout +
                                                  options_.heartbeat_period);
  std::vector<absl::Status> report;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint32_t n = 0; n < peers_.size(); ++n) {
      if (n == self_) continue;
      Peer& p = *peers_[n];
      if (!p.pending_error) continue;
      if (p.lost) {
        p.pending_error.reset();
      } else if (Reachable(n) && now - p.pending_since_ns >= window) {
        report.push_back(absl::Status(
            p.pending_error->code(),
            absl::StrCat(p.pending_error->message(), " (node ", n,
                         " was not lost: ", p.undelivered.load(),
                         " message(s) to it never left)")));
        p.pending_error.reset();
      }
    }
  }
  for (const absl::Status& st : report) handler_->OnLinkError(st);
}

}  // namespace ssihv::vmm
