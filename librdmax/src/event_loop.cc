#include "event_loop.h"

#include <sys/epoll.h>

#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "sys/posix.h"

namespace ssihv::rdmax {

absl::Status EventLoop::Init() {
  SSIHV_ASSIGN_OR_RETURN(epoll_, sys::EpollCreate());
  SSIHV_ASSIGN_OR_RETURN(wake_, sys::EventFdCreate());
  return sys::EpollAdd(epoll_.get(), wake_.get(), EPOLLIN, kWakeToken);
}

void EventLoop::Post(absl::AnyInvocable<void()> task) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_empty = tasks_.empty();
    tasks_.push_back(std::move(task));
  }
  // One wake-up per batch: the loop drains every queued task at once.
  if (was_empty) sys::EventFdSignal(wake_.get());
}

void EventLoop::HoldTick() {
  // A loop that went to sleep with no holder has no timeout: without the
  // wake-up, an operation that is never answered (and nothing else
  // happening on this node) would never reach its deadline.
  if (tick_holders_.fetch_add(1, std::memory_order_acq_rel) == 0) {
    sys::EventFdSignal(wake_.get());
  }
}

void EventLoop::Stop() {
  Post([this] { stop_ = true; });
}

void EventLoop::RunTasks() {
  std::deque<absl::AnyInvocable<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(tasks_);
  }
  for (auto& task : batch) task();
}

void EventLoop::Run(absl::FunctionRef<void(uint64_t, uint32_t)> on_event,
                    absl::FunctionRef<void()> on_tick, absl::Duration tick,
                    const std::atomic<int>* spin,
                    absl::FunctionRef<void()> on_spin) {
  constexpr int kMaxEvents = 64;
  struct epoll_event events[kMaxEvents];
  absl::Time next_tick = absl::Now() + tick;
  while (!stop_) {
    int timeout_ms = -1;
    const bool spinning =
        spin != nullptr && spin->load(std::memory_order_acquire) > 0;
    if (spinning) {
      timeout_ms = 0;
    } else if (tick_holders_.load(std::memory_order_acquire) > 0) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(next_tick - absl::Now())));
    }
    absl::StatusOr<int> n =
        sys::EpollWait(epoll_.get(), events, kMaxEvents, timeout_ms);
    if (!n.ok()) {
      base::Log(base::LogLevel::kError,
                "rdmax event loop: ", n.status().message());
      continue;
    }
    for (int i = 0; i < *n; ++i) {
      if (events[i].data.u64 == kWakeToken) {
        sys::EventFdDrain(wake_.get());
        RunTasks();
      } else {
        on_event(events[i].data.u64, events[i].events);
      }
    }
    if (spinning) on_spin();
    if (timeout_ms >= 0 && absl::Now() >= next_tick) {
      next_tick = absl::Now() + tick;
      on_tick();
    }
  }
  RunTasks();  // tasks posted before Stop() (teardowns) still run
}

}  // namespace ssihv::rdmax
