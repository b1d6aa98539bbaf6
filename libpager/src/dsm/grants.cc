// What a grant starts and ends here: the faults waiting for the page
// complete (CompleteWaiters, and the other ends of a request), the page's
// hold starts, and requests that would take it back meanwhile wait
// (Defer) until the deferral thread resubmits them (DeferLoop).
#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/strings/str_cat.h"
#include "clock.h"
#include "dsm/engine.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_priority.h"
#include "ssihv/directory/message.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

// ---- deferred messages ----------------------------------------------------

// The hold runs from the grant, not from the request: a page granted long
// ago has been used, and a request for it is served at once.
void DsmEngine::Defer(uint32_t from, const dir::Message& msg, Ctx& ctx) {
  const int64_t due = GrantTime(msg.page) + hold_->HoldNs(msg.page);
  if (due <= MonotonicNs()) {
    ctx.resubmit.emplace_back(from, msg);
    return;
  }
  deferred_count_.fetch_add(1, std::memory_order_relaxed);
  PushDeferred({due, from, msg});
}

void DsmEngine::PushDeferred(const Deferred& d) {
  {
    std::lock_guard<std::mutex> lock(defer_mu_);
    deferred_.push_back(d);
    std::push_heap(deferred_.begin(), deferred_.end(), std::greater<>());
  }
  defer_cv_.notify_one();
}

void DsmEngine::PushPageTask(Deferred::Kind kind, dir::PageId page,
                             int64_t due_ns) {
  Deferred d{due_ns, self_, dir::Message{}, kind};
  d.msg.page = page;
  PushDeferred(d);
}

// A page keeps the protocol's hold bit from its grant until a request
// would take it; a run asking for a page whose hold is over must not find it
// held, or it would ask for that page alone (a ReadReq deferred and taken
// back at once): every page this node wrote after another node had read it
// would travel one by one. Under the run's locks.
void DsmEngine::EndHoldsOver(const dir::Message& run) {
  const int64_t now = MonotonicNs();
  for (dir::PageId p = run.page; p < run.page + run.pages(); ++p) {
    if (GrantTime(p) + hold_->HoldNs(p) <= now) node_->EndHold(p);
  }
}

absl::Status DsmEngine::ResubmitExpired(Ctx& ctx) {
  while (!ctx.resubmit.empty()) {
    auto [from, msg] = ctx.resubmit.back();
    ctx.resubmit.pop_back();
    dir::Output out;  // not ThreadOutput(): the caller's is still in use
    Ctx inner = Ctx::ForMessage(msg.type);
    // Serving a lane request: what a resubmission answers (the request
    // itself, or this node's own forward of it) still takes the lane.
    inner.lane_from = ctx.lane_from;
    inner.lane_answered = ctx.lane_answered;
    SSIHV_RETURN_IF_ERROR(node_->Resubmit(from, msg, &out));
    SSIHV_RETURN_IF_ERROR(Execute(out, inner));
    ctx.lane_answered = ctx.lane_answered || inner.lane_answered;
    // The caller refreshes them once it released its locks.
    ctx.invalidated.insert(ctx.invalidated.end(), inner.invalidated.begin(),
                           inner.invalidated.end());
  }
  return absl::OkStatus();
}

void DsmEngine::DeferLoop() {
  // Holds are microseconds: do not let the default 50 us timer slack
  // stretch every wait.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  base::ApplyServiceNice(options_.service_nice);
  std::unique_lock<std::mutex> lock(defer_mu_);
  for (;;) {
    if (defer_stop_) return;
    if (deferred_.empty()) {
      defer_cv_.wait(lock);
      continue;
    }
    const int64_t wait = deferred_.front().due_ns - MonotonicNs();
    if (wait > 0) {
      defer_cv_.wait_for(lock, std::chrono::nanoseconds(wait));
      continue;
    }
    std::pop_heap(deferred_.begin(), deferred_.end(), std::greater<>());
    const Deferred d = deferred_.back();
    deferred_.pop_back();
    lock.unlock();
    if (d.kind == Deferred::Kind::kRefresh) {
      RequestRefresh(d.msg.page);
      lock.lock();
      continue;
    }
    if (d.kind == Deferred::Kind::kDowngrade) {
      DowngradeIdle(d.msg.page, d.due_ns);
      lock.lock();
      continue;
    }
    if (d.kind == Deferred::Kind::kLaneCheck) {
      CheckLaneLoss(d.from);
      lock.lock();
      continue;
    }
    absl::Status st;
    Ctx ctx = Ctx::ForMessage(d.msg.type);
    {
      dsm::PageGuard guard(*locks_, d.msg.page);
      dir::Output& out = ThreadOutput();
      st = node_->Resubmit(d.from, d.msg, &out);
      if (st.ok()) st = Execute(out, ctx);
    }
    if (st.ok()) RefreshAfter(ctx);
    if (!st.ok()) {
      Error(absl::Status(st.code(), absl::StrCat("resubmitting a deferred ",
                                                 dir::MsgTypeName(d.msg.type),
                                                 ": ", st.message())));
    }
    lock.lock();
  }
}

// ---- waiters ---------------------------------------------------------------

namespace {

// When this node first wanted a page now granted: the earliest fault on it
// (parked ones and the one being handled); 0 when none asked (a read-ahead
// or a run's other pages).
int64_t WantedNs(uint64_t gpa, const std::vector<Fault>* parked,
                 const Fault* current) {
  int64_t wanted = 0;
  auto consider = [&](const Fault& f) {
    if (f.gpa != gpa || f.start_ns <= 0) return;
    if (wanted == 0 || f.start_ns < wanted) wanted = f.start_ns;
  };
  if (parked != nullptr) {
    for (const Fault& f : *parked) consider(f);
  }
  if (current != nullptr) consider(*current);
  return wanted;
}

}  // namespace

void DsmEngine::CompleteWaiters(dir::PageId page, FaultKind kind, Ctx& ctx) {
  GrantTime(page) = MonotonicNs();
  Resolver& r = pager_->resolver();
  WaitMap& map = WaitersOf(page);
  auto it = map.find(page);
  // A held copy served (kLocalCopy: a read-ahead marker or a refreshed
  // copy) is a Shared grant like kRemoteRead.
  hold_->OnGranted(
      page, GrantTime(page),
      kind == FaultKind::kRemoteWrite || kind == FaultKind::kUpgrade,
      WantedNs(GpaOf(page), it != map.end() ? &it->second : nullptr,
               ctx.fault_done ? nullptr : ctx.fault));
  const bool waited =
      it != map.end() || (ctx.fault != nullptr && !ctx.fault_done);
  if (it != map.end()) {
    for (const Fault& f : it->second) r.Complete(f, kind);
    map.erase(it);
  }
  if (ctx.fault != nullptr && !ctx.fault_done) {
    r.Complete(*ctx.fault, kind);
    ctx.fault_done = true;
  }
  if (kind != FaultKind::kRemoteWrite) refresh_->OnMapped(page, waited);
}

// The request the parked threads joined ended without a grant (a refused
// write run): they retry their access, fault again and ask on their own.
void DsmEngine::RetryWaiters(dir::PageId page) {
  WaitMap& map = WaitersOf(page);
  if (auto it = map.find(page); it != map.end()) {
    map.erase(it);
    (void)pager_->resolver().Wake(GpaOf(page), kPageSize);
  }
}

void DsmEngine::FailWaiters(dir::PageId page, const absl::Status& st,
                            Ctx& ctx) {
  Resolver& r = pager_->resolver();
  WaitMap& map = WaitersOf(page);
  if (auto it = map.find(page); it != map.end()) {
    for (const Fault& f : it->second) r.Fail(f, st);
    map.erase(it);
  }
  if (ctx.fault != nullptr && !ctx.fault_done) {
    r.Fail(*ctx.fault, st);
    ctx.fault_done = true;
  }
}

}  // namespace ssihv::pager
