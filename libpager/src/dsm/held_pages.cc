#include "dsm/held_pages.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace ssihv::pager::dsm {

HeldPages::HeldPages(size_t capacity)
    : capacity_(capacity), buffers_(new uint8_t[capacity * kPageBytes]) {
  free_.reserve(capacity);
  for (size_t i = capacity; i > 0; --i) {
    free_.push_back(static_cast<uint32_t>(i - 1));
  }
  held_.reserve(capacity);
}

bool HeldPages::Hold(uint64_t page, const uint8_t* bytes, int64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty() || held_.contains(page)) return false;
  const uint32_t buffer = free_.back();
  free_.pop_back();
  if (bytes != nullptr) std::memcpy(BufferOf(buffer), bytes, kPageBytes);
  held_.emplace(page, Slot{now_ns, bytes == nullptr, buffer});
  return true;
}

uint8_t* HeldPages::BufferOf(uint32_t buffer) const {
  return buffers_.get() + buffer * kPageBytes;
}

void HeldPages::ReleaseLocked(
    absl::flat_hash_map<uint64_t, Slot>::iterator it) {
  free_.push_back(it->second.buffer);
  held_.erase(it);
}

bool HeldPages::Take(uint64_t page, uint8_t* out, bool* zero) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(page);
  if (it == held_.end()) return false;
  *zero = it->second.zero;
  if (!it->second.zero) {
    std::memcpy(out, BufferOf(it->second.buffer), kPageBytes);
  }
  ReleaseLocked(it);
  return true;
}

bool HeldPages::Peek(uint64_t page, uint8_t* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(page);
  if (it == held_.end()) return false;
  if (it->second.zero) {
    std::memset(out, 0, kPageBytes);
  } else {
    std::memcpy(out, BufferOf(it->second.buffer), kPageBytes);
  }
  return true;
}

bool HeldPages::Contains(uint64_t page) const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.contains(page);
}

bool HeldPages::Drop(uint64_t page) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(page);
  if (it == held_.end()) return false;
  ReleaseLocked(it);
  return true;
}

std::vector<uint64_t> HeldPages::HeldBefore(int64_t ns, size_t max) const {
  std::vector<std::pair<int64_t, uint64_t>> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [page, slot] : held_) {
      if (slot.since_ns < ns) old.emplace_back(slot.since_ns, page);
    }
  }
  std::sort(old.begin(), old.end());
  std::vector<uint64_t> pages;
  for (size_t i = 0; i < old.size() && i < max; ++i) {
    pages.push_back(old[i].second);
  }
  return pages;
}

size_t HeldPages::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.size();
}

}  // namespace ssihv::pager::dsm
