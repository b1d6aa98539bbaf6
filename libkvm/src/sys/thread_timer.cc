#include "sys/thread_timer.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "ssihv/base/errno_status.h"

namespace ssihv::kvm::sys {

absl::StatusOr<ThreadTimer> ThreadTimer::ForCurrentThread(int signo) {
  sigevent sev;
  std::memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = signo;
  // glibc 2.36 has no sigev_notify_thread_id macro; this is its field.
  sev._sigev_un._tid = ::gettid();
  timer_t id{};
  if (::timer_create(CLOCK_MONOTONIC, &sev, &id) != 0) {
    return base::LastErrnoStatus("timer_create(CLOCK_MONOTONIC, thread)");
  }
  return ThreadTimer(id);
}

ThreadTimer::ThreadTimer(ThreadTimer&& other) noexcept
    : id_(other.id_), valid_(std::exchange(other.valid_, false)) {}

ThreadTimer& ThreadTimer::operator=(ThreadTimer&& other) noexcept {
  if (this != &other) {
    if (valid_) ::timer_delete(id_);
    id_ = other.id_;
    valid_ = std::exchange(other.valid_, false);
  }
  return *this;
}

ThreadTimer::~ThreadTimer() {
  if (valid_) ::timer_delete(id_);
}

absl::Status ThreadTimer::Arm(uint64_t deadline_ns) {
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(deadline_ns / 1'000'000'000u);
  spec.it_value.tv_nsec = static_cast<long>(deadline_ns % 1'000'000'000u);
  if (::timer_settime(id_, TIMER_ABSTIME, &spec, nullptr) != 0) {
    return base::LastErrnoStatus("timer_settime");
  }
  return absl::OkStatus();
}

}  // namespace ssihv::kvm::sys
