// Read refresh (docs/PAGER.md, "Read refresh"): a page that another node
// writes now and then and that this node reads after each write (a guest's
// jiffies and timekeeper, written by one CPU at every tick and read by all
// the others) costs this node a remote read miss per write, on a vCPU's
// critical path. Once a page has shown that pattern, this node asks for it
// again soon after a write takes its copy (a read with no thread
// faulting), and the next read here finds the page's new bytes instead of
// waiting a round trip. Off by default (DsmOptions::read_refresh): it
// halved the lab guest's CPU-bound benchmark (docs/PERFORMANCE.md).
//
// The policy (this class, pure, thread-safe): a page becomes *hot* when
// `need` remote read misses in a row each came within kWindowNs of the
// invalidation before it. The refresh is asked for a quarter of the
// writer's period after the invalidation. The refreshed copy is held
// unmapped (like a read-ahead marker, held_pages.h), so its use is seen:
// a read that takes it keeps the page hot; a copy invalidated again before
// any read took it was wasted, and two wasted in a row cool the page and
// double `need` (up to kMaxNeed), so a page read less often than it is
// written stops costing its writer an upgrade per write. A bounded table:
// pages are tracked from their first remote read miss, the least recently
// seen one evicted when full.
#ifndef SSIHV_PAGER_DSM_READ_REFRESH_H_
#define SSIHV_PAGER_DSM_READ_REFRESH_H_

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_map.h"

namespace ssihv::pager::dsm {

class ReadRefresh {
 public:
  /// A read miss this long after the invalidation still counts as reading
  /// what the writer wrote (a tick is 1-10 ms; a slow host stretches it).
  static constexpr int64_t kWindowNs = 50'000'000;
  static constexpr uint32_t kFirstNeed = 3;
  static constexpr uint32_t kMaxNeed = 96;
  static constexpr uint32_t kWastedToCool = 2;
  static constexpr size_t kDefaultCapacity = 256;
  // The refresh waits a quarter of the time between the page's last two
  // invalidations (the writer's period), within these bounds: asked for
  // at once, it reached the writer as soon as the writer's grant hold was
  // over, and a writer thread that had not stored yet (preempted, or a
  // vCPU slow to re-enter its guest) faulted again and took the page
  // back, the refreshed copy wasted (docs/PAGER.md, "Read refresh").
  static constexpr int64_t kMinDelayNs = 100'000;
  static constexpr int64_t kMaxDelayNs = 2'000'000;
  static constexpr int64_t kFirstDelayNs = 500'000;  // no period known yet

  struct Stats {
    uint64_t requested = 0;  // refreshes asked for
    uint64_t used = 0;       // refreshed copies a read took
    uint64_t wasted = 0;     // invalidated before any read took them
    uint64_t cooled = 0;     // pages that stopped being refreshed
    uint64_t hot = 0;        // pages refreshed now
  };

  /// `enabled` false: never refreshes (OnInvalidated always false).
  explicit ReadRefresh(bool enabled, size_t capacity = kDefaultCapacity)
      : enabled_(enabled), capacity_(capacity) {}

  /// A read fault on `page` that waited for the network.
  void OnRemoteRead(uint64_t page, int64_t now_ns);
  /// This node's Shared copy of `page` was invalidated (another node
  /// writes it). True: ask for the page again `*delay_ns` from now;
  /// OnMapped, OnWasted or OnSettled follows.
  bool OnInvalidated(uint64_t page, int64_t now_ns, int64_t* delay_ns);
  /// A refresh of `page` is on its way or held (its copy is to be held).
  bool Outstanding(uint64_t page) const;
  /// `page` was mapped for the faults waiting for it (`waited`: there were
  /// some: a refreshed copy a read took, or whose request it joined).
  void OnMapped(uint64_t page, bool waited);
  /// The refreshed copy was invalidated before any read took it.
  void OnWasted(uint64_t page);
  /// The refresh ended without telling either (not sent, mapped unread
  /// after a while, or no longer valid).
  void OnSettled(uint64_t page);

  Stats stats() const;

 private:
  struct Entry {
    int64_t invalidated_ns = 0;  // 0: no invalidation since the last read
    int64_t last_inv_ns = 0;     // the last invalidation: the period
    int64_t seen_ns = 0;         // last event: eviction order
    uint32_t streak = 0;         // read misses in a row soon after an Inv
    uint32_t need = kFirstNeed;  // streak that makes the page hot
    uint32_t wasted = 0;         // wasted refreshes in a row
    bool hot = false;
    bool outstanding = false;
  };
  Entry& Track(uint64_t page, int64_t now_ns);  // mu_ held

  const bool enabled_;
  const size_t capacity_;
  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, Entry> pages_;
  Stats stats_;
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_READ_REFRESH_H_
