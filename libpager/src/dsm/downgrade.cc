#include "dsm/downgrade.h"

namespace ssihv::pager::dsm {

BackgroundDowngrade::BackgroundDowngrade(directory::PageId first,
                                         uint64_t count, int64_t idle_ns)
    : first_(first),
      idle_ns_(idle_ns),
      bits_(idle_ns > 0 ? count : 0, uint8_t{0}) {}

uint8_t* BackgroundDowngrade::Bits(directory::PageId page) {
  if (page < first_ || page - first_ >= bits_.size()) return nullptr;
  return &bits_[page - first_];
}

void BackgroundDowngrade::OnReadDowngrade(directory::PageId page,
                                          int64_t now_ns) {
  uint8_t* b = Bits(page);
  if (b == nullptr) return;
  if (*b & kCandidate) {
    // A page given up comes back, slowly: the read shows the pattern again.
    if ((*b & kBackoffMask) >= kMaxBackoff) --*b;
    // The read came after the page had been left alone the whole delay
    // since its last upgrade: a background downgrade would have been in
    // time. Either way the page is Shared now: nothing left to schedule.
    bool in_time = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = due_.find(page); it != due_.end()) {
        in_time = now_ns >= it->second;
        due_.erase(it);
      }
    }
    if (in_time && Evidence(*b) < kEvidenceMax) *b += kEvidenceOne;
  }
  *b = static_cast<uint8_t>((*b | kCandidate) & ~kDowngraded);
}

void BackgroundDowngrade::OnServed(directory::PageId page) {
  uint8_t* b = Bits(page);
  if (b == nullptr || !(*b & kDowngraded)) return;
  *b = static_cast<uint8_t>(*b & ~kDowngraded);
  useful_.fetch_add(1, kRelaxed);
}

int64_t BackgroundDowngrade::OnWritable(directory::PageId page,
                                        int64_t now_ns) {
  uint8_t* b = Bits(page);
  if (b == nullptr || !(*b & kCandidate)) return 0;
  if (*b & kDowngraded) {  // wasted: longer wait, and new evidence needed
    *b = static_cast<uint8_t>(*b & ~(kDowngraded | kEvidenceMask));
    wasted_.fetch_add(1, kRelaxed);
    if ((*b & kBackoffMask) < kMaxBackoff) ++*b;
  }
  const uint8_t backoff = *b & kBackoffMask;
  if (backoff >= kMaxBackoff) return 0;
  // Recorded whether or not it is scheduled: the next remote read's
  // evidence is measured against it.
  const int64_t due = now_ns + (idle_ns_ << backoff);
  {
    std::lock_guard<std::mutex> lock(mu_);
    due_[page] = due;
  }
  return Evidence(*b) >= kEvidenceNeeded ? due : 0;
}

bool BackgroundDowngrade::Take(directory::PageId page, int64_t due_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = due_.find(page);
  if (it == due_.end() || it->second != due_ns) return false;
  due_.erase(it);
  return true;
}

int64_t BackgroundDowngrade::Postpone(directory::PageId page, int64_t due_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  due_[page] = due_ns;
  return due_ns;
}

void BackgroundDowngrade::OnDowngraded(directory::PageId page) {
  uint8_t* b = Bits(page);
  if (b == nullptr) return;
  *b |= kDowngraded;
  downgrades_.fetch_add(1, kRelaxed);
}

}  // namespace ssihv::pager::dsm
