#include "dsm/outbox.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ssihv::pager::dsm {

Outbox::Outbox(rdmax::Transport* transport, uint16_t type, uint32_t num_nodes,
               ErrorFn on_error)
    : transport_(transport),
      type_(type),
      on_error_(std::move(on_error)),
      peers_(new Peer[num_nodes]),
      num_nodes_(num_nodes) {}

void Outbox::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_) return;
  stop_ = false;
  running_ = true;
  sender_ = std::thread([this] { DrainLoop(); });
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
    if (peer.backlog.empty()) {
      // Never waits (deadline InfinitePast): a full queue answers at once.
      absl::Status st = transport_->Send(to, type_, frame);
      if (st.ok()) return;
      if (!absl::IsResourceExhausted(st)) {
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

// Sends the front of `to`'s backlog, waiting for room; pops it after, so a
// concurrent Send sees a non-empty backlog and queues behind it.
bool Outbox::DrainOne(uint32_t to) {
  Peer& peer = peers_[to];
  std::vector<uint8_t>* front;
  {
    std::lock_guard<std::mutex> lock(peer.mu);
    if (peer.backlog.empty()) return false;
    front = &peer.backlog.front();  // deque: stable while others push_back
  }
  absl::Status st = transport_->Send(to, type_, *front,
                                     absl::Now() + absl::Milliseconds(100));
  if (absl::IsResourceExhausted(st) || absl::IsDeadlineExceeded(st)) {
    return true;  // still full: try again
  }
  if (!st.ok()) {
    on_error_(absl::Status(
        st.code(), absl::StrCat("DSM send to node ", to, ": ", st.message())));
  }
  std::lock_guard<std::mutex> lock(peer.mu);
  peer.backlog.pop_front();
  return true;
}

void Outbox::DrainLoop() {
  for (;;) {
    bool any = false;
    for (uint32_t to = 0; to < num_nodes_; ++to) any |= DrainOne(to);
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_) return;
    if (!any) {
      cv_.wait_for(lock, std::chrono::milliseconds(50));
      if (stop_) return;
    }
  }
}

}  // namespace ssihv::pager::dsm
