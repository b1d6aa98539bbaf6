#include "dsm/grant_hold.h"

#include <algorithm>

namespace ssihv::pager::dsm {
namespace {

constexpr uint64_t kPageMask = (uint64_t{1} << 36) - 1;
// An empty slot: no page has this id (it is outside any 36-bit range).
constexpr uint64_t kEmpty = ~uint64_t{0};

}  // namespace

GrantHold::GrantHold(int64_t base_ns, int64_t max_ns)
    : base_ns_(std::max<int64_t>(base_ns, 1)),
      max_ns_(std::max(max_ns, std::max<int64_t>(base_ns, 1))),
      slots_(new std::atomic<uint64_t>[kSlots]) {
  while (max_shift_ < (1 << kShiftBits) - 1 &&
         (base_ns_ << (max_shift_ + 1)) <= max_ns_) {
    ++max_shift_;
  }
  for (uint64_t i = 0; i < kSlots; ++i) {
    slots_[i].store(kEmpty, std::memory_order_relaxed);
  }
}

uint64_t GrantHold::Pack(const Slot& s) {
  return (s.page & kPageMask) | (static_cast<uint64_t>(s.shift) << 36) |
         (static_cast<uint64_t>(s.for_write) << kWriteBit) |
         ((s.taken & ((uint64_t{1} << kTimeBits) - 1)) << kTimeShift);
}

GrantHold::Slot GrantHold::Unpack(uint64_t word) {
  return Slot{word & kPageMask,
              static_cast<int>((word >> 36) & ((1u << kShiftBits) - 1)),
              ((word >> kWriteBit) & 1) != 0, word >> kTimeShift};
}

int64_t GrantHold::HoldOf(int shift) const {
  return std::min(base_ns_ << shift, max_ns_);
}

void GrantHold::OnTaken(uint64_t page, int64_t now_ns, bool for_write) {
  std::atomic<uint64_t>& slot = SlotOf(page);
  const uint64_t word = slot.load(std::memory_order_relaxed);
  Slot s = word != kEmpty ? Unpack(word) : Slot{};
  if (word == kEmpty || s.page != (page & kPageMask)) {
    s = Slot{page, 0, false, 0};
  }
  s.for_write = for_write;
  s.taken = static_cast<uint64_t>(now_ns) >> kTimeUnitShift;
  slot.store(Pack(s), std::memory_order_relaxed);
}

// Taken for a reader, wanted back for a write sooner than a quarter of the
// round trip that brought it back (`now_ns - wanted_ns`), and within
// kMaxInterruptNs. A writer between
// two rounds comes back at least a round trip later (its command, the
// reader's data), one in the middle of its stores at once; a quarter keeps
// a slow round trip of the first kind out. The take and the fault can come
// in either order: a fault read before the take is the writer already in
// its next store.
bool GrantHold::Interrupted(const Slot& s, int64_t now_ns, int64_t wanted_ns) {
  if (s.for_write || wanted_ns <= 0 || now_ns < wanted_ns) return false;
  constexpr uint64_t kTimeMask = (uint64_t{1} << kTimeBits) - 1;
  const uint64_t wanted = static_cast<uint64_t>(wanted_ns) >> kTimeUnitShift;
  const uint64_t after = (wanted - s.taken) & kTimeMask;
  if (after > kTimeMask / 2) return true;  // wanted before the take
  return static_cast<int64_t>(after << kTimeUnitShift) <
         std::min((now_ns - wanted_ns) / 4, kMaxInterruptNs);
}

void GrantHold::OnGranted(uint64_t page, int64_t now_ns, bool write,
                          int64_t wanted_ns) {
  std::atomic<uint64_t>& slot = SlotOf(page);
  const uint64_t word = slot.load(std::memory_order_relaxed);
  if (word == kEmpty) return;
  Slot s = Unpack(word);
  if (s.page != (page & kPageMask)) return;  // never taken from here
  constexpr uint64_t kTimeMask = (uint64_t{1} << kTimeBits) - 1;
  const uint64_t now = static_cast<uint64_t>(now_ns) >> kTimeUnitShift;
  const int64_t away_ns =
      static_cast<int64_t>(((now - s.taken) & kTimeMask) << kTimeUnitShift);
  const int64_t hold = HoldOf(s.shift);
  if (away_ns < std::max(kBounceWindows * hold, kMinBounceNs)) {
    const bool interrupted = write && Interrupted(s, now_ns, wanted_ns);
    if (!(write && s.for_write) && !interrupted) {
      s.shift = std::max(s.shift - 1, 0);  // a reader was involved
    } else if (s.shift < max_shift_) {
      ++s.shift;
      escalations_.fetch_add(1, std::memory_order_relaxed);
      if (interrupted) {
        interrupted_writes_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  } else if (away_ns > std::max(kCalmWindows * hold, kMinCalmNs)) {
    s.shift = 0;
  }
  slot.store(Pack(s), std::memory_order_relaxed);
}

int64_t GrantHold::HoldNs(uint64_t page) const {
  const uint64_t word = SlotOf(page).load(std::memory_order_relaxed);
  if (word == kEmpty) return base_ns_;
  const Slot s = Unpack(word);
  return s.page == (page & kPageMask) ? HoldOf(s.shift) : base_ns_;
}

}  // namespace ssihv::pager::dsm
