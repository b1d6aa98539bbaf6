// The node agent's transitions. Each handler touches one page byte.
#include "ssihv/directory/node_agent.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ssihv::directory {
namespace {

PageState StateBits(uint8_t b) {
  return static_cast<PageState>(b & local_state::kStateMask);
}

void AddAction(Env& env, EffectType type, PageId page) {
  Effect e;
  e.type = type;
  e.page = page;
  env.out.effects.push_back(e);
}

}  // namespace

NodeAgent::NodeAgent(const PageSpace& space, NodeId self, TestBug bug)
    : pages_(space.num_pages(), 0), bug_(bug) {
  PageId first = space.FirstPageOf(self);
  PageId end = first + space.PageCountOf(self);
  uint8_t initial = static_cast<uint8_t>(PageState::kModified) | kPristineBit;
  for (PageId p = first; p < end; ++p) pages_[p] = initial;
}

void NodeAgent::Set(PageId page, PageState state, uint8_t pending) {
  uint8_t& b = pages_[page];
  b = static_cast<uint8_t>((b & kPristineBit) | static_cast<uint8_t>(state) |
                           pending);
}

absl::Status NodeAgent::Violation(const Message& msg, NodeId from,
                                  const char* why) const {
  uint8_t b = pages_[msg.page];
  return absl::FailedPreconditionError(absl::StrCat(
      "node agent: ", MsgTypeName(msg.type), " for page ", msg.page,
      " from node ", from, ": ", why, " (local state 0x", absl::Hex(b), ")"));
}

absl::Status NodeAgent::OnFault(Env& env, PageId page, Access access) {
  uint8_t& b = pages_[page];
  PageState state = StateBits(b);
  bool write = access == Access::kWrite;
  if (state == PageState::kLost) {
    env.stats.faults_lost.Add();
    AddAction(env, EffectType::kPageLost, page);
    return absl::OkStatus();
  }
  if (state == PageState::kModified ||
      (state == PageState::kShared && !write)) {
    Effect e;
    e.type = EffectType::kMapLocal;
    e.page = page;
    e.writable = state == PageState::kModified;
    // Once mapped writable the guest may write without faulting again.
    if (e.writable) b &= static_cast<uint8_t>(~kPristineBit);
    env.out.effects.push_back(e);
    env.stats.faults_local.Add();
    return absl::OkStatus();
  }
  if (b & kPendingBits) {
    // Join the request in flight; the access is retried when it completes
    // (a write fault behind a pending read then upgrades).
    env.stats.faults_joined.Add();
    AddAction(env, EffectType::kWait, page);
    return absl::OkStatus();
  }
  NodeId home = env.members.HomeOf(page);
  if (!write) {
    env.stats.faults_read_miss.Add();
    Set(page, state, kPendRead);
    env.Send(home, MakeMessage(MsgType::kReadReq, page));
  } else {
    bool upgrade = state == PageState::kShared;
    (upgrade ? env.stats.faults_upgrade : env.stats.faults_write_miss).Add();
    Set(page, state, kPendWrite);
    env.Send(home,
             MakeMessage(MsgType::kWriteReq, page, upgrade ? kFlagUpgrade : 0));
  }
  AddAction(env, EffectType::kWait, page);
  return absl::OkStatus();
}

absl::Status NodeAgent::OnMessage(Env& env, NodeId from, const Message& msg) {
  // Everything but kData comes from the page's home: the directory is the
  // only node that may tell this node to change its copy.
  if (msg.type != MsgType::kData && from != env.members.HomeOf(msg.page)) {
    return Violation(msg, from, "sender is not the page's home");
  }
  switch (msg.type) {
    case MsgType::kFwdRead:
      return OnFwdRead(env, from, msg);
    case MsgType::kTransfer:
      return OnTransfer(env, from, msg);
    case MsgType::kInv:
      return OnInv(env, from, msg);
    case MsgType::kData:
      return OnData(env, from, msg);
    case MsgType::kDataRun:
      return OnDataRun(env, from, msg);
    case MsgType::kGrant:
      return OnGrant(env, from, msg);
    case MsgType::kPullGrant:
      return OnPullGrant(env, from, msg);
    case MsgType::kLost:
      return OnLost(env, from, msg);
    case MsgType::kProbe:
      env.Send(from, MakeMessage(MsgType::kProbeAck, msg.page,
                                 LocalStateByte(msg.page)));
      return absl::OkStatus();
    default:
      return Violation(msg, from, "not a node agent message");
  }
}

bool NodeAgent::DeferIfHeld(Env& env, NodeId from, const Message& msg) {
  uint8_t& b = pages_[msg.page];
  if (!(b & kHeldBit)) return false;
  b &= static_cast<uint8_t>(~kHeldBit);
  Effect e;
  e.type = EffectType::kDefer;
  e.node = from;
  e.page = msg.page;
  e.msg = msg;
  env.out.effects.push_back(e);
  return true;
}

// The home's own copy serves a remote requester (the forward came from this
// node's home agent): the kData ends the transaction. The home→requester
// channel is FIFO, so anything the home sends the requester for this page
// afterwards (kInv, kFwdRead, kTransfer) arrives after the page; the
// requester sends no kDone (kFlagNoDone), and this node's home agent hears
// the end from here, in this call, after the kData was queued
// (EndServedByHome). A forward from another home needs the requester's
// kDone: a later message of that home could overtake this node's kData.
uint8_t NodeAgent::ServedByHome(const Env& env, NodeId from) {
  return from == env.self() ? kFlagNoDone : 0;
}

void NodeAgent::EndServedByHome(Env& env, uint8_t by_home, PageId page) {
  if (by_home) {
    env.Send(env.self(), MakeMessage(MsgType::kDone, page, kFlagBySource));
  }
}

absl::Status NodeAgent::OnFwdRead(Env& env, NodeId from, const Message& msg) {
  // A dead requester gets nothing and the copy stays as it is: the home
  // learns that with kProbe (after its kFlush, so this node knows of the
  // death by then) and may have moved on, so a deferred forward may be
  // stale by now. Checked first.
  if (env.members.IsDead(msg.node)) return absl::OkStatus();
  if (DeferIfHeld(env, from, msg)) return absl::OkStatus();
  PageId page = msg.page;
  uint8_t& b = pages_[page];
  PageState state = StateBits(b);
  if (state != PageState::kShared && state != PageState::kModified) {
    return Violation(msg, from, "asked to serve a copy it does not hold");
  }
  if (msg.node == env.self()) return Violation(msg, from, "serve self");
  if (state == PageState::kModified && bug_ != TestBug::kSkipDowngrade) {
    AddAction(env, EffectType::kWriteProtect, page);
    Set(page, PageState::kShared, b & kPendingBits);
  }
  bool zero = b & kPristineBit;
  const uint8_t by_home = ServedByHome(env, from);
  env.Send(msg.node,
           MakeMessage(MsgType::kData, page, (zero ? kFlagZero : 0) | by_home,
                       kNoNode, msg.version));
  EndServedByHome(env, by_home, page);
  return absl::OkStatus();
}

absl::Status NodeAgent::OnTransfer(Env& env, NodeId from, const Message& msg) {
  // Keep the copy if the new owner is already dead (see OnFwdRead).
  if (env.members.IsDead(msg.node)) return absl::OkStatus();
  if (DeferIfHeld(env, from, msg)) return absl::OkStatus();
  PageId page = msg.page;
  uint8_t& b = pages_[page];
  PageState state = StateBits(b);
  if (state != PageState::kShared && state != PageState::kModified) {
    return Violation(msg, from, "asked to transfer a copy it does not hold");
  }
  if (msg.node == env.self()) return Violation(msg, from, "transfer to self");
  if (state == PageState::kModified) {
    AddAction(env, EffectType::kWriteProtect, page);
  }
  bool zero = b & kPristineBit;
  const uint8_t by_home = ServedByHome(env, from);
  env.Send(msg.node, MakeMessage(MsgType::kData, page,
                                 kFlagWrite | (zero ? kFlagZero : 0) | by_home,
                                 kNoNode, msg.version));
  Effect zap;
  zap.type = EffectType::kZap;
  zap.page = page;
  // Modified and pristine: never mapped here (a Shared pristine copy may be
  // mapped read-only), nothing to unmap.
  zap.zero = zero && state == PageState::kModified;
  env.out.effects.push_back(zap);
  b &= static_cast<uint8_t>(~kPristineBit);
  Set(page, PageState::kInvalid, b & kPendingBits);
  EndServedByHome(env, by_home, page);
  return absl::OkStatus();
}

absl::Status NodeAgent::OnInv(Env& env, NodeId from, const Message& msg) {
  if (DeferIfHeld(env, from, msg)) return absl::OkStatus();
  PageId page = msg.page;
  uint8_t& b = pages_[page];
  if (StateBits(b) != PageState::kShared) {
    return Violation(msg, from, "invalidation of a page not held Shared");
  }
  AddAction(env, EffectType::kZap, page);
  b &= static_cast<uint8_t>(~kPristineBit);
  // A pending upgrade stays pending: it becomes a write miss at the home.
  Set(page, PageState::kInvalid, b & kPendingBits);
  env.Send(from, MakeMessage(MsgType::kInvAck, page));
  return absl::OkStatus();
}

absl::Status NodeAgent::OnData(Env& env, NodeId from, const Message& msg) {
  PageId page = msg.page;
  uint8_t b = pages_[page];
  bool write = msg.flags & kFlagWrite;
  if (StateBits(b) != PageState::kInvalid || (b & kPullingBit) ||
      (b & kPendingBits) != (write ? kPendWrite : kPendRead)) {
    return Violation(msg, from, "data without a matching request");
  }
  Effect e;
  e.type = EffectType::kMapReceived;
  e.page = page;
  e.writable = write;
  e.zero = msg.flags & kFlagZero;
  e.version = msg.version;
  env.out.effects.push_back(e);
  Set(page, write ? PageState::kModified : PageState::kShared, 0);
  pages_[page] |= kHeldBit;
  if (!(msg.flags & kFlagNoDone)) {
    env.Send(env.members.HomeOf(page), MakeMessage(MsgType::kDone, page));
  }
  return absl::OkStatus();
}

// The run is checked whole before any page changes: a kDataRun either
// completes every pending read it names or is a violation that changes
// nothing. It comes from the home (checked in OnMessage), which served
// every page from its own copy.
// A write run's answer (kFlagWrite) grants its pages Modified (pristine:
// zeros) or refuses them (kFlagRefused: the requests are over, the home
// started no transaction; threads parked on them retry on their own).
absl::Status NodeAgent::OnDataRun(Env& env, NodeId from, const Message& msg) {
  const PageId first = msg.page;
  const uint32_t count = msg.pages();
  const bool write = msg.flags & kFlagWrite;
  for (PageId p = first; p < first + count; ++p) {
    const uint8_t b = pages_[p];
    if (StateBits(b) != PageState::kInvalid || (b & kPullingBit) ||
        (b & kPendingBits) != (write ? kPendWrite : kPendRead)) {
      return Violation(MakeMessage(msg.type, p, msg.flags), from,
                       write ? "run data for a page without a pending write"
                             : "run data for a page without a pending read");
    }
  }
  if (msg.flags & kFlagRefused) {
    for (PageId p = first; p < first + count; ++p) {
      AddAction(env, EffectType::kRetry, p);
      Set(p, PageState::kInvalid, 0);
    }
    return absl::OkStatus();
  }
  for (PageId p = first; p < first + count; ++p) {
    Effect e;
    e.type = EffectType::kMapReceived;
    e.page = p;
    e.zero = msg.flags & kFlagZero;
    e.writable = write;
    env.out.effects.push_back(e);
    Set(p, write ? PageState::kModified : PageState::kShared, 0);
    pages_[p] |= kHeldBit;
  }
  if (!(msg.flags & kFlagNoDone)) {
    env.Send(from, MakeMessage(MsgType::kDoneRun, first, 0, kNoNode, count));
  }
  return absl::OkStatus();
}

uint32_t NodeAgent::RequestRun(Env& env, PageId first, uint32_t max_pages,
                               bool write) {
  const PageSpace& space = env.members.space();
  const NodeId home = env.members.HomeOf(first);
  if (home == env.self()) return 0;
  const NodeId range = space.StaticHomeOf(first);
  const PageId end = space.FirstPageOf(range) + space.PageCountOf(range);
  const PageId limit =
      first + std::min<PageId>({max_pages, kMaxRunPages, end - first});
  uint32_t count = 0;
  for (PageId p = first; p < limit; ++p, ++count) {
    const uint8_t b = pages_[p];
    if (StateBits(b) != PageState::kInvalid || (b & kPendingBits)) break;
  }
  if (count == 0) return 0;
  for (PageId p = first; p < first + count; ++p) {
    Set(p, PageState::kInvalid, write ? kPendWrite : kPendRead);
  }
  if (write) {
    env.stats.write_run_requests.Add();
    env.stats.write_run_pages_requested.Add(count);
  } else {
    env.stats.run_requests.Add();
    env.stats.run_pages_requested.Add(count);
  }
  env.Send(home, MakeMessage(MsgType::kReadRun, first, write ? kFlagWrite : 0,
                             kNoNode, count));
  return count;
}

bool NodeAgent::CanServeRun(PageId page) const {
  const uint8_t b = pages_[page];
  const PageState state = StateBits(b);
  return (state == PageState::kShared || state == PageState::kModified) &&
         !(b & (kPendingBits | kHeldBit));
}

bool NodeAgent::ServeRun(Env& env, PageId page) {
  uint8_t& b = pages_[page];
  if (StateBits(b) == PageState::kModified &&
      bug_ != TestBug::kRunSkipDowngrade) {
    AddAction(env, EffectType::kWriteProtect, page);
    Set(page, PageState::kShared, 0);
  }
  return b & kPristineBit;
}

bool NodeAgent::CanServeWriteRun(PageId page) const {
  const uint8_t b = pages_[page];
  return StateBits(b) == PageState::kModified &&
         ((b & kPristineBit) || bug_ == TestBug::kWriteRunNotPristine) &&
         !(b & (kPendingBits | kHeldBit));
}

bool NodeAgent::CanDowngrade(PageId page) const {
  const uint8_t b = pages_[page];
  return StateBits(b) == PageState::kModified &&
         !(b & (kPristineBit | kPendingBits | kHeldBit));
}

void NodeAgent::Downgrade(Env& env, PageId page) {
  if (bug_ != TestBug::kDowngradeSkipProtect) {
    AddAction(env, EffectType::kWriteProtect, page);
  }
  Set(page, PageState::kShared, 0);
}

// Modified and pristine means never mapped here (a local fault on a
// Modified page maps it writable and clears the bit), so the kZap that
// drops the copy has nothing to unmap (the driver may skip it); the page
// can never be pristine here again.
void NodeAgent::ServeWriteRun(Env& env, PageId page) {
  Effect e;
  e.type = EffectType::kZap;
  e.page = page;
  e.zero = true;  // pristine: never mapped here
  env.out.effects.push_back(e);
  pages_[page] &= static_cast<uint8_t>(~kPristineBit);
  Set(page, PageState::kInvalid, 0);
}

absl::Status NodeAgent::OnGrant(Env& env, NodeId from, const Message& msg) {
  PageId page = msg.page;
  uint8_t b = pages_[page];
  if (StateBits(b) != PageState::kShared || (b & kPendingBits) != kPendWrite) {
    return Violation(msg, from, "upgrade grant without a pending upgrade");
  }
  AddAction(env, EffectType::kMakeWritable, page);
  pages_[page] &= static_cast<uint8_t>(~kPristineBit);
  Set(page, PageState::kModified, 0);
  pages_[page] |= kHeldBit;
  if (!(msg.flags & kFlagNoDone)) {
    env.Send(from, MakeMessage(MsgType::kDone, page));
  }
  return absl::OkStatus();
}

absl::Status NodeAgent::OnPullGrant(Env& env, NodeId from, const Message& msg) {
  PageId page = msg.page;
  uint8_t& b = pages_[page];
  if (StateBits(b) != PageState::kInvalid || (b & kPullingBit) ||
      (b & kPendingBits) != kPendRead) {
    return Violation(msg, from, "pull grant without a pending read");
  }
  if (msg.node == env.self()) return Violation(msg, from, "pull from self");
  b |= kPullingBit;
  Effect e;
  e.type = EffectType::kFetch;
  e.page = page;
  e.node = msg.node;
  e.version = msg.version;
  env.out.effects.push_back(e);
  return absl::OkStatus();
}

absl::Status NodeAgent::OnFetchDone(Env& env, PageId page, bool ok) {
  uint8_t& b = pages_[page];
  if (!(b & kPullingBit)) {
    return absl::FailedPreconditionError(
        absl::StrCat("node agent: fetch done for page ", page,
                     " without a fetch in progress"));
  }
  b &= static_cast<uint8_t>(~kPullingBit);
  NodeId home = env.members.HomeOf(page);
  if (!ok) {
    // Still a pending read: the home retries from another copy.
    env.Send(home, MakeMessage(MsgType::kDone, page, kFlagFailed));
    return absl::OkStatus();
  }
  AddAction(env, EffectType::kMapFetched, page);
  Set(page, PageState::kShared, 0);
  b |= kHeldBit;
  env.Send(home, MakeMessage(MsgType::kDone, page));
  return absl::OkStatus();
}

absl::Status NodeAgent::OnLost(Env& env, NodeId from, const Message& msg) {
  PageId page = msg.page;
  uint8_t& b = pages_[page];
  if (!(b & kPendingBits) || (b & kPullingBit)) {
    return Violation(msg, from, "lost without a pending request");
  }
  if (StateBits(b) == PageState::kShared) {
    // The page is gone everywhere else, but not here: cannot be.
    return Violation(msg, from, "lost while holding a copy");
  }
  b = static_cast<uint8_t>(PageState::kLost);
  AddAction(env, EffectType::kPageLost, page);
  return absl::OkStatus();
}

void NodeAgent::AnnounceStalled(Env& env, NodeId dead, NodeMask skip_ranges) {
  const PageSpace& space = env.members.space();
  for (NodeId r = 0; r < space.num_nodes(); ++r) {
    if (skip_ranges & Bit(r)) continue;
    NodeId home = env.members.HomeOfRange(r);
    PageId first = space.FirstPageOf(r);
    PageId end = first + space.PageCountOf(r);
    for (PageId p = first; p < end; ++p) {
      uint8_t b = pages_[p];
      // A fetch in progress always ends in kDone; only requests whose
      // answer might have been lost with the dead node need a verdict.
      if ((b & kPendingBits) && !(b & kPullingBit)) {
        env.Send(home, MakeMessage(MsgType::kStalled, p, 0, dead));
      }
    }
  }
}

void NodeAgent::AppendReport(Env& env, NodeId range, NodeId to) const {
  if (env.members.IsDead(to)) return;
  const PageSpace& space = env.members.space();
  PageId first = space.FirstPageOf(range);
  PageId count = space.PageCountOf(range);
  auto flush = [&](ReportChunk& chunk, bool last) {
    chunk.range = range;
    chunk.last = last;
    Effect e;
    e.type = EffectType::kSendReport;
    e.node = to;
    e.index = static_cast<uint32_t>(env.out.reports.size());
    env.out.reports.push_back(std::move(chunk));
    env.out.effects.push_back(e);
    chunk = ReportChunk();
  };
  ReportChunk chunk;
  for (PageId i = 0; i < count; ++i) {
    uint8_t s = LocalStateByte(first + i);
    if (s == 0) continue;  // Invalid, nothing pending: the default
    if (chunk.entries.size() == kMaxReportEntries) flush(chunk, false);
    chunk.entries.push_back({static_cast<uint32_t>(i), s});
  }
  flush(chunk, true);
}

}  // namespace ssihv::directory
