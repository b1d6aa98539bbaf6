#include "dsm/read_refresh.h"

#include <algorithm>

namespace ssihv::pager::dsm {

// The table holds pages that had remote read misses; when full, the page
// seen least recently goes (a linear scan: it runs only when a new page
// misses with the table full, and a remote miss costs tens of
// microseconds at least).
ReadRefresh::Entry& ReadRefresh::Track(uint64_t page, int64_t now_ns) {
  auto it = pages_.find(page);
  if (it == pages_.end()) {
    if (pages_.size() >= capacity_) {
      auto oldest = pages_.begin();
      for (auto j = pages_.begin(); j != pages_.end(); ++j) {
        // A page with a refresh in flight stays: its answer is to be held.
        if (j->second.outstanding) continue;
        if (oldest->second.outstanding ||
            j->second.seen_ns < oldest->second.seen_ns) {
          oldest = j;
        }
      }
      if (oldest->second.hot) --stats_.hot;
      pages_.erase(oldest);
    }
    it = pages_.emplace(page, Entry{}).first;
  }
  it->second.seen_ns = now_ns;
  return it->second;
}

void ReadRefresh::OnRemoteRead(uint64_t page, int64_t now_ns) {
  if (!enabled_ || capacity_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = Track(page, now_ns);
  const bool soon =
      e.invalidated_ns != 0 && now_ns - e.invalidated_ns <= kWindowNs;
  e.streak = soon ? e.streak + 1 : 0;
  e.invalidated_ns = 0;
  if (!e.hot && e.streak >= e.need) {
    e.hot = true;
    e.wasted = 0;
    ++stats_.hot;
  }
}

bool ReadRefresh::OnInvalidated(uint64_t page, int64_t now_ns,
                                int64_t* delay_ns) {
  if (!enabled_) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pages_.find(page);
  if (it == pages_.end()) return false;
  Entry& e = it->second;
  const int64_t period = e.last_inv_ns != 0 ? now_ns - e.last_inv_ns : 0;
  e.invalidated_ns = now_ns;
  e.last_inv_ns = now_ns;
  e.seen_ns = now_ns;
  if (!e.hot || e.outstanding) return false;
  e.outstanding = true;
  ++stats_.requested;
  *delay_ns = period > 0 ? std::clamp(period / 4, kMinDelayNs, kMaxDelayNs)
                         : kFirstDelayNs;
  return true;
}

bool ReadRefresh::Outstanding(uint64_t page) const {
  if (!enabled_) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pages_.find(page);
  return it != pages_.end() && it->second.outstanding;
}

void ReadRefresh::OnMapped(uint64_t page, bool waited) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pages_.find(page);
  if (it == pages_.end() || !it->second.outstanding) return;
  it->second.outstanding = false;
  if (!waited) return;  // mapped unread (the pool was full): no verdict
  it->second.wasted = 0;
  // A read took the page after an invalidation: the pattern goes on, and
  // the next invalidation's miss (had it not been refreshed) would have
  // counted towards the streak.
  it->second.invalidated_ns = 0;
  ++stats_.used;
}

void ReadRefresh::OnWasted(uint64_t page) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pages_.find(page);
  if (it == pages_.end() || !it->second.outstanding) return;
  Entry& e = it->second;
  e.outstanding = false;
  ++stats_.wasted;
  if (++e.wasted < kWastedToCool || !e.hot) return;
  e.hot = false;
  e.streak = 0;
  e.wasted = 0;
  e.need = std::min(e.need * 2, kMaxNeed);
  --stats_.hot;
  ++stats_.cooled;
}

void ReadRefresh::OnSettled(uint64_t page) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pages_.find(page);
  if (it != pages_.end()) it->second.outstanding = false;
}

ReadRefresh::Stats ReadRefresh::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace ssihv::pager::dsm
