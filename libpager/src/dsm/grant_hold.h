// Adaptive grant hold: how long a page just granted to this node stays
// here before a request that takes it away again is served.
//
// Why: a thread woken by a grant does not use the page at once. KVM is the
// hard case: its fault paths and its gfn-to-pfn caches (the guest's
// kvmclock page, written at every KVM_RUN on a host whose TSC is unstable)
// take the page with get_user_pages and then re-check, under a lock, that
// no invalidation came in between, else they start again. Two nodes writing
// one page (the guest's kvmclock array, a spinlock) then livelock when the
// page leaves again before that check: each node takes it, loses it, takes
// it again, hundreds of times a second, and neither vCPU makes progress
// (seen in the lab: a 2-node boot stuck in kvm_setup_guest_pvclock with
// 53,000 transfers each way in two minutes). A fixed hold long enough for
// the slowest host would slow every contended page on a fast one.
//
// The policy (this class, pure: times come in as arguments): each time a
// page that a write took from this node comes back to it for a write soon
// after (within kBounceWindows holds, and never less than kMinBounceNs: a
// round trip to the other node is itself long against a 20 us hold, 1.5 ms
// in the lab), its hold doubles, up to the largest power-of-two multiple of
// the base within `max_ns`; a page that stayed away for longer than
// kCalmWindows holds (and at least kMinCalmNs) drops back to the base.
// Only writers fighting over a page livelock (KVM's kvmclock writes, a
// contended lock): a page one node writes and others read (the guest's
// timekeeper and jiffies, rewritten at every tick) comes back just as soon,
// but each side uses it at once, and a long hold there only makes the
// readers and the writer wait for each other at every tick (a tick of
// BM_RemoteTick/tcp took 5.3 ms, 0.1 ms without that). So a return that
// involves a read (a write-protect taken for a reader, or a Shared grant)
// halves the hold back instead, except for a writer interrupted: a page
// a reader took and this node wanted back for a write at once (its write
// fault came sooner after the take than a quarter of the round trip that
// then brought the page back, and within kMaxInterruptNs) was taken in the
// middle of the writer's critical section, not between two ticks. A seqlock
// writer (the timekeeper's update, a few hundred stores) with readers spinning
// on the other nodes pays a round trip per store when its hold stays at the
// base: in the lab a 3-node boot spent its time there, the holder of
// timekeeper_lock never reaching its unlock. Its hold doubles like that of
// fighting writers. Pages are tracked in a fixed direct-mapped table (a page
// that loses its slot to another starts again from the base), so the memory
// does not grow with the guest. Races between threads on one slot only blur the
// heuristic: slots are single atomic words.
#ifndef SSIHV_PAGER_DSM_GRANT_HOLD_H_
#define SSIHV_PAGER_DSM_GRANT_HOLD_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace ssihv::pager::dsm {

class GrantHold {
 public:
  static constexpr uint64_t kSlots = uint64_t{1} << 16;
  static constexpr int64_t kBounceWindows = 16;
  static constexpr int64_t kCalmWindows = 256;
  static constexpr int64_t kMinBounceNs = 10'000'000;   // 10 ms
  static constexpr int64_t kMinCalmNs = 1'000'000'000;  // 1 s
  /// A writer interrupted faults again at once; one that comes back later
  /// than this after a reader took the page is between updates, however
  /// slow the round trip (a starved host stretches it to milliseconds).
  static constexpr int64_t kMaxInterruptNs = 1'000'000;  // 1 ms

  /// `base_ns`: the hold of a page that does not bounce; `max_ns`: the
  /// bound (at least the base).
  GrantHold(int64_t base_ns, int64_t max_ns);

  /// The page was taken from this node at `now_ns`: zapped for another
  /// node's write (`for_write`), or write-protected for a reader.
  void OnTaken(uint64_t page, int64_t now_ns, bool for_write);
  /// The page was granted to this node again at `now_ns`, Modified
  /// (`write`) or Shared, for a fault the pager read at `wanted_ns` (0: no
  /// fault asked for it, a read-ahead or a run): adapts its hold.
  void OnGranted(uint64_t page, int64_t now_ns, bool write,
                 int64_t wanted_ns = 0);
  /// The page's current hold.
  int64_t HoldNs(uint64_t page) const;
  /// Grants that doubled a hold (statistics).
  uint64_t escalations() const {
    return escalations_.load(std::memory_order_relaxed);
  }
  /// Of those, the ones for a writer interrupted by a reader (statistics).
  uint64_t interrupted_writes() const {
    return interrupted_writes_.load(std::memory_order_relaxed);
  }

 private:
  // A slot: page (36 bits) | shift (5 bits) | taken for a write (1 bit) |
  // taken time in 4.096 us units (22 bits: wraps after 17 s; a wrapped time
  // reads as long ago or as a recent bounce, either way one step of the
  // heuristic).
  static constexpr int kShiftBits = 5;
  static constexpr int kTimeBits = 22;
  static constexpr int kWriteBit = 36 + kShiftBits;
  static constexpr int kTimeShift = kWriteBit + 1;
  static constexpr int kTimeUnitShift = 12;  // ns -> 4.096 us
  struct Slot {
    uint64_t page;
    int shift;
    bool for_write;
    uint64_t taken;  // in time units, kTimeBits wide
  };
  static uint64_t Pack(const Slot& s);
  static Slot Unpack(uint64_t word);
  std::atomic<uint64_t>& SlotOf(uint64_t page) const {
    return slots_[page & (kSlots - 1)];
  }
  int64_t HoldOf(int shift) const;
  static bool Interrupted(const Slot& s, int64_t now_ns, int64_t wanted_ns);

  const int64_t base_ns_;
  const int64_t max_ns_;
  int max_shift_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> slots_;
  std::atomic<uint64_t> escalations_{0};
  std::atomic<uint64_t> interrupted_writes_{0};
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_GRANT_HOLD_H_
