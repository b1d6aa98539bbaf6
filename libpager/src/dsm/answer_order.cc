#include "dsm/answer_order.h"

namespace ssihv::pager::dsm {

bool AnswerOrder::AdmitOrPark(uint64_t after, absl::Span<const uint8_t> frame) {
  std::lock_guard<std::mutex> lock(mu_);
  if (parked_.empty() && !draining_ && ReadyLocked(after)) return true;
  if (dead_) return true;  // nothing waits for a dead sender's answers
  parked_.push_back({after, std::vector<uint8_t>(frame.begin(), frame.end())});
  ++parked_total_;
  return false;
}

bool AnswerOrder::Taken(uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  if (seq <= taken_ || !ahead_.insert(seq).second) return false;
  while (!ahead_.empty() && *ahead_.begin() == taken_ + 1) {
    ahead_.erase(ahead_.begin());
    ++taken_;
  }
  return true;
}

std::optional<std::vector<uint8_t>> AnswerOrder::PopReadyLocked() {
  if (parked_.empty() || !ReadyLocked(parked_.front().after)) {
    draining_ = false;
    return std::nullopt;
  }
  draining_ = true;
  std::vector<uint8_t> frame = std::move(parked_.front().frame);
  parked_.pop_front();
  return frame;
}

std::optional<std::vector<uint8_t>> AnswerOrder::StartDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return std::nullopt;
  return PopReadyLocked();
}

std::optional<std::vector<uint8_t>> AnswerOrder::ContinueDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  return PopReadyLocked();
}

void AnswerOrder::SenderDead() {
  std::lock_guard<std::mutex> lock(mu_);
  dead_ = true;
  parked_.clear();
}

size_t AnswerOrder::parked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_.size();
}

uint64_t AnswerOrder::parked_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_total_;
}

uint64_t AnswerOrder::taken() const {
  std::lock_guard<std::mutex> lock(mu_);
  return taken_;
}

}  // namespace ssihv::pager::dsm
