// The data thread's event loop: one epoll set, an eventfd for posted tasks,
// and an optional housekeeping tick (only while something has a deadline:
// an idle transport sleeps in epoll_wait with no timeout). Completion-
// driven: the loop never spins.
#ifndef SSIHV_RDMAX_EVENT_LOOP_H_
#define SSIHV_RDMAX_EVENT_LOOP_H_

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::rdmax {

class EventLoop {
 public:
  /// Token of the internal eventfd; callers' tokens must differ.
  static constexpr uint64_t kWakeToken = 0;

  absl::Status Init();
  int epoll_fd() const { return epoll_.get(); }

  /// Runs `task` on the loop thread, in posting order. Thread-safe.
  void Post(absl::AnyInvocable<void()> task);
  /// While positive, the loop ticks every `tick`; each holder of a
  /// deadline (an async operation in flight) raises it. The first holder
  /// wakes a loop asleep without a timeout. Thread-safe.
  void HoldTick();
  void ReleaseTick() { tick_holders_.fetch_sub(1, std::memory_order_relaxed); }

  /// Runs until Stop(): `on_event(token, events)` for each ready fd,
  /// posted tasks, and `on_tick()` on ticks. While `*spin` is positive
  /// (busy-poll mode with work in flight), epoll does not block and
  /// `on_spin()` runs every iteration.
  void Run(
      absl::FunctionRef<void(uint64_t, uint32_t)> on_event,
      absl::FunctionRef<void()> on_tick, absl::Duration tick,
      const std::atomic<int>* spin = nullptr,
      absl::FunctionRef<void()> on_spin = [] {});
  /// Makes Run return after the tasks posted before it ran. Thread-safe.
  void Stop();

 private:
  void RunTasks();

  base::UniqueFd epoll_;
  base::UniqueFd wake_;
  std::mutex mu_;
  std::deque<absl::AnyInvocable<void()>> tasks_;
  std::atomic<int> tick_holders_{0};
  bool stop_ = false;  // guarded by mu_
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_EVENT_LOOP_H_
