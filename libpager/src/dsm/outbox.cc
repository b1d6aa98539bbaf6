#include "dsm/outbox.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ssihv/base/thread_name.h"
#include "ssihv/base/thread_priority.h"

namespace ssihv::pager::dsm {

Outbox::Outbox(rdmax::Transport* transport, uint16_t type, uint32_t num_nodes,
               int sender_nice, ErrorFn on_error)
    : transport_(transport),
      type_(type),
      sender_nice_(sender_nice),
      on_error_(std::move(on_error)),
      peers_(new Peer[num_nodes]),
      num_nodes_(num_nodes) {}

void Outbox::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_) return;
  stop_ = false;
  running_ = true;
  sender_ = std::thread([this] { DrainLoop(); });
  base::NameThread(sender_, "dsm-outbox");
}

void Outbox::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!running_) return;
    stop_ = true;
    running_ = false;
  }
  cv_.notify_all();
  sender_.join();
}

void Outbox::Send(uint32_t to, absl::Span<const uint8_t> frame) {
  Peer& peer = peers_[to];
  {
    std::lock_guard<std::mutex> lock(peer.mu);
    if (peer.dead) return;  // the protocol no longer talks to it
    if (peer.backlog.empty()) {
      // Never waits (deadline InfinitePast): a full queue answers at once.
      absl::Status st = transport_->Send(to, type_, frame);
      if (st.ok()) return;
      // Unavailable: the connection is down. The peer either comes back
      // (its frames must still arrive, in order) or is declared dead
      // (DropPeer); until the failure detector decides, keep them.
      if (!absl::IsResourceExhausted(st) && !absl::IsUnavailable(st)) {
        on_error_(absl::Status(st.code(), absl::StrCat("DSM send to node ", to,
                                                       ": ", st.message())));
        return;
      }
    }
    peer.backlog.emplace_back(frame.begin(), frame.end());
  }
  backlogged_.fetch_add(1, std::memory_order_relaxed);
  cv_.notify_one();
}

void Outbox::DropPeer(uint32_t to) {
  Peer& peer = peers_[to];
  std::lock_guard<std::mutex> draining(peer.drain_mu);  // front not in use
  std::lock_guard<std::mutex> lock(peer.mu);
  peer.dead = true;
  peer.backlog.clear();
}

// Sends the front of `to`'s backlog, waiting for room; pops it after, so a
// concurrent Send sees a non-empty backlog and queues behind it.
Outbox::Drained Outbox::DrainOne(uint32_t to) {
  Peer& peer = peers_[to];
  std::lock_guard<std::mutex> draining(peer.drain_mu);
  std::vector<uint8_t>* front;
  {
    std::lock_guard<std::mutex> lock(peer.mu);
    if (peer.backlog.empty()) return Drained::kNothing;
    front = &peer.backlog.front();  // deque: stable while others push_back
  }
  absl::Status st = transport_->Send(to, type_, *front,
                                     absl::Now() + absl::Milliseconds(100));
  if (absl::IsResourceExhausted(st) || absl::IsDeadlineExceeded(st)) {
    return Drained::kSent;  // still full: try again
  }
  if (absl::IsUnavailable(st)) return Drained::kPeerDown;
  if (!st.ok()) {
    on_error_(absl::Status(
        st.code(), absl::StrCat("DSM send to node ", to, ": ", st.message())));
  }
  std::lock_guard<std::mutex> lock(peer.mu);
  peer.backlog.pop_front();
  return Drained::kSent;
}

void Outbox::DrainLoop() {
  base::ApplyServiceNice(sender_nice_);
  for (;;) {
    bool sent = false, down = false;
    for (uint32_t to = 0; to < num_nodes_; ++to) {
      const Drained d = DrainOne(to);
      sent |= d == Drained::kSent;
      down |= d == Drained::kPeerDown;
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_) return;
    if (!sent) {
      // A peer that is down is retried every few milliseconds until it is
      // back or declared dead.
      cv_.wait_for(lock, std::chrono::milliseconds(down ? 5 : 50));
      if (stop_) return;
    }
  }
}

}  // namespace ssihv::pager::dsm
