// Asynchronous read-ahead (docs/PAGER.md, "Remote read-ahead"): the first
// page of each read run stays unmapped here, its bytes held
// (dsm/held_pages.h), so that a walk reaching it faults without waiting for
// the network and that fault asks for the next window while the pages
// behind the marker are read. Without it a walk consumed each window to its
// end and then waited a whole round trip for the next one.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "clock.h"
#include "dsm/engine.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

namespace {

// A marker no fault reached within this long belongs to a walk that
// stopped: it is mapped like the rest of its run, its buffer freed.
constexpr int64_t kStrandedNs = 50'000'000;
// Markers mapped per call of FlushStrandedHeld (a fault thread's time).
constexpr size_t kFlushBatch = 8;

}  // namespace

absl::StatusOr<bool> DsmEngine::HoldMarker(dir::PageId page,
                                           const uint8_t* bytes) {
  if (options_.read_ahead_pages == 0 && !refresh_->Outstanding(page)) {
    return false;
  }
  WaitMap& map = WaitersOf(page);
  if (map.find(page) != map.end()) return false;  // the walk is there now
  if (!held_->Hold(page, bytes, MonotonicNs())) return false;  // pool full
  // No stale copy may stay mapped under a marker (InstallReceived's case:
  // a copy whose invalidation is behind this grant): the walk would read
  // it without faulting.
  if (absl::Status st = pager_->resolver().Discard(GpaOf(page), kPageSize);
      !st.ok()) {
    held_->Drop(page);
    return st;
  }
  SetPopulated(page, false);
  return true;
}

absl::StatusOr<bool> DsmEngine::MapHeld(dir::PageId page) {
  alignas(64) uint8_t bytes[kPageSize];
  bool zero = false;
  if (!held_->Take(page, bytes, &zero)) return false;
  if (node_->node_agent().StateOf(page) != dir::PageState::kShared) {
    // The protocol no longer grants it here (recovery moved it on without
    // an invalidation): the bytes are not to be trusted.
    held_dropped_.fetch_add(1, std::memory_order_relaxed);
    refresh_->OnSettled(page);
    return false;
  }
  if (zero) std::memset(bytes, 0, kPageSize);
  SSIHV_RETURN_IF_ERROR(InstallReceived(page, bytes, /*writable=*/false));
  return true;
}

bool DsmEngine::ServeHeld(dir::PageId page, Ctx& ctx, absl::Status* st) {
  absl::StatusOr<bool> mapped = MapHeld(page);
  if (mapped.ok() && !*mapped) return false;  // not held: ask the protocol
  *st = mapped.status();
  if (st->ok()) {
    held_served_.fetch_add(1, std::memory_order_relaxed);
    ctx.held_marker = true;
    // Local bytes, no wait for the network: a local copy for the fault
    // statistics. A write fault retries and upgrades as on any Shared copy.
    CompleteWaiters(page, FaultKind::kLocalCopy, ctx);
  }
  return true;
}

void DsmEngine::FlushStrandedHeld() {
  if (held_->size() < held_->capacity() / 4) return;  // room enough
  const std::vector<uint64_t> pages =
      held_->HeldBefore(MonotonicNs() - kStrandedNs, kFlushBatch);
  for (const uint64_t page : pages) {
    dsm::PageGuard guard(*locks_, page);
    absl::StatusOr<bool> mapped = MapHeld(page);  // false: reached or dropped
    if (!mapped.ok()) {
      Error(mapped.status());
      return;
    }
    if (*mapped) {
      held_flushed_.fetch_add(1, std::memory_order_relaxed);
      refresh_->OnSettled(page);  // mapped unread: no verdict
    }
  }
}

const uint8_t* DsmEngine::BytesToSend(dir::PageId page,
                                      uint8_t* scratch) const {
  if (Populated(page)) return HostOf(page);
  if (held_->Peek(page, scratch)) return scratch;
  return nullptr;
}

}  // namespace ssihv::pager
