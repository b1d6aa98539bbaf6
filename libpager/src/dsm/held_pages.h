// Asynchronous read-ahead's markers (docs/PAGER.md, "Remote read-ahead"):
// the first page of each read run a node receives is kept here, granted
// Shared by the protocol but not mapped, so that the walk that reaches it
// faults (a local fault: the bytes are here) and that fault asks for the
// next window while the walk goes on through the pages already mapped.
// Linux's read-ahead marks a page of each window (PG_readahead) for the
// same reason; with userfaultfd an unmapped page is the only mark a read
// can trip.
//
// Pure bookkeeping with a fixed pool of page buffers, thread-safe. The
// engine keeps the protocol's invariant: a page is held only while the
// protocol has it Shared here and nothing maps it; an invalidation drops it
// (its bytes are then stale), and a fault or a flush maps it.
#ifndef SSIHV_PAGER_DSM_HELD_PAGES_H_
#define SSIHV_PAGER_DSM_HELD_PAGES_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace ssihv::pager::dsm {

class HeldPages {
 public:
  static constexpr size_t kPageBytes = 4096;

  /// At most `capacity` pages held at once (their buffers allocated once).
  explicit HeldPages(size_t capacity);

  /// Keeps a copy of `bytes` (nullptr: a page of zeros) for `page`, held
  /// since `now_ns`. False, keeping nothing, when full or already held.
  bool Hold(uint64_t page, const uint8_t* bytes, int64_t now_ns);
  /// Removes `page` and copies its bytes to `out` (kPageBytes); `*zero`
  /// tells a page of zeros (out untouched). False when not held.
  bool Take(uint64_t page, uint8_t* out, bool* zero);
  /// Copies the bytes of a held page without removing it (zeros for a page
  /// of zeros). False when not held.
  bool Peek(uint64_t page, uint8_t* out) const;
  bool Contains(uint64_t page) const;
  /// Forgets `page` (its bytes are stale). False when not held.
  bool Drop(uint64_t page);
  /// Up to `max` pages held since before `ns`, oldest first.
  std::vector<uint64_t> HeldBefore(int64_t ns, size_t max) const;
  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  struct Slot {
    int64_t since_ns;
    bool zero;
    uint32_t buffer;  // index into buffers_
  };

  // The page buffer at `buffer` (an index into buffers_).
  uint8_t* BufferOf(uint32_t buffer) const;
  // mu_ held: frees the slot's buffer and forgets its page.
  void ReleaseLocked(absl::flat_hash_map<uint64_t, Slot>::iterator it);

  const size_t capacity_;
  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, Slot> held_;
  std::vector<uint32_t> free_;  // free buffer indices
  std::unique_ptr<uint8_t[]> buffers_;
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_HELD_PAGES_H_
