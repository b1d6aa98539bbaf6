// DsmEngine::RequestAhead: the requests of remote read-ahead (read_ahead.h).
#include "dsm/engine.h"
#include "ssihv/rdmax/send_batch.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

// Each page ahead is an ordinary read fault without a faulting thread: the
// node agent sends a ReadReq if the page is Invalid with nothing pending,
// and the Data that answers it is mapped read-only like any grant. Pages
// valid here or already requested are left alone; a lost one is reported
// when a thread really touches it. Only pages of the same (remote) home
// range: one home answers the whole burst.
void DsmEngine::RequestAhead(dir::PageId page) {
  const dir::NodeId home = space_->StaticHomeOf(page);
  if (home == self_ || failed_.load(std::memory_order_acquire)) return;
  const uint64_t range_end =
      space_->FirstPageOf(home) + space_->PageCountOf(home);
  const auto [from, to] = read_ahead_->OnRemoteRead(page, range_end);
  // The window's requests leave together (one sendmsg on TCP), so the home
  // reads them as one burst and answers them together too.
  rdmax::SendBatch batch;
  for (uint64_t q = from; q < to; ++q) {
    dsm::PageGuard guard(*locks_, q);
    dir::Output& out = ThreadOutput();
    Ctx ctx;
    ctx.ahead = true;
    absl::Status st = node_->OnFault(q, dir::Access::kRead, &out);
    if (st.ok()) st = Execute(out, ctx);
    if (!st.ok()) {
      Error(st);
      return;
    }
  }
}

}  // namespace ssihv::pager
