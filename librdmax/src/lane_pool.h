// The pool of one peer connection's fetch lanes (docs/TRANSPORT.md, "Fetch
// lanes"), shared by the TCP backend (FetchLane: an extra connection) and
// the RDMA backend (RdmaLane: an extra QP with its own CQ and channel).
//
// A blocking Fetch takes an idle lane (LIFO: the warmest) for the duration
// of the call. When none is idle it asks for one more to be set up, in the
// background and one at a time (so lanes grow with the number of threads
// that find none idle, not with the number of fetches during a setup), up
// to `max` per peer; that fetch uses the main connection meanwhile. A lane
// that fails is closed and further setups back off. CloseAll (when the
// main connection closes) shuts every lane down: lanes never outlive the
// incarnation of the peer they were set up with.
//
// `Lane` must have `void Shutdown()`: callable from any thread, it makes
// the owner's wait end and the lane unusable.
#ifndef SSIHV_RDMAX_LANE_POOL_H_
#define SSIHV_RDMAX_LANE_POOL_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/time/time.h"
#include "transport_base.h"

namespace ssihv::rdmax {

template <typename Lane>
class LanePool {
 public:
  LanePool(uint32_t max_lanes, absl::Duration backoff_min,
           absl::Duration backoff_max, AtomicStats* stats)
      : max_(max_lanes),
        backoff_min_(backoff_min),
        backoff_max_(backoff_max),
        stats_(stats) {}
  LanePool(const LanePool&) = delete;
  LanePool& operator=(const LanePool&) = delete;

  /// An idle lane, or nullptr. Sets *setup when the caller should set one
  /// more up (a slot is reserved for it: report with Adopt or SetupFailed).
  std::shared_ptr<Lane> Acquire(bool* setup) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::shared_ptr<Lane> lane = std::move(idle_.back());
      idle_.pop_back();
      return lane;
    }
    if (!closed_ && setting_up_ == 0 && all_.size() < max_ &&
        (next_setup_ == absl::InfinitePast() || absl::Now() >= next_setup_)) {
      ++setting_up_;
      *setup = true;
    }
    return nullptr;
  }

  /// Returns a lane after a fetch; a lane that is not `healthy` is shut
  /// down and forgotten, and further setups back off for a while.
  void Release(std::shared_ptr<Lane> lane, bool healthy) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;  // CloseAll shut it down and forgot it
    if (healthy) {
      backoff_ = absl::ZeroDuration();
      idle_.push_back(std::move(lane));
      return;
    }
    lane->Shutdown();
    if (std::erase(all_, lane) > 0) {
      stats_->lanes_open.fetch_sub(1, std::memory_order_relaxed);
    }
    BackOffLocked();
  }

  /// A setup that Acquire asked for succeeded. False (the caller drops the
  /// lane) when the pool was closed meanwhile.
  bool Adopt(std::shared_ptr<Lane> lane) {
    std::lock_guard<std::mutex> lock(mu_);
    --setting_up_;
    if (closed_) return false;
    all_.push_back(lane);
    idle_.push_back(std::move(lane));
    Bump(stats_->lanes_open);
    Bump(stats_->lanes_dialed);
    return true;
  }

  /// A setup that Acquire asked for failed: back off.
  void SetupFailed() {
    std::lock_guard<std::mutex> lock(mu_);
    --setting_up_;
    BackOffLocked();
  }

  /// Shuts every lane down (owners' fetches fail over to the main
  /// connection, which is closing too) and refuses new ones. Any thread;
  /// idempotent.
  void CloseAll() {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    for (auto& lane : all_) lane->Shutdown();
    stats_->lanes_open.fetch_sub(all_.size(), std::memory_order_relaxed);
    all_.clear();
    idle_.clear();
  }

 private:
  void BackOffLocked() {
    backoff_ = std::clamp(backoff_ * 2, backoff_min_, backoff_max_);
    next_setup_ = absl::Now() + backoff_;
  }

  const uint32_t max_;
  const absl::Duration backoff_min_;
  const absl::Duration backoff_max_;
  AtomicStats* const stats_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Lane>> idle_;  // LIFO
  std::vector<std::shared_ptr<Lane>> all_;   // open (idle or in use)
  uint32_t setting_up_ = 0;
  bool closed_ = false;
  absl::Duration backoff_ = absl::ZeroDuration();
  absl::Time next_setup_ = absl::InfinitePast();
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_LANE_POOL_H_
