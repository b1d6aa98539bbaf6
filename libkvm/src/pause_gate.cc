#include "ssihv/kvm/pause_gate.h"

namespace ssihv::kvm {

void PauseGate::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_.store(true, std::memory_order_seq_cst);
  }
  cv_.notify_all();
}

void PauseGate::Open() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_.store(false, std::memory_order_seq_cst);
  }
  cv_.notify_all();
}

void PauseGate::Hold(const std::function<bool()>& stop) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!closed_.load(std::memory_order_seq_cst)) return;
  held_.fetch_add(1, std::memory_order_acq_rel);
  cv_.notify_all();  // a controller in WaitUntil counts this vCPU
  cv_.wait(lock,
           [&] { return !closed_.load(std::memory_order_seq_cst) || stop(); });
  held_.fetch_sub(1, std::memory_order_acq_rel);
  cv_.notify_all();
}

void PauseGate::Notify() {
  // Taking the mutex orders the caller's change before a waiter's next
  // check: a waiter either has not checked yet or is asleep and wakes.
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
}

bool PauseGate::WaitUntil(const std::function<bool()>& done,
                          absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_until(lock, absl::ToChronoTime(deadline), done);
}

}  // namespace ssihv::kvm
