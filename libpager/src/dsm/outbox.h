// Outbox: protocol frames to peers, in per-destination order, without ever
// blocking the sender. The coherence protocol needs every frame delivered
// (a lost invalidate-ack stalls a page forever), while the threads that
// produce frames must not wait: the transport's data thread may not, and a
// fault thread that waits for a slow peer could close a cycle with that
// peer's fault threads. So a frame goes straight to the transport when the
// peer's queue has room; otherwise it is copied into a per-peer backlog that
// a sender thread drains with blocking sends, and later frames to that peer
// queue behind it.
#ifndef SSIHV_PAGER_DSM_OUTBOX_H_
#define SSIHV_PAGER_DSM_OUTBOX_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::pager::dsm {

class Outbox {
 public:
  using ErrorFn = std::function<void(const absl::Status&)>;

  /// `sender_nice`: the sender thread's nice value (0: inherited).
  Outbox(rdmax::Transport* transport, uint16_t type, uint32_t num_nodes,
         int sender_nice, ErrorFn on_error);
  ~Outbox() { Stop(); }

  void Start();
  /// Joins the sender thread; frames still in backlogs are dropped.
  void Stop();

  /// Sends `frame` to `to` now or after the frames already queued for it.
  /// A full queue or a connection that is down (the peer may reconnect, or
  /// be declared dead) queues it; other failures go to on_error.
  void Send(uint32_t to, absl::Span<const uint8_t> frame);
  /// `to` was declared dead: drops its backlog and every later frame.
  void DropPeer(uint32_t to);

  uint64_t backlogged() const { return backlogged_; }

 private:
  struct Peer {
    std::mutex mu;        // backlog, dead
    std::mutex drain_mu;  // held by the sender thread while it sends the front
    std::deque<std::vector<uint8_t>> backlog;
    bool dead = false;
  };
  enum class Drained { kNothing, kSent, kPeerDown };
  void DrainLoop();
  Drained DrainOne(uint32_t to);

  rdmax::Transport* transport_;
  uint16_t type_;
  int sender_nice_;
  ErrorFn on_error_;
  std::unique_ptr<Peer[]> peers_;
  uint32_t num_nodes_;

  std::mutex mu_;  // guards stop_ and the wake-up
  std::condition_variable cv_;
  bool stop_ = false;
  bool running_ = false;
  std::thread sender_;
  std::atomic<uint64_t> backlogged_{0};
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_OUTBOX_H_
