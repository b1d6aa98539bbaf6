// A POSIX timer that signals one thread (timer_create with SIGEV_THREAD_ID):
// the host timer behind a vCPU's APIC timer in the user irqchip mode. The
// signal is the vCPU kick, so an expiry takes the vCPU out of KVM_RUN
// (timer_create(2), timer_settime(2)).
#ifndef SSIHV_KVM_SRC_SYS_THREAD_TIMER_H_
#define SSIHV_KVM_SRC_SYS_THREAD_TIMER_H_

#include <time.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace ssihv::kvm::sys {

class ThreadTimer {
 public:
  /// A CLOCK_MONOTONIC timer that sends `signo` to the calling thread.
  static absl::StatusOr<ThreadTimer> ForCurrentThread(int signo);
  ThreadTimer(ThreadTimer&& other) noexcept;
  ThreadTimer& operator=(ThreadTimer&& other) noexcept;
  ThreadTimer(const ThreadTimer&) = delete;
  ThreadTimer& operator=(const ThreadTimer&) = delete;
  ~ThreadTimer();

  /// Expires once at absolute CLOCK_MONOTONIC `deadline_ns`; 0 disarms.
  absl::Status Arm(uint64_t deadline_ns);

 private:
  explicit ThreadTimer(timer_t id) : id_(id), valid_(true) {}
  timer_t id_{};
  bool valid_ = false;
};

}  // namespace ssihv::kvm::sys

#endif  // SSIHV_KVM_SRC_SYS_THREAD_TIMER_H_
