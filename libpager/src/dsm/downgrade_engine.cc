// The engine's side of background downgrade (dsm/downgrade.h): scheduling
// on the deferral thread, and the downgrade itself under the page's lock.
#include "absl/strings/str_cat.h"
#include "clock.h"
#include "dsm/engine.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

void DsmEngine::ScheduleDowngrade(dir::PageId page) {
  if (!downgrade_->enabled()) return;  // off: not even a clock read
  const int64_t due = downgrade_->OnWritable(page, MonotonicNs());
  if (due != 0) PushPageTask(Deferred::Kind::kDowngrade, page, due);
}

// Nothing to gain on a page that is not mapped here (its next local access
// faults anyway), and the protocol refuses a page that is busy: a
// transaction in progress, a request pending. A grant still held (the
// write that made it writable was granted less than the hold ago) waits
// for its hold to end, as a request for it would (grants.cc); one whose
// hold is over is released first, as a run asking for it would do.
void DsmEngine::DowngradeIdle(dir::PageId page, int64_t due_ns) {
  if (failed_.load(std::memory_order_acquire)) return;
  absl::Status st;
  {
    dsm::PageGuard guard(*locks_, page);
    if (!downgrade_->Take(page, due_ns) || !Populated(page)) return;
    const int64_t hold_end = GrantTime(page) + hold_->HoldNs(page);
    if (hold_end > MonotonicNs()) {
      PushPageTask(Deferred::Kind::kDowngrade, page,
                   downgrade_->Postpone(page, hold_end));
      return;
    }
    node_->EndHold(page);
    dir::Output& out = ThreadOutput();
    if (!node_->Downgrade(page, &out)) return;
    if (out.effects.size() != 1 ||
        out.effects[0].type != dir::EffectType::kWriteProtect ||
        out.effects[0].page != page) {
      st = absl::InternalError(absl::StrCat(
          "background downgrade of page ", page,
          ": the protocol did not answer with one write-protection"));
    } else {
      st = pager_->resolver().WriteProtect(GpaOf(page), kPageSize);
    }
    if (st.ok()) downgrade_->OnDowngraded(page);
  }
  if (!st.ok()) Error(st);
}

}  // namespace ssihv::pager
