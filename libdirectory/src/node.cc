#include "ssihv/directory/node.h"

#include "absl/strings/str_cat.h"

namespace ssihv::directory {
namespace {

bool ForHome(MsgType type) {
  switch (type) {
    case MsgType::kReadReq:
    case MsgType::kWriteReq:
    case MsgType::kInvAck:
    case MsgType::kDone:
    case MsgType::kProbeAck:
    case MsgType::kStalled:
      return true;
    default:
      return false;
  }
}

NodeMask OwnedBy(const Membership& m, NodeMask ranges, NodeId node) {
  NodeMask out = 0;
  for (NodeMask r = ranges; r != 0; r &= r - 1) {
    auto range = static_cast<NodeId>(__builtin_ctzll(r));
    if (m.HomeOfRange(range) == node) out |= Bit(range);
  }
  return out;
}

}  // namespace

absl::StatusOr<Node> Node::Create(const PageSpace& space, NodeId self,
                                  Options options) {
  if (self >= space.num_nodes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "directory node: self ", self, " not in 0..", space.num_nodes() - 1));
  }
  return Node(space, self, options);
}

Node::Node(const PageSpace& space, NodeId self, Options options)
    : members_(space, self),
      node_(space, self, options.test_bug),
      home_(space, self,
            HomeAgent::Options{options.allow_pull, options.per_page_stats,
                               options.test_bug}) {}

absl::Status Node::OnFault(PageId page, Access access, Output* out) {
  if (!space().Contains(page)) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory node: fault on page ", page,
                     " beyond the last page ", space().num_pages() - 1));
  }
  size_t start = out->effects.size();
  Env env{members_, stats_, *out};
  absl::Status s = node_.OnFault(env, page, access);
  if (!s.ok()) return s;
  return RunLocal(out, start);
}

absl::Status Node::OnMessage(NodeId from, const Message& msg, Output* out) {
  if (from >= space().num_nodes() || from == self()) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory node: message from bad node ", from));
  }
  if (absl::Status s = Validate(msg, space()); !s.ok()) return s;
  if (members_.IsDead(from)) {
    stats_.dropped_from_dead.Add();
    return absl::OkStatus();
  }
  if (msg.type == MsgType::kReport) {
    return absl::InvalidArgumentError(
        "directory node: kReport goes through OnReport");
  }
  stats_.received[static_cast<int>(msg.type)].Add();
  size_t start = out->effects.size();
  Env env{members_, stats_, *out};
  absl::Status s = Deliver(env, from, msg);
  if (!s.ok()) return s;
  return RunLocal(out, start);
}

absl::Status Node::RequestRun(PageId first, uint32_t max_pages, Output* out,
                              uint32_t* requested, bool write) {
  *requested = 0;
  if (!space().Contains(first) || max_pages == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory node: run of ", max_pages, " pages at page ",
                     first, " (", space().num_pages(), " pages)"));
  }
  size_t start = out->effects.size();
  Env env{members_, stats_, *out};
  *requested = node_.RequestRun(env, first, max_pages, write);
  return RunLocal(out, start);
}

absl::Status Node::OnFetchDone(PageId page, bool ok, Output* out) {
  if (!space().Contains(page)) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory node: fetch done for bad page ", page));
  }
  size_t start = out->effects.size();
  Env env{members_, stats_, *out};
  absl::Status s = node_.OnFetchDone(env, page, ok);
  if (!s.ok()) return s;
  return RunLocal(out, start);
}

bool Node::CanDowngrade(PageId page) const {
  return space().Contains(page) && members_.HomeOf(page) == self() &&
         home_.CanDowngrade(page) && node_.CanDowngrade(page);
}

bool Node::Downgrade(PageId page, Output* out) {
  if (!CanDowngrade(page)) return false;
  Env env{members_, stats_, *out};
  home_.Downgrade(page);
  node_.Downgrade(env, page);
  return true;
}

absl::Status Node::Resubmit(NodeId from, const Message& msg, Output* out) {
  if (from >= space().num_nodes() ||
      (msg.type != MsgType::kFwdRead && msg.type != MsgType::kTransfer &&
       msg.type != MsgType::kInv)) {
    return absl::InvalidArgumentError(
        "directory node: only deferred kFwdRead/kTransfer/kInv go back");
  }
  if (absl::Status s = Validate(msg, space()); !s.ok()) return s;
  if (members_.IsDead(from)) {
    stats_.dropped_from_dead.Add();
    return absl::OkStatus();
  }
  size_t start = out->effects.size();
  Env env{members_, stats_, *out};
  absl::Status s = node_.OnMessage(env, from, msg);
  if (!s.ok()) return s;
  return RunLocal(out, start);
}

absl::Status Node::OnNodeDead(NodeId dead, Output* out) {
  if (dead >= space().num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory node: death of bad node ", dead));
  }
  if (dead == self()) {
    return absl::AbortedError("directory node: this node was declared dead");
  }
  if (members_.IsDead(dead)) return absl::OkStatus();
  size_t start = out->effects.size();
  Env env{members_, stats_, *out};
  absl::Status s = LearnDeath(env, dead);
  if (!s.ok()) return s;
  return RunLocal(out, start);
}

absl::Status Node::OnReport(NodeId from, const ReportChunk& chunk,
                            Output* out) {
  if (from >= space().num_nodes() || from == self() ||
      chunk.range >= space().num_nodes() ||
      chunk.entries.size() > kMaxReportEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory node: bad report from node ", from));
  }
  if (members_.IsDead(from)) {
    stats_.dropped_from_dead.Add();
    return absl::OkStatus();
  }
  stats_.received[static_cast<int>(MsgType::kReport)].Add();
  size_t start = out->effects.size();
  Env env{members_, stats_, *out};
  absl::Status s = DeliverReport(env, from, chunk);
  if (!s.ok()) return s;
  return RunLocal(out, start);
}

absl::Status Node::Deliver(Env& env, NodeId from, const Message& msg) {
  if (msg.type == MsgType::kFlush) return OnFlush(env, from, msg);
  if (msg.type == MsgType::kReadRun) return ServeReadRun(env, from, msg);
  if (msg.type == MsgType::kDoneRun) return home_.OnDoneRun(env, from, msg);
  if (ForHome(msg.type)) return home_.OnMessage(env, from, msg);
  return node_.OnMessage(env, from, msg);
}

// Each page of the run the home can grant from its own copy right now
// joins a kDataRun (consecutive granted pages share one); every other page
// is served as the kReadReq it stands for (queued behind a transaction,
// forwarded to the owner, answered kLost, ...), so the requester gets an
// answer for every page it asked for. Both agents are this node's, hence
// here rather than in the home agent: the home decides, its node agent
// write-protects and supplies the bytes.
absl::Status Node::ServeReadRun(Env& env, NodeId from, const Message& msg) {
  if (members_.HomeOf(msg.page) != self()) {
    return absl::FailedPreconditionError(
        absl::StrCat("directory node: ReadRun for page ", msg.page,
                     " from node ", from, ": page is not homed here"));
  }
  if (msg.flags & kFlagWrite) return ServeWriteRun(env, from, msg);
  PageId run_first = 0;
  uint32_t run_pages = 0;
  bool run_zero = true;
  auto grant = [&] {
    if (run_pages == 0) return;
    env.stats.run_grants.Add();
    env.stats.run_pages_granted.Add(run_pages);
    // From the home's copy: the run is over as it leaves (no kDoneRun).
    env.Send(from, MakeMessage(MsgType::kDataRun, run_first,
                               (run_zero ? kFlagZero : 0) | kFlagNoDone,
                               kNoNode, run_pages));
    home_.EndRun(env, from, run_first, run_pages);
    run_pages = 0;
    run_zero = true;
  };
  for (PageId p = msg.page; p < msg.page + msg.pages(); ++p) {
    if (home_.CanGrantRun(p, from) && node_.CanServeRun(p)) {
      home_.StartRunRead(env, p, from);
      const bool zero = node_.ServeRun(env, p);
      if (run_pages == 0) run_first = p;
      ++run_pages;
      run_zero = run_zero && zero;
      continue;
    }
    grant();
    absl::Status s =
        home_.OnMessage(env, from, MakeMessage(MsgType::kReadReq, p));
    if (!s.ok()) return s;
  }
  grant();
  return absl::OkStatus();
}

// A write run asks for pages nobody has touched yet (a guest's first
// writes to remote memory), on speculation: a page the home holds Modified
// and pristine, alone and idle, is granted (ownership moves, no bytes: it
// reads as zeros); any other page is refused rather than taken from whoever
// uses it, and the requester asks for it on its own if it faults on it.
// Stretches of granted and of refused pages each go in one kDataRun, in
// page order. A page whose entry is being rebuilt after a death is neither:
// the requester's report names its pending write too, so it is served as
// the kWriteReq it stands for (joining the waiters the rebuild will serve).
absl::Status Node::ServeWriteRun(Env& env, NodeId from, const Message& msg) {
  PageId stretch_first = msg.page;
  uint32_t stretch_pages = 0;
  bool stretch_granted = false;
  auto answer = [&] {
    if (stretch_pages == 0) return;
    (stretch_granted ? env.stats.write_run_pages_granted
                     : env.stats.write_run_pages_refused)
        .Add(stretch_pages);
    env.Send(from,
             MakeMessage(MsgType::kDataRun, stretch_first,
                         kFlagWrite | (stretch_granted ? kFlagZero | kFlagNoDone
                                                       : kFlagRefused),
                         kNoNode, stretch_pages));
    if (stretch_granted) home_.EndRun(env, from, stretch_first, stretch_pages);
    stretch_pages = 0;
  };
  for (PageId p = msg.page; p < msg.page + msg.pages(); ++p) {
    if (home_.Rebuilding(p)) {
      answer();
      absl::Status s =
          home_.OnMessage(env, from, MakeMessage(MsgType::kWriteReq, p));
      if (!s.ok()) return s;
      continue;
    }
    const bool grant =
        home_.CanGrantWriteRun(p, from) && node_.CanServeWriteRun(p);
    if (grant != stretch_granted) answer();
    if (stretch_pages == 0) {
      stretch_first = p;
      stretch_granted = grant;
    }
    ++stretch_pages;
    if (grant) {
      home_.StartRunWrite(env, p, from);
      node_.ServeWriteRun(env, p);
    }
  }
  answer();
  return absl::OkStatus();
}

absl::Status Node::DeliverReport(Env& env, NodeId from,
                                 const ReportChunk& chunk) {
  return home_.OnReport(env, from, chunk);
}

absl::Status Node::RunLocal(Output* out, size_t start) {
  // Messages between this node's own agents are delivered here, at once
  // and in order; their effects are appended after everything emitted so
  // far, so a kSend carrying the page still precedes any later kZap.
  // Delivered effects are dropped by compacting the rest towards `kept`,
  // not by erasing each from the middle, which is quadratic in the number
  // of local messages of one call (a recovery can have many).
  size_t kept = start;
  for (size_t i = start; i < out->effects.size(); ++i) {
    const Effect& e = out->effects[i];
    const bool local = e.node == self() && (e.type == EffectType::kSend ||
                                            e.type == EffectType::kSendReport);
    if (!local) {
      if (e.type == EffectType::kSend) {
        stats_.sent[static_cast<int>(e.msg.type)].Add();
        stats_.page_bytes_sent.Add(e.msg.payload_bytes());
      } else if (e.type == EffectType::kSendReport) {
        stats_.sent[static_cast<int>(MsgType::kReport)].Add();
      }
      if (kept != i) out->effects[kept] = std::move(out->effects[i]);
      ++kept;
      continue;
    }
    stats_.local_messages.Add();
    Env env{members_, stats_, *out};
    absl::Status s;
    if (e.type == EffectType::kSend) {
      const Message msg = e.msg;  // Deliver may grow (move) the vector
      s = Deliver(env, self(), msg);
    } else {
      ReportChunk chunk = std::move(out->reports[e.index]);
      s = DeliverReport(env, self(), chunk);
    }
    if (!s.ok()) {  // what is left stays, as it was before the failure
      out->effects.erase(out->effects.begin() + static_cast<ptrdiff_t>(kept),
                         out->effects.begin() + static_cast<ptrdiff_t>(i) + 1);
      return s;
    }
  }
  out->effects.resize(kept);
  return absl::OkStatus();
}

absl::Status Node::LearnDeath(Env& env, NodeId dead) {
  NodeMask changed = members_.MarkDead(dead);
  // Everything this node sent before now precedes these on each channel,
  // so a peer that has our kFlush has everything we sent before the death.
  for (NodeMask m = members_.live() & ~Bit(self()); m != 0; m &= m - 1) {
    Message flush;
    flush.type = MsgType::kFlush;
    flush.node = static_cast<uint8_t>(dead);
    env.Send(static_cast<NodeId>(__builtin_ctzll(m)), flush);
  }
  for (NodeMask& wait : flush_wait_) wait &= ~Bit(dead);
  flush_wait_[dead] = members_.live() & ~Bit(self());
  home_.OnNodeDead(env, dead, OwnedBy(members_, changed, self()));
  // Requests on pages of changed ranges are re-announced by the report.
  node_.AnnounceStalled(env, dead, changed | unreported_);
  unreported_ |= changed;
  MaybeReport(env);
  return absl::OkStatus();
}

absl::Status Node::OnFlush(Env& env, NodeId from, const Message& msg) {
  NodeId dead = msg.node;
  if (dead == self()) {
    return absl::AbortedError(absl::StrCat("directory node: node ", from,
                                           " declared this node dead"));
  }
  if (!members_.IsDead(dead)) {
    // Learned from a peer: the peer's later messages assume the death.
    if (absl::Status s = LearnDeath(env, dead); !s.ok()) return s;
  }
  flush_wait_[dead] &= ~Bit(from);
  MaybeReport(env);
  return absl::OkStatus();
}

void Node::MaybeReport(Env& env) {
  if (unreported_ == 0) return;
  for (NodeMask wait : flush_wait_) {
    if (wait != 0) return;
  }
  // Every survivor's pre-death messages have arrived: this node's states
  // for the changed ranges are final until their new homes take over.
  for (NodeMask m = unreported_; m != 0; m &= m - 1) {
    auto range = static_cast<NodeId>(__builtin_ctzll(m));
    node_.AppendReport(env, range, members_.HomeOfRange(range));
  }
  unreported_ = 0;
}

bool Node::RecoveryQuiet() const {
  if (unreported_ != 0) return false;
  for (NodeMask wait : flush_wait_) {
    if (wait != 0) return false;
  }
  for (NodeId r = 0; r < space().num_nodes(); ++r) {
    if (home_.Recovering(r)) return false;
  }
  return true;
}

void Node::AppendState(std::string* out) const {
  const std::vector<uint8_t>& raw = node_.raw();
  out->append(reinterpret_cast<const char*>(raw.data()), raw.size());
  home_.AppendState(out);
  NodeMask dead = members_.dead();
  out->append(reinterpret_cast<const char*>(&dead), sizeof(dead));
  out->append(reinterpret_cast<const char*>(flush_wait_.data()),
              sizeof(NodeMask) * space().num_nodes());
  out->append(reinterpret_cast<const char*>(&unreported_), sizeof(unreported_));
}

}  // namespace ssihv::directory
