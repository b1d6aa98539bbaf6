#include "pending.h"

#include <cassert>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sys/posix.h"

namespace ssihv::rdmax {

PendingTable::PendingTable(uint32_t capacity, NodeId peer)
    : peer_(peer), slots_(capacity), generation_(capacity, 0) {
  assert(capacity > 0 && capacity <= 0xFFFF);
  free_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
}

PendingOp* PendingTable::Acquire(OpKind kind, bool sync, absl::Time deadline,
                                 absl::Time wait_until) {
  std::unique_lock<std::mutex> lock(mu_);
  while (free_.empty()) {
    absl::Duration left = wait_until - absl::Now();
    if (left <= absl::ZeroDuration()) return nullptr;
    freed_.wait_for(lock, absl::ToChronoNanoseconds(left));
  }
  uint32_t index = free_.back();
  free_.pop_back();
  uint32_t gen = ++generation_[index];
  lock.unlock();
  PendingOp* op = &slots_[index];
  op->id = (uint64_t{gen} << 16) | (index + 1);
  op->kind = kind;
  op->sync = sync;
  op->dst = nullptr;
  op->length = 0;
  op->region = 0;
  op->response = {};
  op->response_length = 0;
  op->status = absl::OkStatus();
  op->bounce = -1;
  op->deadline = deadline;
  op->state.store(PendingOp::kPending, std::memory_order_release);
  return op;
}

void PendingTable::Release(PendingOp* op) {
  op->call_done = nullptr;
  uint32_t index = static_cast<uint32_t>(op - slots_.data());
  std::lock_guard<std::mutex> lock(mu_);
  op->state.store(PendingOp::kFree, std::memory_order_release);
  free_.push_back(index);
  freed_.notify_one();
}

bool PendingTable::ExpireAsync(absl::Time now, bool calls_only) {
  bool expired = false;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& op : slots_) {
    uint32_t s = op.state.load(std::memory_order_acquire);
    if ((s != PendingOp::kPending && s != PendingOp::kSleeping) || op.sync ||
        (calls_only && op.kind != OpKind::kCall) || op.deadline > now) {
      continue;
    }
    op.status = absl::DeadlineExceededError(
        absl::StrCat("Call to node ", peer_, ": no answer within op_timeout"));
    expired = true;
  }
  return expired;
}

std::vector<absl::AnyInvocable<void()>> PendingTable::FailAll(
    const absl::Status& status, bool calls_only) {
  std::vector<absl::AnyInvocable<void()>> callbacks;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& op : slots_) {
    uint32_t prev;
    if (calls_only && op.kind != OpKind::kCall) continue;
    if (!Claim(&op, &prev)) continue;
    if (op.status.ok()) op.status = status;
    if (op.sync) {
      Publish(&op, prev);  // the owner wakes and releases it
      continue;
    }
    // One entry per failed async op (a Call: fetches are synchronous), even
    // without a callback: the caller pairs each with the op's bookkeeping.
    NodeId peer = peer_;
    callbacks.push_back(
        [cb = std::move(op.call_done), st = op.status, peer]() mutable {
          if (cb) cb(st, Message{peer, 0, 0, {}});
        });
    op.call_done = nullptr;
    op.state.store(PendingOp::kFree, std::memory_order_release);
    free_.push_back(static_cast<uint32_t>(&op - slots_.data()));
  }
  freed_.notify_all();
  return callbacks;
}

PendingOp* PendingTable::Find(uint64_t id) {
  uint64_t index = (id & 0xFFFF);
  if (index == 0 || index > slots_.size()) return nullptr;
  PendingOp* op = &slots_[index - 1];
  uint32_t s = op->state.load(std::memory_order_acquire);
  if ((s != PendingOp::kPending && s != PendingOp::kSleeping) || op->id != id) {
    return nullptr;
  }
  return op;
}

bool PendingTable::Claim(PendingOp* op, uint32_t* prev) {
  uint32_t s = op->state.load(std::memory_order_acquire);
  while (s == PendingOp::kPending || s == PendingOp::kSleeping) {
    if (op->state.compare_exchange_weak(s, PendingOp::kClaimed,
                                        std::memory_order_acq_rel)) {
      *prev = s;
      return true;
    }
  }
  return false;
}

void PendingTable::Publish(PendingOp* op, uint32_t prev) {
  op->state.store(PendingOp::kDone, std::memory_order_release);
  if (prev == PendingOp::kSleeping) sys::FutexWakeAll(&op->state);
}

void PendingTable::Complete(PendingOp* op) {
  uint32_t prev =
      op->state.exchange(PendingOp::kDone, std::memory_order_acq_rel);
  if (prev == PendingOp::kSleeping) sys::FutexWakeAll(&op->state);
}

bool PendingTable::WaitDone(PendingOp* op, absl::Time deadline, bool spin) {
  if (spin) {
    for (int i = 0; i < (1 << 20); ++i) {
      if (op->state.load(std::memory_order_acquire) == PendingOp::kDone) {
        return true;
      }
      __builtin_ia32_pause();
    }
  }
  for (;;) {
    uint32_t s = op->state.load(std::memory_order_acquire);
    if (s == PendingOp::kDone) return true;
    if (s == PendingOp::kClaimed) {  // kDone is a few instructions away
      __builtin_ia32_pause();
      continue;
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    if (s == PendingOp::kPending &&
        !op->state.compare_exchange_strong(s, PendingOp::kSleeping,
                                           std::memory_order_acq_rel)) {
      continue;  // completed meanwhile
    }
    sys::FutexWait(&op->state, PendingOp::kSleeping, left);
  }
}

uint32_t PendingTable::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<uint32_t>(slots_.size() - free_.size());
}

}  // namespace ssihv::rdmax
