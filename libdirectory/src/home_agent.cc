// The home agent's failure-free transitions: one transaction per page at a
// time, later requests wait in round-robin order (docs/PROTOCOL.md).
#include "ssihv/directory/home_agent.h"

#include <cassert>

#include "absl/strings/str_cat.h"
#include "home_entry.h"

namespace ssihv::directory {

using namespace internal;  // NOLINT: the entry helpers

namespace {

absl::Status HomeViolation(const Message& msg, NodeId from, const char* why) {
  return absl::FailedPreconditionError(
      absl::StrCat("home agent: ", MsgTypeName(msg.type), " for page ",
                   msg.page, " from node ", from, ": ", why));
}

}  // namespace

HomeAgent::HomeAgent(const PageSpace& space, NodeId self, Options options)
    : space_(space), self_(self), options_(options) {
  Entry initial;
  initial.copies = Bit(self);
  SetState(initial, DirState::kModified);
  dir_[self].assign(space.PageCountOf(self), initial);
  if (options.per_page_stats) {
    page_stats_[self].resize(space.PageCountOf(self));
  }
}

HomeAgent::Entry* HomeAgent::Find(PageId page) {
  NodeId r = space_.StaticHomeOf(page);
  if (dir_[r].empty()) return nullptr;
  return &dir_[r][page - space_.FirstPageOf(r)];
}

const HomeAgent::Entry* HomeAgent::Find(PageId page) const {
  return const_cast<HomeAgent*>(this)->Find(page);
}

PageStats* HomeAgent::StatsFor(PageId page) {
  NodeId r = space_.StaticHomeOf(page);
  if (page_stats_[r].empty()) return nullptr;
  return &page_stats_[r][page - space_.FirstPageOf(r)];
}

const PageStats* HomeAgent::PageStatsOf(PageId page) const {
  return const_cast<HomeAgent*>(this)->StatsFor(page);
}

DirView HomeAgent::Inspect(PageId page) const {
  DirView v;
  const Entry* e = Find(page);
  if (e == nullptr) return v;
  v.state = StateOf(*e);
  v.copies = e->copies;
  v.phase = PhaseOf(*e);
  v.write_txn = IsWrite(*e);
  v.pulled = IsPulled(*e);
  v.requester = e->requester;
  v.source = e->source;
  v.read_waiters = e->read_waiters;
  v.write_waiters = e->write_waiters;
  v.version = e->version;
  return v;
}

absl::Status HomeAgent::OnMessage(Env& env, NodeId from, const Message& msg) {
  Entry* e = Find(msg.page);
  if (e == nullptr || env.members.HomeOf(msg.page) != self_) {
    return HomeViolation(msg, from, "page is not homed here");
  }
  if (StateOf(*e) == DirState::kRecovering) {
    switch (msg.type) {
      case MsgType::kReadReq:
        e->read_waiters |= Bit(from);
        break;
      case MsgType::kWriteReq:
        e->write_waiters |= Bit(from);
        break;
      case MsgType::kDone:
        return OnDoneWhileRecovering(env, from, msg, *e);
      // The requester's report, not this, decides.
      case MsgType::kStalled:
        break;
      default:
        return HomeViolation(msg, from, "page is being recovered");
    }
    return absl::OkStatus();
  }
  switch (msg.type) {
    case MsgType::kReadReq:
    case MsgType::kWriteReq:
      return OnRequest(env, from, msg, *e);
    case MsgType::kInvAck:
      return OnInvAck(env, from, msg, *e);
    case MsgType::kDone:
      return OnDone(env, from, msg, *e);
    case MsgType::kProbeAck:
      return OnProbeAck(env, from, msg, *e);
    case MsgType::kStalled:
      return OnStalled(env, from, msg, *e);
    default:
      return HomeViolation(msg, from, "not a home agent message");
  }
}

absl::Status HomeAgent::OnRequest(Env& env, NodeId from, const Message& msg,
                                  Entry& e) {
  bool write = msg.type == MsgType::kWriteReq;
  if (StateOf(e) == DirState::kLost) {
    env.Send(from, MakeMessage(MsgType::kLost, msg.page));
    return absl::OkStatus();
  }
  if (PhaseOf(e) != TxnPhase::kIdle) {
    // Serialised: one transaction per page; the waiter sets are served
    // round-robin, so each waits for at most N-1 transactions.
    (write ? e.write_waiters : e.read_waiters) |= Bit(from);
    env.stats.requests_queued.Add();
    return absl::OkStatus();
  }
  return write ? StartWrite(env, msg.page, e, from)
               : StartRead(env, msg.page, e, from, /*no_pull=*/false);
}

NodeId HomeAgent::PickSource(const Env& env, NodeMask copies) const {
  assert(copies != 0);  // Lowest(0) is undefined
  return Lowest(copies);
}

// A transaction of `req` starts on `page`, counted, in `phase` (a run
// grant's ends as its kDataRun leaves: EndRun). Returns the page's
// counters, if kept.
PageStats* HomeAgent::BeginTxn(Env& env, PageId page, Entry& e, NodeId req,
                               bool write, bool run, TxnPhase phase) {
  (write ? env.stats.write_txns : env.stats.read_txns).Add();
  PageStats* s = StatsFor(page);
  if (s != nullptr) ++(write ? s->writes : s->reads);
  SetFlag(e, kWriteBit, write);
  SetFlag(e, kPulledBit, false);
  SetFlag(e, kRunBit, run);
  SetPhase(e, phase);
  e.requester = static_cast<uint8_t>(req);
  return s;
}

absl::Status HomeAgent::StartRead(Env& env, PageId page, Entry& e, NodeId req,
                                  bool no_pull) {
  if (e.copies & Bit(req)) {
    return absl::FailedPreconditionError(
        absl::StrCat("home agent: read request for page ", page, " from node ",
                     req, " which already holds a copy"));
  }
  if (e.copies == 0) {
    // Only deaths can get here (every path that empties `copies` loses the
    // page); there is nothing to read from.
    Lose(env, page, e);
    return absl::OkStatus();
  }
  BeginTxn(env, page, e, req, /*write=*/false, /*run=*/false,
           TxnPhase::kAwaitDone);
  NodeId src;
  if (e.copies & Bit(self_)) {
    src = self_;  // served by this node's own agent: no extra hop
  } else {
    src = PickSource(env, e.copies);
    if (options_.allow_pull && !no_pull && StateOf(e) == DirState::kShared) {
      // The sharer's copy is read-only and stays so until this
      // transaction ends (kDone), so it can be read one-sided.
      e.source = static_cast<uint8_t>(src);
      SetFlag(e, kPulledBit, true);
      env.stats.pull_grants.Add();
      env.Send(req, MakeMessage(MsgType::kPullGrant, page, 0, src, e.version));
      return absl::OkStatus();
    }
  }
  e.source = static_cast<uint8_t>(src);
  env.Send(src, MakeMessage(MsgType::kFwdRead, page, 0, req, e.version));
  if (options_.bug == TestBug::kEarlyUnblock) EndTxn(env, page, e);
  return absl::OkStatus();
}

absl::Status HomeAgent::StartWrite(Env& env, PageId page, Entry& e,
                                   NodeId req) {
  bool has_copy = e.copies & Bit(req);
  if (has_copy && StateOf(e) == DirState::kModified) {
    return absl::FailedPreconditionError(absl::StrCat(
        "home agent: write request for page ", page, " from its owner ", req));
  }
  if (e.copies == 0) {
    Lose(env, page, e);  // as in StartRead
    return absl::OkStatus();
  }
  PageStats* stats = BeginTxn(env, page, e, req, /*write=*/true,
                              /*run=*/false, TxnPhase::kAcks);
  // The data source (for a miss) is invalidated last, by kTransfer, so a
  // valid copy survives until the new owner has it. Prefer this node's
  // own copy: its transfer costs no extra hop.
  NodeId src = kNoNode;
  if (!has_copy) {
    src = (e.copies & Bit(self_)) ? self_ : PickSource(env, e.copies);
  }
  e.source = static_cast<uint8_t>(src);
  NodeMask to_inv = PendingAcks(e);
  if (options_.bug == TestBug::kSkipInvalidation && to_inv != 0) {
    // Deliberate bug: forget the highest sharer as if it had acked.
    NodeMask skipped = Bit(63 - __builtin_clzll(to_inv));
    to_inv &= ~skipped;
    e.copies &= ~skipped;
  }
  for (NodeMask m = to_inv; m != 0; m &= m - 1) {
    env.Send(Lowest(m), MakeMessage(MsgType::kInv, page));
    env.stats.invalidations.Add();
    if (stats != nullptr) ++stats->invalidations;
  }
  if (to_inv == 0) FinishAcks(env, page, e);
  return absl::OkStatus();
}

absl::Status HomeAgent::OnInvAck(Env& env, NodeId from, const Message& msg,
                                 Entry& e) {
  TxnPhase phase = PhaseOf(e);
  if ((phase != TxnPhase::kAcks && phase != TxnPhase::kAbortAcks) ||
      !(PendingAcks(e) & Bit(from))) {
    return HomeViolation(msg, from, "unexpected invalidation ack");
  }
  e.copies &= ~Bit(from);
  if (PendingAcks(e) == 0) {
    if (phase == TxnPhase::kAcks) {
      FinishAcks(env, msg.page, e);
    } else {
      Settle(env, msg.page, e);
    }
  }
  return absl::OkStatus();
}

void HomeAgent::FinishAcks(Env& env, PageId page, Entry& e) {
  if (e.source == kLostSource) {
    // The designated source died and every other copy is now gone.
    Lose(env, page, e);
    return;
  }
  ++e.version;
  SetPhase(e, TxnPhase::kAwaitDone);
  if (e.source == kNoNode) {
    // The grant is this node's message: to a remote requester it ends the
    // transaction (no kDone; FIFO keeps anything sent after it behind it,
    // as for a kData the home's agent sends: NodeAgent::ServedByHome).
    const bool remote = e.requester != self_;
    env.Send(e.requester,
             MakeMessage(MsgType::kGrant, page, remote ? kFlagNoDone : 0,
                         kNoNode, e.version));
    if (remote && options_.bug != TestBug::kEarlyUnblock) {
      EndTxn(env, page, e);
      return;
    }
  } else {
    env.stats.ownership_transfers.Add();
    if (PageStats* s = StatsFor(page)) ++s->transfers;
    env.Send(e.source,
             MakeMessage(MsgType::kTransfer, page, 0, e.requester, e.version));
  }
  if (options_.bug == TestBug::kEarlyUnblock) EndTxn(env, page, e);
}

absl::Status HomeAgent::OnDone(Env& env, NodeId from, const Message& msg,
                               Entry& e) {
  TxnPhase phase = PhaseOf(e);
  // Deliberate bug: transactions already ended when the grant went out.
  if (options_.bug == TestBug::kEarlyUnblock) return absl::OkStatus();
  if (msg.flags & kFlagBySource) {
    // This node's own agent sent the kData (kFlagNoDone) for a remote
    // requester (NodeAgent::ServedByHome).
    if (from != self_ || phase != TxnPhase::kAwaitDone || e.source != self_ ||
        e.requester == self_ || IsPulled(e)) {
      return HomeViolation(msg, from, "unexpected done by the source");
    }
  } else if ((phase != TxnPhase::kAwaitDone &&
              phase != TxnPhase::kAwaitVerdict) ||
             from != e.requester) {
    return HomeViolation(msg, from, "unexpected done");
  } else if (e.source == self_ && from != self_ && !IsRun(e)) {
    return HomeViolation(msg, from, "done after the home's own kData");
  }
  if (IsRun(e)) return HomeViolation(msg, from, "done for a run grant");
  if (msg.flags & kFlagFailed) {
    if (IsWrite(e) || !IsPulled(e)) {
      return HomeViolation(msg, from, "failed done without a pull");
    }
    // The fetch failed (its source died, or the transport gave up): serve
    // the read again by message from a copy that is still valid.
    if (e.copies == 0) {
      Lose(env, msg.page, e);
      return absl::OkStatus();
    }
    return StartRead(env, msg.page, e, from, /*no_pull=*/true);
  }
  EndTxn(env, msg.page, e);
  return absl::OkStatus();
}

void HomeAgent::EndTxn(Env& env, PageId page, Entry& e) {
  if (IsWrite(e)) {
    e.copies = Bit(e.requester);
    SetState(e, DirState::kModified);
  } else {
    // A Modified owner that served the read is now a sharer too.
    e.copies |= Bit(e.requester);
    SetState(e, DirState::kShared);
  }
  SetPhase(e, TxnPhase::kIdle);
  SetFlag(e, kPulledBit, false);
  SetFlag(e, kRunBit, false);
  e.requester = kNoNode;
  e.source = kNoNode;
  ServeNext(env, page, e);
}

bool HomeAgent::CanGrantRun(PageId page, NodeId req) const {
  const Entry* e = Find(page);
  if (e == nullptr || req >= kMaxNodes) return false;
  const DirState state = StateOf(*e);
  return (state == DirState::kShared || state == DirState::kModified) &&
         PhaseOf(*e) == TxnPhase::kIdle &&
         (e->read_waiters | e->write_waiters) == 0 &&
         (e->copies & Bit(self_)) != 0 && (e->copies & Bit(req)) == 0;
}

// StartRead's transaction with this node as the source, except that the
// bytes leave in the run's kDataRun instead of a kData per page, which ends
// it (EndRun; kRunBit marks it until then).
void HomeAgent::StartRunRead(Env& env, PageId page, NodeId req) {
  Entry& e = *Find(page);
  BeginTxn(env, page, e, req, /*write=*/false, /*run=*/true,
           TxnPhase::kAwaitDone);
  e.source = static_cast<uint8_t>(self_);
  if (options_.bug == TestBug::kEarlyUnblock) EndTxn(env, page, e);
}

// Both need the page Modified at this node alone, idle, nobody waiting.
bool HomeAgent::CanGrantWriteRun(PageId page, NodeId req) const {
  return req < kMaxNodes && req != self_ && CanDowngrade(page);
}

bool HomeAgent::CanDowngrade(PageId page) const {
  const Entry* e = Find(page);
  return e != nullptr && StateOf(*e) == DirState::kModified &&
         e->copies == Bit(self_) && PhaseOf(*e) == TxnPhase::kIdle &&
         (e->read_waiters | e->write_waiters) == 0;
}

void HomeAgent::Downgrade(PageId page) {
  SetState(*Find(page), DirState::kShared);
}

bool HomeAgent::Rebuilding(PageId page) const {
  const Entry* e = Find(page);
  return e != nullptr && StateOf(*e) == DirState::kRecovering;
}

// StartWrite's transaction of a page Modified here alone, from its ack-free
// end: the source is this node's copy (which its agent gives up at once),
// and the run's kDataRun ends it (EndRun); a death of `req` after that
// loses the page, as for any dead owner.
void HomeAgent::StartRunWrite(Env& env, PageId page, NodeId req) {
  Entry& e = *Find(page);
  BeginTxn(env, page, e, req, /*write=*/true, /*run=*/true,
           TxnPhase::kAwaitDone);
  e.source = static_cast<uint8_t>(self_);
  ++e.version;
  if (options_.bug == TestBug::kEarlyUnblock) EndTxn(env, page, e);
}

absl::Status HomeAgent::OnDoneRun(Env& env, NodeId from, const Message& msg) {
  const PageId first = msg.page;
  const uint32_t count = msg.pages();
  // Deliberate bug: transactions already ended when the grant went out.
  if (options_.bug == TestBug::kEarlyUnblock) return absl::OkStatus();
  for (PageId p = first; p < first + count; ++p) {
    const Entry* e = Find(p);
    if (e == nullptr || env.members.HomeOf(p) != self_) {
      return HomeViolation(msg, from, "run page is not homed here");
    }
    if (PhaseOf(*e) != TxnPhase::kAwaitDone || !IsRun(*e) ||
        from != e->requester) {
      return HomeViolation(MakeMessage(msg.type, p), from,
                           "unexpected run done");
    }
  }
  for (PageId p = first; p < first + count; ++p) EndTxn(env, p, *Find(p));
  return absl::OkStatus();
}

// The kDataRun is this node's own message, like a kData from its copy
// (NodeAgent::ServedByHome): whatever it sends the requester later follows
// it on the same FIFO channel, so the run's transactions end as it leaves.
void HomeAgent::EndRun(Env& env, NodeId req, PageId first, uint32_t count) {
  // Deliberate bug: transactions already ended when the grant went out.
  if (options_.bug == TestBug::kEarlyUnblock) return;
  for (PageId p = first; p < first + count; ++p) {
    Entry& e = *Find(p);
    assert(PhaseOf(e) == TxnPhase::kAwaitDone && IsRun(e) &&
           e.requester == req);
    (void)req;
    EndTxn(env, p, e);
  }
}

void HomeAgent::ServeNext(Env& env, PageId page, Entry& e) {
  while (PhaseOf(e) == TxnPhase::kIdle &&
         (e.read_waiters | e.write_waiters) != 0) {
    if (StateOf(e) == DirState::kLost) {
      Lose(env, page, e);  // answers every waiter
      return;
    }
    NodeMask waiting = e.read_waiters | e.write_waiters;
    // Round-robin: the first waiter after the one served last.
    NodeMask after = e.cursor >= 63 ? 0 : waiting & ~((Bit(e.cursor) << 1) - 1);
    NodeId next = Lowest(after != 0 ? after : waiting);
    e.cursor = static_cast<uint8_t>(next);
    absl::Status s;
    if (e.read_waiters & Bit(next)) {
      e.read_waiters &= ~Bit(next);
      s = StartRead(env, page, e, next, /*no_pull=*/false);
    } else {
      e.write_waiters &= ~Bit(next);
      s = StartWrite(env, page, e, next);
    }
    // Waiters were checked when they arrived and the entry is idle and
    // consistent, so a start cannot fail; keep going if it somehow did.
    (void)s;
  }
}

void HomeAgent::Lose(Env& env, PageId page, Entry& e) {
  bool was_lost = StateOf(e) == DirState::kLost;
  if (PhaseOf(e) != TxnPhase::kIdle && e.requester < kMaxNodes) {
    env.Send(e.requester, MakeMessage(MsgType::kLost, page));
  }
  for (NodeMask m = e.read_waiters | e.write_waiters; m != 0; m &= m - 1) {
    env.Send(Lowest(m), MakeMessage(MsgType::kLost, page));
  }
  e.read_waiters = e.write_waiters = 0;
  e.copies = 0;
  e.bits = 0;
  SetState(e, DirState::kLost);
  e.requester = kNoNode;
  e.source = kNoNode;
  if (!was_lost) {
    env.stats.pages_lost.Add();
    Effect lost;
    lost.type = EffectType::kPageLost;
    lost.page = page;
    env.out.effects.push_back(lost);
  }
}

void HomeAgent::AppendState(std::string* out) const {
  for (NodeId r = 0; r < kMaxNodes; ++r) {
    if (dir_[r].empty()) continue;
    out->push_back(static_cast<char>(r));
    out->append(reinterpret_cast<const char*>(dir_[r].data()),
                dir_[r].size() * sizeof(Entry));
  }
  out->append(reinterpret_cast<const char*>(&recovering_), sizeof(recovering_));
  out->append(reinterpret_cast<const char*>(reported_.data()),
              sizeof(reported_));
}

}  // namespace ssihv::directory
