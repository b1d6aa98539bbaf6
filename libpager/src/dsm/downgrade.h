// Background downgrade (docs/PAGER.md, "Background downgrade"): the policy
// that decides which pages homed here the node write-protects on its own,
// off any fault's path.
//
// Why: a remote read of a page the home holds Modified must wait for the
// home to write-protect its copy (one UFFDIO_WRITEPROTECT and the TLB
// shootdown it sends to every CPU running the guest) before the bytes may
// leave. A page the guest writes on its home node and reads elsewhere a
// little later (a producer and its consumers, a guest's tick writing
// `jiffies`) pays that on every read. Write-protected in the background once
// the home has left it alone for a while, the page is Shared when the read
// comes and the home answers at once.
//
// The price: a page the home writes again before anyone reads it takes a
// write-protect fault it would not have taken (an upgrade with no message,
// but a fault). So only pages with the pattern qualify, and each pays for
// its misses:
//
// * a page becomes a *candidate* when a remote read had to downgrade it here
//   (the home write-protected it for a reader);
// * each time the home's write makes a candidate writable again (an
//   upgrade), the time `idle << backoff` later is noted; a remote read
//   that then has to downgrade it after that time is *evidence* that a
//   background downgrade would have been in time;
// * once a page has kEvidenceNeeded such reads, each upgrade schedules its
//   downgrade at the noted time (the deferral thread). A page read once
//   and then written by its home for ever never gets there;
// * a background downgrade undone by a local write before any remote read
//   was *wasted*: the page's backoff grows by one and its evidence starts
//   over; at kMaxBackoff it is no longer scheduled. A remote read served from
//   the Shared copy it left was *useful*; it is counted but does not shorten
//   the wait: a wasted downgrade (a write-protect fault, ~5-10 us on a host)
//   costs several times what a useful one saves (one write-protection on the
//   reader's path, ~1-2 us), so a page that wastes some keeps its longer wait.
//   A page given up comes back (one step under the limit) when a remote read
//   has to downgrade it again.
//
// Thread-safety: the per-page calls run under that page's lock (the engine's
// striped page locks); the schedule has its own mutex.
#ifndef SSIHV_PAGER_DSM_DOWNGRADE_H_
#define SSIHV_PAGER_DSM_DOWNGRADE_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ssihv/directory/types.h"

namespace ssihv::pager::dsm {

class BackgroundDowngrade {
 public:
  /// A page is given up after this many wasted downgrades in a row.
  static constexpr uint8_t kMaxBackoff = 6;
  /// Remote reads that came after the page had been left alone the whole
  /// delay, needed before it is downgraded (again, after a wasted one).
  static constexpr uint8_t kEvidenceNeeded = 2;

  /// The pages [first, first + count) are homed here. `idle_ns` <= 0: off
  /// (every call is a no-op, nothing is ever scheduled).
  BackgroundDowngrade(directory::PageId first, uint64_t count, int64_t idle_ns);

  bool enabled() const { return idle_ns_ > 0; }

  /// The home write-protected `page` for a remote reader at `now_ns`.
  void OnReadDowngrade(directory::PageId page, int64_t now_ns);
  /// The home sent `page`'s bytes to another node.
  void OnServed(directory::PageId page);
  /// A local write made `page` writable here at `now_ns`. Returns when to
  /// downgrade it (0: not a candidate, or given up); pass that time to
  /// Take when it comes.
  int64_t OnWritable(directory::PageId page, int64_t now_ns);
  /// True if the downgrade scheduled for `due_ns` is still the page's
  /// latest (a later OnWritable supersedes it); consumes it.
  bool Take(directory::PageId page, int64_t due_ns);
  /// The page's downgrade must wait until `due_ns` (its grant is still
  /// held); returns `due_ns`, for Take.
  int64_t Postpone(directory::PageId page, int64_t due_ns);
  /// The page was downgraded in the background.
  void OnDowngraded(directory::PageId page);

  uint64_t downgrades() const { return downgrades_.load(kRelaxed); }
  uint64_t useful() const { return useful_.load(kRelaxed); }
  uint64_t wasted() const { return wasted_.load(kRelaxed); }

 private:
  static constexpr std::memory_order kRelaxed = std::memory_order_relaxed;
  // Per-page byte: the backoff in the low bits, the evidence above it, and
  // these flags.
  static constexpr uint8_t kBackoffMask = 0x07;
  static constexpr uint8_t kEvidenceOne = 0x08;
  static constexpr uint8_t kEvidenceMask = 0x18;
  static constexpr uint8_t kEvidenceMax = 3;
  static constexpr uint8_t kCandidate = 0x20;
  static constexpr uint8_t kDowngraded = 0x40;  // by us, not used or undone
  static uint8_t Evidence(uint8_t b) { return (b & kEvidenceMask) >> 3; }

  uint8_t* Bits(directory::PageId page);

  directory::PageId first_;
  int64_t idle_ns_;
  std::vector<uint8_t> bits_;
  std::mutex mu_;
  absl::flat_hash_map<directory::PageId, int64_t> due_;  // guarded by mu_
  std::atomic<uint64_t> downgrades_{0}, useful_{0}, wasted_{0};
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_DOWNGRADE_H_
