#include "fetch_ahead.h"

#include <algorithm>

#include "ssihv/pager/fault.h"

namespace ssihv::pager {

FetchAhead::FetchAhead(uint32_t pages, uint8_t* memory)
    : pages_(std::clamp<uint32_t>(pages, 2, kMaxPages)), memory_(memory) {}

bool FetchAhead::Follows(uint32_t thread, uint64_t offset) {
  Stream* s = nullptr;
  for (Stream& x : streams_) {  // the thread's, else the least recent
    if (x.last_use != 0 && x.thread == thread) {
      s = &x;
      break;
    }
    if (s == nullptr || x.last_use < s->last_use) s = &x;
  }
  const bool follows =
      s->last_use != 0 && s->thread == thread && s->next == offset;
  s->thread = thread;
  s->next = offset + kPageSize;
  s->last_use = ++clock_;
  return follows;
}

FetchAhead::Held FetchAhead::Take(uint64_t offset, uint32_t thread) {
  std::lock_guard<std::mutex> lock(mu_);
  Held held;
  held.follows = Follows(thread, offset);
  for (int i = 0; i < kWindows; ++i) {
    Window& w = windows_[i];
    if (w.filling || w.pages == 0 || offset < w.first ||
        offset - w.first >= uint64_t{w.pages} * kPageSize) {
      continue;
    }
    const uint64_t index = (offset - w.first) / kPageSize;
    if ((w.taken >> index) & 1) return held;  // handed out before: refetch
    w.taken |= uint64_t{1} << index;
    ++w.refs;
    w.last_use = ++clock_;
    ++used_;
    held.page =
        memory_ +
        (uint64_t{static_cast<uint32_t>(i)} * pages_ + index) * kPageSize;
    held.window = i;
    return held;
  }
  return held;
}

FetchAhead::Plan FetchAhead::Miss(uint64_t offset, uint64_t size,
                                  bool follows) {
  const uint64_t left = offset < size ? (size - offset) / kPageSize : 0;
  if (!follows || left < 2) return {};
  std::lock_guard<std::mutex> lock(mu_);
  int victim = -1;
  for (int i = 0; i < kWindows; ++i) {  // least recently used, not in use
    const Window& w = windows_[i];
    if (w.refs == 0 && !w.filling &&
        (victim < 0 || w.last_use < windows_[victim].last_use)) {
      victim = i;
    }
  }
  if (victim < 0) return {};  // every window busy: one page
  Window& w = windows_[victim];
  w.filling = true;
  w.pages = 0;
  w.taken = 0;
  w.refs = 1;  // the faulting thread's, until Release
  w.last_use = ++clock_;
  Plan plan;
  plan.pages = static_cast<uint32_t>(std::min<uint64_t>(pages_, left));
  plan.window = victim;
  plan.dst =
      memory_ + uint64_t{static_cast<uint32_t>(victim)} * pages_ * kPageSize;
  return plan;
}

void FetchAhead::Filled(int window, uint64_t offset, uint32_t pages, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  Window& w = windows_[window];
  w.filling = false;
  if (!ok) return;  // holds nothing (pages 0)
  w.first = offset;
  w.pages = pages;
  w.taken = 1;  // the first page is the fault's own
  fetched_ahead_ += pages - 1;
}

void FetchAhead::Release(int window) {
  std::lock_guard<std::mutex> lock(mu_);
  --windows_[window].refs;
}

uint64_t FetchAhead::fetched_ahead() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetched_ahead_;
}

uint64_t FetchAhead::used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

}  // namespace ssihv::pager
