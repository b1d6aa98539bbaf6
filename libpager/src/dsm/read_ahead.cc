// DsmEngine::RequestAhead, RequestWriteRun and RefreshAfter: the run
// requests of remote read-ahead (read_ahead.h), of first-touch write runs
// and of read refresh (read_refresh.h).
#include "clock.h"
#include "dsm/engine.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/rdmax/send_batch.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

// Runs are asked for with no thread faulting on them (ctx.ahead), under the
// locks of every page they may name.
absl::Status DsmEngine::RequestRunAhead(dir::PageId first, uint32_t max,
                                        bool write, uint32_t* requested,
                                        bool refreshing) {
  dsm::RunGuard guard(*locks_, first, max);
  dir::Output& out = ThreadOutput();
  Ctx ctx;
  ctx.ahead = true;
  ctx.refreshing = refreshing;
  SSIHV_RETURN_IF_ERROR(node_->RequestRun(first, max, &out, requested, write));
  return Execute(out, ctx);
}

// The window is asked for as run grants (docs/PAGER.md, "Run grants"): the
// longest stretch of pages Invalid here with nothing pending, up to
// run_pages_, goes in one kReadRun, and the home answers the pages it holds
// with one kDataRun (one frame, one UFFDIO_COPY here, nothing back); pages
// valid here or already requested are stepped over. A lost page is
// reported when a thread really touches it. Only pages of the same
// (remote) home range: one home answers the whole burst.
void DsmEngine::RequestAhead(dir::PageId page) {
  const dir::NodeId home = space_->StaticHomeOf(page);
  if (home == self_ || failed_.load(std::memory_order_acquire)) return;
  const uint64_t range_end =
      space_->FirstPageOf(home) + space_->PageCountOf(home);
  const auto [from, to] = read_ahead_->OnRemoteRead(page, range_end);
  // The window's requests leave together (one sendmsg on TCP), so the home
  // reads them as one burst and answers them together too.
  rdmax::SendBatch batch;
  for (uint64_t q = from; q < to;) {
    const auto max =
        static_cast<uint32_t>(std::min<uint64_t>(to - q, run_pages_));
    uint32_t requested = 0;
    if (absl::Status st = RequestRunAhead(q, max, /*write=*/false, &requested);
        !st.ok()) {
      Error(st);
      return;
    }
    q += requested > 0 ? requested : 1;
  }
}

// First-touch write runs (docs/PAGER.md): a guest writing memory homed
// elsewhere for the first time (zeroing what it allocated) would take one
// round trip per page. After such a fault, the following pages of the same
// home's range, as far as they are Invalid here and idle, are asked for
// with one write run: the home grants those nobody has touched (they map
// here writable, zero-filled, with one ioctl) and refuses the rest. The walk
// faults again at the end of the run and the next one follows.
void DsmEngine::RequestWriteRun(dir::PageId page) {
  const dir::NodeId home = space_->StaticHomeOf(page);
  if (options_.write_run_pages == 0 || home == self_ ||
      failed_.load(std::memory_order_acquire)) {
    return;
  }
  const uint64_t range_end =
      space_->FirstPageOf(home) + space_->PageCountOf(home);
  if (page + 1 >= range_end) return;
  const auto max = static_cast<uint32_t>(std::min<uint64_t>(
      {range_end - page - 1, options_.write_run_pages, run_pages_}));
  uint32_t requested = 0;
  if (absl::Status st =
          RequestRunAhead(page + 1, max, /*write=*/true, &requested);
      !st.ok()) {
    Error(st);
  }
}

// Read refresh (dsm/read_refresh.h): every Shared copy an Inv took is
// reported to the policy; for a page it says is read after each write, a
// one-page run asks for the page again a little later (the deferral
// thread, a quarter of the writer's period after the Inv). The home serves
// it like any read: after the writer's hold when the writer is the home,
// by a forward to the writer when that is a third node. The answer is held
// here unmapped until a read takes it (HoldMarker). The home's own pages
// are not refreshed (RequestRun asks remote homes only).
void DsmEngine::RefreshAfter(const Ctx& ctx) {
  for (const dir::PageId page : ctx.invalidated) {
    const int64_t now = MonotonicNs();
    int64_t delay = 0;
    if (!refresh_->OnInvalidated(page, now, &delay)) continue;
    PushPageTask(Deferred::Kind::kRefresh, page, now + delay);
  }
}

void DsmEngine::RequestRefresh(dir::PageId page) {
  uint32_t requested = 0;
  if (!failed_.load(std::memory_order_acquire)) {
    if (absl::Status st = RequestRunAhead(page, 1, /*write=*/false, &requested,
                                          /*refreshing=*/true);
        !st.ok()) {
      Error(st);
      return;
    }
  }
  // Not sent: the page is valid here again or requested by a fault.
  if (requested == 0) refresh_->OnSettled(page);
}

}  // namespace ssihv::pager
