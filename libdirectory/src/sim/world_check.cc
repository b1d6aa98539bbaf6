// The checker: invariants evaluated after every step of a World.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sim/world.h"

namespace ssihv::directory::sim::internal {

void World::CheckInvariants() {
  for (PageId p = 0; p < pages_; ++p) {
    CheckPage(p);
    if (config_.crash && !doomed_[p]) UpdateDoomed(p);
    if (failed_) return;
  }
  for (PageId p : lost_declared_) {
    if (!doomed_[p]) {
      Fail("false-loss",
           absl::StrCat("p", p, " declared lost while its latest value ",
                        latest_[p], " still exists"));
      return;
    }
  }
  if (calm_) {
    uint64_t bound = LivenessBound();
    for (uint32_t t = 0; t < threads_.size(); ++t) {
      const ThreadState& ts = threads_[t];
      if (dead_[ts.node] || ts.fault_step == 0) continue;
      uint64_t since = std::max(ts.fault_step, calm_step_);
      if (step_ - since > bound) {
        Fail("liveness",
             absl::StrCat("n", ts.node, ".t", t, " ",
                          ts.op.access == Access::kRead ? "read" : "write",
                          " of p", ts.op.page, " not done ", step_ - since,
                          " steps after the network calmed (bound ", bound,
                          ")"));
        return;
      }
    }
  }
  if (Quiescent()) CheckAgreement();
}

uint64_t World::LivenessBound() const {
  // Calm scheduling is round-robin over every event source, so a fault
  // waits for at most (queued requests ahead + recovery) transactions of a
  // bounded number of hops, each hop within one round of all sources.
  uint64_t sources = threads_.size() + channels_.size() + 2;
  return (threads_.size() + 4) * 6 * sources;
}

void World::CheckPage(PageId p) {
  int modified = 0, shared = 0, writable = 0, mapped = 0;
  for (NodeId n = 0; n < N(); ++n) {
    if (dead_[n]) continue;
    PageState st = nodes_[n].node_agent().StateOf(p);
    const Frame& f = frame(n, p);
    modified += st == PageState::kModified;
    shared += st == PageState::kShared;
    writable += f.prot == 2;
    mapped += f.prot != 0;
    bool holds = st == PageState::kShared || st == PageState::kModified;
    if ((holds || f.prot != 0) && (!f.valid || f.value != latest_[p])) {
      Fail("data-value",
           absl::StrCat("n", n, " holds p", p, " (",
                        holds ? "agent copy" : "mapping", ") with value ",
                        f.valid ? f.value : kGarbage, ", latest is ",
                        latest_[p]));
      return;
    }
    if (!holds && f.prot != 0) {
      Fail("swmr",
           absl::StrCat("n", n, " maps p", p, " without holding a copy"));
      return;
    }
  }
  if (modified > 1 || (modified == 1 && shared > 0)) {
    Fail("swmr", absl::StrCat("p", p, ": ", modified, " Modified and ", shared,
                              " Shared copies"));
  } else if (writable > 1 || (writable == 1 && mapped > 1)) {
    Fail("swmr", absl::StrCat("p", p, ": ", writable, " writable of ", mapped,
                              " mappings"));
  }
}

void World::UpdateDoomed(PageId p) {
  // Does the latest value still exist where the protocol could use it: in a
  // live node's frame, or in a message that may still reach a live node?
  uint64_t v = latest_[p];
  for (NodeId n = 0; n < N(); ++n) {
    if (!dead_[n] && frame(n, p).valid && frame(n, p).value == v) return;
  }
  for (const auto& ch : channels_) {
    for (const Packet& pk : ch) {
      // A receiver that knows the sender died drops the packet unread.
      if (!dead_[pk.to] && !pk.report && pk.Carries(p) && pk.ValueOf(p) == v &&
          !nodes_[pk.to].membership().IsDead(pk.from)) {
        return;
      }
    }
  }
  doomed_[p] = true;
}

bool World::Quiescent() const {
  if (!fetches_.empty() || !notices_.empty() || !deferred_.empty() ||
      !late_.empty()) {
    return false;
  }
  for (const auto& ch : channels_) {
    if (!ch.empty()) return false;
  }
  for (const ThreadState& ts : threads_) {
    if (!dead_[ts.node] && ts.blocked) return false;
  }
  for (NodeId n = 0; n < N(); ++n) {
    if (!dead_[n] && !nodes_[n].RecoveryQuiet()) return false;
  }
  return true;
}

void World::CheckAgreement() {
  for (PageId p = 0; p < pages_; ++p) {
    NodeId home = kNoNode;
    NodeMask holders = 0, owners = 0;
    for (NodeId n = 0; n < N(); ++n) {
      if (dead_[n]) continue;
      const Node& node = nodes_[n];
      NodeId h = node.membership().HomeOf(p);
      if (home == kNoNode) home = h;
      if (h != home || dead_[h]) {
        Fail("agreement",
             absl::StrCat("p", p, ": n", n, " thinks its home is n", h,
                          ", others n", home));
        return;
      }
      PageState st = node.node_agent().StateOf(p);
      if (st == PageState::kShared || st == PageState::kModified) {
        holders |= Bit(n);
      }
      if (st == PageState::kModified) owners |= Bit(n);
      if (node.node_agent().Pending(p)) {
        Fail("agreement", absl::StrCat("n", n, " has a request for p", p,
                                       " pending while quiescent"));
        return;
      }
    }
    DirView v = nodes_[home].home_agent().Inspect(p);
    std::string where = absl::StrCat("p", p, " at home n", home, ": ");
    if (v.phase != TxnPhase::kIdle || v.read_waiters || v.write_waiters) {
      Fail("agreement", where + "transaction open while quiescent");
    } else if (v.state == DirState::kRecovering) {
      Fail("agreement", where + "still recovering while quiescent");
    } else if (v.state == DirState::kLost) {
      if (holders != 0) {
        Fail("agreement", absl::StrCat(where, "lost, yet nodes 0x",
                                       absl::Hex(holders), " hold copies"));
      }
    } else if (v.copies != holders) {
      Fail("agreement",
           absl::StrCat(where, "directory copies 0x", absl::Hex(v.copies),
                        ", agents hold 0x", absl::Hex(holders)));
    } else if ((v.state == DirState::kModified) != (owners != 0) ||
               (owners != 0 && owners != holders)) {
      Fail("agreement",
           absl::StrCat(where, "directory state ", static_cast<int>(v.state),
                        ", owners 0x", absl::Hex(owners)));
    }
    if (failed_) return;
  }
}

std::string World::DescribeStuck() const {
  std::string s;
  for (uint32_t t = 0; t < threads_.size(); ++t) {
    const ThreadState& ts = threads_[t];
    if (dead_[ts.node] || ts.completed >= config_.ops) continue;
    absl::StrAppend(&s, " n", ts.node, ".t", t,
                    ts.blocked ? " blocked on " : " at ",
                    ts.op.access == Access::kRead ? "read" : "write", " p",
                    ts.op.page, ";");
    if (!ts.has_op) continue;
    PageId p = ts.op.page;
    for (NodeId n = 0; n < N(); ++n) {
      if (dead_[n]) continue;
      absl::StrAppend(&s, " n", n, "=0x",
                      absl::Hex(nodes_[n].node_agent().LocalStateByte(p)));
    }
    NodeId home = nodes_[ts.node].membership().HomeOf(p);
    DirView v = nodes_[home].home_agent().Inspect(p);
    absl::StrAppend(&s, " home n", home, " state=", static_cast<int>(v.state),
                    " copies=0x", absl::Hex(v.copies),
                    " phase=", static_cast<int>(v.phase), " req=", v.requester,
                    " src=", v.source, " rw=0x", absl::Hex(v.read_waiters),
                    " ww=0x", absl::Hex(v.write_waiters),
                    nodes_[home].home_agent().Recovering(
                        nodes_[home].space().StaticHomeOf(p))
                        ? " recovering"
                        : "",
                    ";");
  }
  for (const DeferredMsg& d : deferred_) {
    absl::StrAppend(&s, " n", d.node, " holds deferred ",
                    MsgTypeName(d.msg.type), " p", d.msg.page, " from n",
                    d.from, ";");
  }
  for (NodeId n = 0; n < N(); ++n) {
    if (!dead_[n] && !nodes_[n].RecoveryQuiet()) {
      absl::StrAppend(&s, " n", n, " recovery not quiet;");
    }
  }
  return s;
}

void World::AppendState(std::string* out) const {
  auto put = [out](const auto& v) {
    out->append(reinterpret_cast<const char*>(&v), sizeof(v));
  };
  auto value_class = [this](PageId p, bool valid, uint64_t v) -> uint8_t {
    if (!valid) return 0;
    return v == latest_[p] ? 1 : 2;
  };
  for (NodeId n = 0; n < N(); ++n) {
    out->push_back(dead_[n] ? 'D' : 'L');
    if (dead_[n]) continue;  // a dead node's state no longer matters
    nodes_[n].AppendState(out);
    for (PageId p = 0; p < pages_; ++p) {
      const Frame& f = frame(n, p);
      out->push_back(static_cast<char>(value_class(p, f.valid, f.value)));
      out->push_back(static_cast<char>(f.prot));
    }
  }
  for (const ThreadState& ts : threads_) {
    put(ts.completed);
    out->push_back(
        static_cast<char>(ts.has_op | ts.blocked << 1 | ts.woken << 2));
    if (ts.has_op) {
      out->push_back(static_cast<char>(ts.op.access));
      put(ts.op.page);
    }
  }
  for (uint32_t c = 0; c < channels_.size(); ++c) {
    if (channels_[c].empty()) continue;
    put(c);
    put(static_cast<uint32_t>(channels_[c].size()));
    for (const Packet& pk : channels_[c]) {
      uint8_t header[kHeaderSize];
      EncodeHeader(pk.msg, header);
      out->append(reinterpret_cast<const char*>(header), kHeaderSize);
      out->push_back(
          static_cast<char>(value_class(pk.msg.page, true, pk.data)));
      if (config_.answer_lanes) {
        // Relative to what the receiver took, so states that differ only
        // in how many answers went before are one.
        const uint64_t taken = answers_taken_[pk.from * N() + pk.to];
        put(pk.lane_seq != 0 ? pk.lane_seq - taken
                             : (pk.after > taken ? pk.after - taken : 0));
      }
      for (uint32_t i = 0; i < pk.run_data.size(); ++i) {
        out->push_back(static_cast<char>(
            value_class(pk.msg.page + i, true, pk.run_data[i])));
      }
      if (pk.report) {
        put(pk.report->range);
        out->push_back(pk.report->last);
        for (const ReportEntry& e : pk.report->entries) {
          put(e.offset);
          out->push_back(static_cast<char>(e.state));
        }
      }
    }
  }
  if (config_.answer_lanes) {
    out->push_back('A');
    for (uint32_t pair = 0; pair < answers_sent_.size(); ++pair) {
      put(answers_sent_[pair] - answers_taken_[pair]);
      put(static_cast<uint32_t>(answers_ahead_[pair].size()));
      for (uint64_t seq : answers_ahead_[pair]) {
        put(seq - answers_taken_[pair]);
      }
    }
  }
  out->push_back('F');
  for (const FetchOp& f : fetches_) {
    put(f.node);
    put(f.page);
    put(f.source);
  }
  out->push_back('R');
  for (const DeferredMsg& d : deferred_) {
    put(d.node);
    put(d.from);
    uint8_t header[kHeaderSize];
    EncodeHeader(d.msg, header);
    out->append(reinterpret_cast<const char*>(header), kHeaderSize);
  }
  out->push_back('Z');
  for (const LateEffect& l : late_) {
    put(l.node);
    out->push_back(static_cast<char>(l.effect.type));
    put(l.effect.page);
  }
  out->push_back('N');
  for (const Notice& n : notices_) {
    put(n.node);
    put(n.dead);
  }
  for (PageId p = 0; p < pages_; ++p) out->push_back(doomed_[p] ? 1 : 0);
  put(crashes_);
}

}  // namespace ssihv::directory::sim::internal
