// The home agent's transitions after a node death: resolving transactions
// that involved the dead node, and rebuilding the directory of ranges whose
// home died from the survivors' reports (docs/PROTOCOL.md, "Failures").
#include "absl/strings/str_cat.h"
#include "home_entry.h"
#include "ssihv/directory/home_agent.h"

namespace ssihv::directory {

using namespace internal;  // NOLINT: the entry helpers

namespace {

absl::Status RecoveryViolation(const Message& msg, NodeId from,
                               const char* why) {
  return absl::FailedPreconditionError(
      absl::StrCat("home agent: ", MsgTypeName(msg.type), " for page ",
                   msg.page, " from node ", from, ": ", why));
}

}  // namespace

absl::Status HomeAgent::OnProbeAck(Env& env, NodeId from, const Message& msg,
                                   Entry& e) {
  if (PhaseOf(e) != TxnPhase::kAwaitProbe || from != e.source) {
    return RecoveryViolation(msg, from, "unexpected probe ack");
  }
  // The source has processed whatever this home sent it before the probe
  // (FIFO), so its answer is the truth about its copy.
  auto state = static_cast<PageState>(msg.flags & local_state::kStateMask);
  if (state == PageState::kModified) {
    e.copies = Bit(from);
    SetState(e, DirState::kModified);
  } else if (state == PageState::kShared) {
    if (IsWrite(e) || StateOf(e) == DirState::kModified) e.copies = Bit(from);
    SetState(e, DirState::kShared);
  } else {
    e.copies &= ~Bit(from);
  }
  SetPhase(e, TxnPhase::kIdle);
  e.requester = kNoNode;
  e.source = kNoNode;
  if (e.copies == 0) {
    Lose(env, msg.page, e);
  } else {
    ServeNext(env, msg.page, e);
  }
  return absl::OkStatus();
}

absl::Status HomeAgent::OnStalled(Env& env, NodeId from, const Message& msg,
                                  Entry& e) {
  // Only a transaction whose source died waits for this verdict, and only
  // a kStalled sent when the requester cut off that source is one (a
  // kStalled about another death says nothing about this source). Anywhere
  // else the request is queued or its answer is still on its way.
  if (PhaseOf(e) != TxnPhase::kAwaitVerdict || from != e.requester ||
      msg.node != e.source) {
    return absl::OkStatus();
  }
  // The page never reached the requester and never will (it has cut off
  // the dead source). A write's source held the last copy.
  if (IsWrite(e) || e.copies == 0) {
    Lose(env, msg.page, e);
    return absl::OkStatus();
  }
  return StartRead(env, msg.page, e, from, /*no_pull=*/false);
}

void HomeAgent::Settle(Env& env, PageId page, Entry& e) {
  // The requester of a write died while its invalidations were out: keep
  // the copy that was to be transferred, if any.
  SetPhase(e, TxnPhase::kIdle);
  e.requester = kNoNode;
  if (e.source < kMaxNodes) e.copies = Bit(e.source);
  e.source = kNoNode;
  if (e.copies == 0) {
    Lose(env, page, e);
  } else {
    ServeNext(env, page, e);
  }
}

void HomeAgent::ApplyDeath(Env& env, PageId page, Entry& e, NodeId dead) {
  NodeMask d = Bit(dead);
  e.read_waiters &= ~d;
  e.write_waiters &= ~d;
  if (StateOf(e) == DirState::kLost) return;
  TxnPhase phase = PhaseOf(e);
  bool was_copy = e.copies & d;
  e.copies &= ~d;
  switch (phase) {
    case TxnPhase::kIdle:
      if (was_copy && e.copies == 0) Lose(env, page, e);
      return;
    case TxnPhase::kAcks:
    case TxnPhase::kAbortAcks:
      if (e.requester == dead) SetPhase(e, TxnPhase::kAbortAcks);
      if (e.source == dead) e.source = kLostSource;
      if (PendingAcks(e) == 0) {
        if (PhaseOf(e) == TxnPhase::kAcks) {
          FinishAcks(env, page, e);
        } else {
          Settle(env, page, e);
        }
      }
      return;
    case TxnPhase::kAwaitDone:
      if (e.requester == dead) {
        if (!IsWrite(e) && IsPulled(e)) {
          // The pull source's copy was never touched (if it still lives).
          EndAborted(env, page, e);
        } else if (e.source == kNoNode) {
          Lose(env, page, e);  // upgrade granted to the dead node
        } else {
          // Did the source give its copy away? Ask it (FIFO after the
          // kFwdRead/kTransfer).
          SetPhase(e, TxnPhase::kAwaitProbe);
          env.Send(e.source, MakeMessage(MsgType::kProbe, page));
        }
      } else if (e.source == dead && !IsPulled(e)) {
        // Maybe the page reached the requester, maybe not: it will say.
        SetPhase(e, TxnPhase::kAwaitVerdict);
      }
      return;
    case TxnPhase::kAwaitVerdict:
      if (e.requester == dead) {
        if (IsWrite(e)) {
          Lose(env, page, e);
        } else {
          EndAborted(env, page, e);
        }
      }
      return;
    case TxnPhase::kAwaitProbe:
      if (e.source == dead) {
        if (IsWrite(e)) {
          Lose(env, page, e);
        } else {
          EndAborted(env, page, e);
        }
      }
      return;
  }
}

void HomeAgent::EndAborted(Env& env, PageId page, Entry& e) {
  // A transaction ended by deaths without its grant: the copies stay as
  // they are, and if none is left (a pull whose source and requester both
  // died), the page is gone.
  SetPhase(e, TxnPhase::kIdle);
  SetFlag(e, kPulledBit, false);
  e.requester = e.source = kNoNode;
  if (e.copies == 0) {
    Lose(env, page, e);
  } else {
    ServeNext(env, page, e);
  }
}

void HomeAgent::ApplyDeathRecovering(Entry& e, NodeId dead) {
  NodeMask d = Bit(dead);
  e.copies &= ~d;
  e.read_waiters &= ~d;
  e.write_waiters &= ~d;
  if (e.requester == dead) e.requester = kNoNode;
  if (e.source == dead) e.source = kNoNode;
}

void HomeAgent::OnNodeDead(Env& env, NodeId dead, NodeMask adopted) {
  for (NodeId r = 0; r < kMaxNodes; ++r) {
    if (dir_[r].empty()) continue;
    PageId first = space_.FirstPageOf(r);
    std::vector<Entry>& entries = dir_[r];
    if (recovering_ & Bit(r)) {
      for (Entry& e : entries) ApplyDeathRecovering(e, dead);
    } else {
      for (PageId i = 0; i < entries.size(); ++i) {
        ApplyDeath(env, first + i, entries[i], dead);
      }
    }
  }
  for (NodeMask m = adopted; m != 0; m &= m - 1) {
    NodeId r = Lowest(m);
    // While recovering: copies and waiters accumulate from reports, source
    // holds a reported owner, requester a reported fetch in progress, the
    // write bit a reported loss.
    Entry recovering;
    SetState(recovering, DirState::kRecovering);
    dir_[r].assign(space_.PageCountOf(r), recovering);
    if (options_.per_page_stats)
      page_stats_[r].assign(space_.PageCountOf(r), {});
    recovering_ |= Bit(r);
    reported_[r] = 0;
  }
  for (NodeMask m = recovering_; m != 0; m &= m - 1) {
    MaybeFinishRecovery(env, Lowest(m));
  }
}

absl::Status HomeAgent::OnReport(Env& env, NodeId from,
                                 const ReportChunk& chunk) {
  NodeId r = chunk.range;
  if (!(recovering_ & Bit(r)) || env.members.HomeOfRange(r) != self_ ||
      (reported_[r] & Bit(from))) {
    return absl::OkStatus();  // stale: addressed to an earlier view
  }
  PageId count = space_.PageCountOf(r);
  for (const ReportEntry& re : chunk.entries) {
    if (re.offset >= count || !local_state::Valid(re.state)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "home agent: bad report entry from node ", from, " for range ", r));
    }
    Entry& e = dir_[r][re.offset];
    auto state = static_cast<PageState>(re.state & local_state::kStateMask);
    uint8_t pending = re.state & local_state::kPendingMask;
    if (state == PageState::kShared || state == PageState::kModified) {
      e.copies |= Bit(from);
    }
    if (state == PageState::kModified) {
      if (e.source != kNoNode) {
        return absl::InternalError(
            absl::StrCat("home agent: two owners of page ",
                         space_.FirstPageOf(r) + re.offset, " reported (nodes ",
                         e.source, " and ", from, ")"));
      }
      e.source = static_cast<uint8_t>(from);
    }
    if (state == PageState::kLost) SetFlag(e, kWriteBit, true);
    if (re.state & local_state::kPulling) {
      e.requester = static_cast<uint8_t>(from);
    } else if (pending == local_state::kPendingRead) {
      e.read_waiters |= Bit(from);
    } else if (pending == local_state::kPendingWrite) {
      e.write_waiters |= Bit(from);
    }
  }
  if (chunk.last) {
    reported_[r] |= Bit(from);
    MaybeFinishRecovery(env, r);
  }
  return absl::OkStatus();
}

absl::Status HomeAgent::OnDoneWhileRecovering(Env& env, NodeId from,
                                              const Message& msg, Entry& e) {
  // Only a fetch this node reported as in progress ends here; any earlier
  // kDone is already reflected in the sender's report (FIFO).
  if (e.requester != from) return absl::OkStatus();
  e.requester = kNoNode;
  if (msg.flags & kFlagFailed) {
    e.read_waiters |= Bit(from);
  } else {
    e.copies |= Bit(from);
  }
  return absl::OkStatus();
}

void HomeAgent::MaybeFinishRecovery(Env& env, NodeId r) {
  if ((env.members.live() & ~reported_[r]) == 0) FinishRecovery(env, r);
}

void HomeAgent::FinishRecovery(Env& env, NodeId r) {
  recovering_ &= ~Bit(r);
  PageId first = space_.FirstPageOf(r);
  std::vector<Entry>& entries = dir_[r];
  for (PageId i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    bool lost = IsWrite(e);
    NodeId owner = e.source;
    NodeId fetcher = e.requester;
    e.bits = 0;
    e.source = kNoNode;
    e.requester = kNoNode;
    if (lost || (e.copies == 0 && fetcher == kNoNode)) {
      Lose(env, first + i, e);
      continue;
    }
    SetState(e, owner != kNoNode ? DirState::kModified : DirState::kShared);
    if (fetcher != kNoNode) {
      // Resume the read whose fetch the old home granted.
      SetPhase(e, TxnPhase::kAwaitDone);
      SetFlag(e, kPulledBit, true);
      e.requester = static_cast<uint8_t>(fetcher);
      continue;
    }
    ServeNext(env, first + i, e);
  }
}

}  // namespace ssihv::directory
