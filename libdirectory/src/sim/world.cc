#include "sim/world.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ssihv::directory::sim::internal {
namespace {

const char* AccessName(Access a) {
  return a == Access::kRead ? "read" : "write";
}

bool Completes(EffectType t) {
  return t == EffectType::kMapReceived || t == EffectType::kMapFetched ||
         t == EffectType::kMakeWritable || t == EffectType::kPageLost ||
         t == EffectType::kRetry;
}

}  // namespace

World::World(const Config& config, const PageSpace& space,
             std::vector<Node> nodes, Rng* rng)
    : config_(config),
      space_(space),
      pages_(space.num_pages()),
      nodes_(std::move(nodes)),
      rng_(rng),
      dead_(nodes_.size(), false),
      frames_(nodes_.size() * space.num_pages()),
      latest_(space.num_pages(), 0),
      doomed_(space.num_pages(), false),
      channels_(nodes_.size() * nodes_.size() * (Lanes() ? 1 + kLanes : 1)),
      answers_sent_(nodes_.size() * nodes_.size(), 0),
      answers_taken_(nodes_.size() * nodes_.size(), 0),
      answers_ahead_(nodes_.size() * nodes_.size()),
      trace_(config.trace_lines) {
  // Initially every page is Modified at its home: the home's frame holds
  // the (all-zero) page, unmapped until first touched.
  for (PageId p = 0; p < pages_; ++p) {
    frame(space.StaticHomeOf(p), p).valid = true;
  }
  for (NodeId n = 0; n < N(); ++n) {
    for (uint32_t t = 0; t < config.threads; ++t) {
      ThreadState ts;
      ts.node = n;
      threads_.push_back(ts);
    }
  }
}

uint64_t World::Delay() {
  if (rng_ == nullptr || calm_) return 0;
  uint64_t d = config_.reorder ? rng_->Below(20) : 0;
  // A lost frame is retransmitted after a timeout; the channel stays FIFO,
  // so everything behind it waits too (head-of-line), as on TCP or RC.
  if (config_.drop && rng_->Percent(4)) d += 40 + rng_->Below(120);
  return d;
}

void World::SetCalm() {
  calm_ = true;
  calm_step_ = step_;
  for (auto& ch : channels_) {
    for (Packet& p : ch) p.ready = 0;
  }
  for (FetchOp& f : fetches_) f.ready = 0;
  for (Notice& n : notices_) n.ready = 0;
}

bool World::CanCrash() const {
  uint32_t max = config_.max_crashes != 0 ? config_.max_crashes
                                          : std::min<uint32_t>(2, N() - 1);
  uint32_t live = 0;
  for (bool d : dead_) live += d ? 0 : 1;
  return config_.crash && crashes_ < max && live > 1;
}

void World::Enabled(bool timed, std::vector<Event>* out) const {
  for (uint32_t t = 0; t < threads_.size(); ++t) {
    const ThreadState& ts = threads_[t];
    if (dead_[ts.node] || ts.blocked || ts.completed >= config_.ops) continue;
    if (ts.has_op || !ops_.empty()) {
      out->push_back({EventKind::kThread, t, {}, false});
    } else {
      // Exhaustive mode: every possible next operation is a branch.
      for (PageId p = 0; p < pages_; ++p) {
        for (Access a : {Access::kRead, Access::kWrite}) {
          out->push_back({EventKind::kThread, t, Op{a, p}, false});
        }
      }
    }
  }
  for (uint32_t c = 0; c < channels_.size(); ++c) {
    if (!channels_[c].empty() &&
        (!timed || channels_[c].front().ready <= now_) &&
        !Waits(channels_[c].front())) {
      out->push_back({EventKind::kDeliver, c, {}, false});
    }
  }
  for (uint32_t i = 0; i < fetches_.size(); ++i) {
    if (timed && fetches_[i].ready > now_) continue;
    out->push_back({EventKind::kFetch, i, {}, fetches_[i].fail});
    // Exhaustive mode with drops: the transport may fail any fetch.
    if (rng_ == nullptr && config_.drop && !fetches_[i].fail) {
      out->push_back({EventKind::kFetch, i, {}, true});
    }
  }
  for (uint32_t i = 0; i < notices_.size(); ++i) {
    if (!timed || notices_[i].ready <= now_) {
      out->push_back({EventKind::kNotice, i, {}, false});
    }
  }
  for (uint32_t i = 0; i < late_.size(); ++i) {
    out->push_back({EventKind::kLate, i, {}, false});
  }
  for (uint32_t i = 0; i < deferred_.size(); ++i) {
    if (HoldOver(deferred_[i].node, deferred_[i].msg.page)) {
      out->push_back({EventKind::kRedeliver, i, {}, false});
    }
  }
  if (config_.downgrade && !Finished()) {
    for (NodeId n = 0; n < N(); ++n) {
      if (dead_[n]) continue;
      for (PageId p = 0; p < pages_; ++p) {
        if (nodes_[n].CanDowngrade(p)) {
          out->push_back(
              {EventKind::kDowngrade, n, Op{Access::kRead, p}, false});
        }
      }
    }
  }
  if (rng_ == nullptr && CanCrash()) {
    for (NodeId n = 0; n < N(); ++n) {
      if (!dead_[n]) out->push_back({EventKind::kCrash, n, {}, false});
    }
  }
}

uint64_t World::NextReady() const {
  uint64_t t = std::numeric_limits<uint64_t>::max();
  for (const auto& ch : channels_) {
    // A head that waits for lane answers is taken after one of them, which
    // has its own time.
    if (!ch.empty() && !Waits(ch.front())) t = std::min(t, ch.front().ready);
  }
  for (const FetchOp& f : fetches_) t = std::min(t, f.ready);
  for (const Notice& n : notices_) t = std::min(t, n.ready);
  return t;
}

bool World::Finished() const {
  for (const ThreadState& ts : threads_) {
    if (!dead_[ts.node] && ts.completed < config_.ops) return false;
  }
  for (const auto& ch : channels_) {
    if (!ch.empty()) return false;
  }
  return fetches_.empty() && notices_.empty() && deferred_.empty() &&
         late_.empty();
}

// A hold lasts until the thread woken by the grant has used the page.
bool World::HoldOver(NodeId n, PageId p) const {
  for (const ThreadState& ts : threads_) {
    if (ts.node == n && ts.woken && ts.op.page == p) return false;
  }
  return true;
}

std::string World::DescribeEvent(const Event& e) const {
  switch (e.kind) {
    case EventKind::kThread: {
      const ThreadState& ts = threads_[e.index];
      Op op = ts.has_op ? ts.op
                        : (ops_.empty() ? e.op : ops_[e.index][ts.completed]);
      return absl::StrCat("n", ts.node, ".t", e.index, " ",
                          AccessName(op.access), " p", op.page,
                          ts.has_op ? " (retry)" : "");
    }
    case EventKind::kDeliver: {
      const Packet& p = channels_[e.index].front();
      std::string s = absl::StrCat("deliver n", p.from, "->n", p.to, " ");
      if (p.report) {
        absl::StrAppend(&s, "Report range ", p.report->range, " (",
                        p.report->entries.size(), " entries",
                        p.report->last ? ", last" : "", ")");
      } else {
        absl::StrAppend(&s, MsgTypeName(p.msg.type), " p", p.msg.page);
        if (p.msg.node != kNoNode) absl::StrAppend(&s, " node=", p.msg.node);
        if (p.msg.flags) absl::StrAppend(&s, " flags=", p.msg.flags);
        if (p.msg.type == MsgType::kData)
          absl::StrAppend(&s, " value=", p.data);
        if (p.msg.is_run()) absl::StrAppend(&s, " pages=", p.msg.pages());
        if (p.msg.type == MsgType::kDataRun) {
          absl::StrAppend(&s, " values=", absl::StrJoin(p.run_data, ","));
        }
      }
      if (dead_[p.to]) s += " (to a dead node: dropped)";
      return s;
    }
    case EventKind::kFetch: {
      const FetchOp& f = fetches_[e.index];
      return absl::StrCat("fetch by n", f.node, " of p", f.page, " from n",
                          f.source, e.fail ? " fails" : "");
    }
    case EventKind::kCrash:
      return absl::StrCat("CRASH n", e.index);
    case EventKind::kNotice: {
      const Notice& n = notices_[e.index];
      return absl::StrCat("n", n.node, " learns n", n.dead, " died");
    }
    case EventKind::kRedeliver: {
      const DeferredMsg& d = deferred_[e.index];
      return absl::StrCat("n", d.node, " takes back deferred ",
                          MsgTypeName(d.msg.type), " p", d.msg.page, " from n",
                          d.from);
    }
    case EventKind::kLate: {
      const LateEffect& l = late_[e.index];
      return absl::StrCat("n", l.node, " performs late ", l.effect.ToString());
    }
    case EventKind::kDowngrade:
      return absl::StrCat("n", e.index, " downgrades p", e.op.page);
  }
  return "?";
}

void World::Record(std::string event) {
  if (trace_.empty()) return;
  TraceRecord& r = trace_[trace_next_];
  trace_next_ = (trace_next_ + 1) % trace_.size();
  r.step = step_;
  r.event = std::move(event);
  r.effects = out_.effects;
  r.reports.clear();
}

std::string World::FormatTrace(size_t lines) const {
  std::string s;
  size_t n = std::min(lines, trace_.size());
  for (size_t i = 0; i < n; ++i) {
    const TraceRecord& r =
        trace_[(trace_next_ + trace_.size() - n + i) % trace_.size()];
    if (r.event.empty()) continue;
    absl::StrAppend(&s, "  #", r.step, " ", r.event);
    for (const Effect& e : r.effects) {
      absl::StrAppend(&s, "\n        ", e.ToString());
    }
    s += "\n";
  }
  return s;
}

void World::Fail(const std::string& invariant, const std::string& detail) {
  if (failed_) return;
  failed_ = true;
  violation_.invariant = invariant;
  violation_.detail = detail;
}

bool World::Check(absl::Status status, NodeId n, const std::string& what) {
  if (status.ok()) return true;
  Fail("protocol-error",
       absl::StrCat("n", n, " ", what, ": ", status.ToString()));
  return false;
}

void World::Apply(const Event& e) {
  ++step_;
  lost_declared_.clear();
  std::string what = trace_.empty() ? std::string() : DescribeEvent(e);
  out_.Clear();
  switch (e.kind) {
    case EventKind::kThread:
      StepThread(e.index, e.op);
      break;
    case EventKind::kDeliver:
      Deliver(e.index);
      break;
    case EventKind::kFetch:
      CompleteFetch(e.index, e.fail);
      break;
    case EventKind::kCrash:
      Crash(e.index);
      break;
    case EventKind::kNotice:
      Notify(e.index);
      break;
    case EventKind::kRedeliver:
      Redeliver(e.index);
      break;
    case EventKind::kLate:
      ApplyLate(e.index);
      break;
    case EventKind::kDowngrade:
      Downgrade(e.index, e.op.page);
      break;
  }
  Record(std::move(what));
  if (!failed_) CheckInvariants();
}

void World::StepThread(uint32_t t, const Op& chosen) {
  ThreadState& ts = threads_[t];
  NodeId n = ts.node;
  if (!ts.has_op) {
    ts.op = ops_.empty() ? chosen : ops_[t][ts.completed];
    ts.has_op = true;
  }
  ts.blocked = false;
  ts.woken = false;
  PageId p = ts.op.page;
  bool write = ts.op.access == Access::kWrite;
  for (int attempt = 0; attempt < 3; ++attempt) {
    Frame& f = frame(n, p);
    if (f.prot >= (write ? 2 : 1)) {
      if (write) {
        f.value = next_value_++;
        latest_[p] = f.value;
        ++writes_;
      } else {
        ++reads_;
        if (f.value != latest_[p]) {
          Fail("data-value",
               absl::StrCat("n", n, " read p", p, " = ", f.value,
                            " but the latest write stored ", latest_[p]));
        }
      }
      FaultDone(ts);
      return;
    }
    if (attempt == 2) {
      Fail("protocol-error",
           absl::StrCat("n", n, " resolved fault did not grant ",
                        AccessName(ts.op.access), " of p", p));
      return;
    }
    if (ts.fault_step == 0) ts.fault_step = step_;
    out_.Clear();
    if (!Check(nodes_[n].OnFault(p, ts.op.access, &out_), n, "OnFault")) return;
    Perform(n, nullptr, 0);
    bool wait = false, retry = false;
    for (const Effect& eff : out_.effects) {
      if (eff.page != p || eff.type == EffectType::kSend) continue;
      if (eff.type == EffectType::kPageLost) {
        ts.blocked = false;
        ++lost_ops_;
        FaultDone(ts);
        return;
      }
      if (eff.type == EffectType::kWait) wait = true;
      if (eff.type == EffectType::kMapLocal || Completes(eff.type))
        retry = true;
    }
    if (retry) continue;
    if (wait) {
      ts.blocked = true;
      RequestRun(n, p, write);
      return;
    }
    Fail("protocol-error",
         absl::StrCat("n", n, " fault on p", p, " got no resolution"));
    return;
  }
}

void World::Downgrade(NodeId n, PageId p) {
  if (!nodes_[n].Downgrade(p, &out_)) {
    Fail("protocol-error", absl::StrCat("n", n, " refused the downgrade of p",
                                        p, " it said it could do"));
    return;
  }
  Perform(n, nullptr, 0);
}

void World::RequestRun(NodeId n, PageId p, bool write) {
  if (config_.run_pages == 0 || p + 1 >= pages_) return;
  const size_t start = out_.effects.size();
  uint32_t requested = 0;
  if (!Check(nodes_[n].RequestRun(p + 1, config_.run_pages, &out_, &requested,
                                  write),
             n, "RequestRun")) {
    return;
  }
  Perform(n, nullptr, 0, start);
}

void World::FaultDone(ThreadState& ts) {
  if (calm_ && ts.fault_step != 0) {
    max_calm_wait_ =
        std::max(max_calm_wait_, step_ - std::max(ts.fault_step, calm_step_));
  }
  ts.has_op = false;
  ts.woken = false;
  ++ts.completed;
  ts.fault_step = 0;
}

void World::Deliver(uint32_t c) {
  Packet pk = std::move(channels_[c].front());
  channels_[c].pop_front();
  if (pk.lane_seq != 0) TakeAnswer(pk.from * N() + pk.to, pk.lane_seq);
  if (dead_[pk.to]) return;  // a crashed node receives nothing
  if (!pk.report && pk.msg.type == MsgType::kReadRun) {
    // As the DSM engine does: a run finds the holds that are over ended.
    for (PageId p = pk.msg.page; p < pk.msg.page + pk.msg.pages(); ++p) {
      if (HoldOver(pk.to, p)) nodes_[pk.to].EndHold(p);
    }
  }
  absl::Status s = pk.report
                       ? nodes_[pk.to].OnReport(pk.from, *pk.report, &out_)
                       : nodes_[pk.to].OnMessage(pk.from, pk.msg, &out_);
  if (!Check(s, pk.to,
             absl::StrCat("receiving ",
                          pk.report ? "Report" : MsgTypeName(pk.msg.type),
                          " from n", pk.from))) {
    return;
  }
  Perform(pk.to, &pk, 0);
}

void World::CompleteFetch(uint32_t index, bool fail) {
  FetchOp f = fetches_[index];
  fetches_.erase(fetches_.begin() + index);
  if (dead_[f.node]) return;
  bool ok = !fail && !dead_[f.source];
  // A one-sided read returns whatever the source frame holds now: if the
  // protocol let it change, the requester maps the wrong bytes.
  const Frame& src = frame(f.source, f.page);
  uint64_t value = src.valid ? src.value : kGarbage;
  if (!Check(nodes_[f.node].OnFetchDone(f.page, ok, &out_), f.node,
             "OnFetchDone")) {
    return;
  }
  Perform(f.node, nullptr, value);
}

void World::Crash(NodeId n) {
  dead_[n] = true;
  ++crashes_;
  std::erase_if(fetches_, [n](const FetchOp& f) { return f.node == n; });
  std::erase_if(notices_, [n](const Notice& x) { return x.node == n; });
  std::erase_if(deferred_, [n](const DeferredMsg& d) { return d.node == n; });
  std::erase_if(late_, [n](const LateEffect& l) { return l.node == n; });
  if (rng_ != nullptr) {
    // What the dead node had not yet put on the wire is lost: a random
    // suffix of each of its outgoing channels.
    for (uint32_t c = 0; c < channels_.size(); ++c) {
      if ((c % (N() * N())) / N() != n) continue;  // not from n
      auto& ch = channels_[c];
      size_t keep = ch.empty() ? 0 : rng_->Below(ch.size() + 1);
      ch.resize(keep);
    }
  }
  for (NodeId x = 0; x < N(); ++x) {
    if (dead_[x]) continue;
    uint64_t delay = rng_ != nullptr && !calm_ ? 1 + rng_->Below(40) : 0;
    notices_.push_back({x, n, now_ + delay});
  }
}

void World::Notify(uint32_t index) {
  Notice notice = notices_[index];
  notices_.erase(notices_.begin() + index);
  if (!Check(nodes_[notice.node].OnNodeDead(notice.dead, &out_), notice.node,
             "OnNodeDead")) {
    return;
  }
  Perform(notice.node, nullptr, 0);
}

void World::Redeliver(uint32_t index) {
  DeferredMsg d = deferred_[index];
  deferred_.erase(deferred_.begin() + index);
  if (!Check(nodes_[d.node].Resubmit(d.from, d.msg, &out_), d.node,
             absl::StrCat("taking back deferred ", MsgTypeName(d.msg.type)))) {
    return;
  }
  Perform(d.node, nullptr, 0);
}

void World::Wake(NodeId n, PageId p) {
  for (ThreadState& ts : threads_) {
    if (ts.node == n && ts.has_op && ts.op.page == p) {
      ts.blocked = false;
      ts.woken = true;
    }
  }
}

void World::AttachData(NodeId n, const Effect& e, Packet* pk) {
  const Message& m = e.msg;
  for (PageId p = m.page; p < m.page + m.pages(); ++p) {
    const Frame& f = frame(n, p);
    if (m.carries_page() && !f.valid) {
      Fail("data-value",
           absl::StrCat("n", n, " sends p", p, " without holding its bytes"));
    }
    const uint64_t value = m.carries_page() ? f.value : 0;
    if (m.type == MsgType::kData) {
      pk->data = value;
    } else {
      pk->run_data.push_back(value);
    }
  }
}

void World::Perform(NodeId n, const Packet* in, uint64_t fetched,
                    size_t start) {
  bool sent = false;
  for (size_t i = start; i < out_.effects.size(); ++i) {
    const Effect& e = out_.effects[i];
    if (e.type == EffectType::kSend || e.type == EffectType::kSendReport) {
      Packet pk;
      pk.id = next_id_++;
      pk.from = n;
      pk.to = e.node;
      if (e.type == EffectType::kSendReport) {
        pk.msg.type = MsgType::kReport;
        pk.report = std::make_shared<const ReportChunk>(out_.reports[e.index]);
      } else {
        pk.msg = e.msg;
        if (e.msg.type == MsgType::kData || e.msg.type == MsgType::kDataRun) {
          AttachData(n, e, &pk);
        }
      }
      pk.ready = now_ + Delay();
      const uint32_t c = Route(n, &pk);
      channels_[c].push_back(std::move(pk));
      sent = true;
      continue;
    }
    if (sent && config_.driver_early_send && e.type != EffectType::kDefer) {
      // The buggy driver: the messages are already out; this happens later.
      late_.push_back({n, e});
      continue;
    }
    PerformLocal(n, e, in, fetched);
  }
}

void World::PerformLocal(NodeId n, const Effect& e, const Packet* in,
                         uint64_t fetched) {
  Frame& f = frame(n, e.page);
  switch (e.type) {
    case EffectType::kSend:
    case EffectType::kSendReport:
    case EffectType::kWait:
      break;
    case EffectType::kMapLocal:
      if (!f.valid) {
        Fail("data-value", absl::StrCat("n", n, " maps its local copy of p",
                                        e.page, " but holds none"));
      }
      f.prot = e.writable ? 2 : 1;
      break;
    case EffectType::kMapReceived:
      if (in == nullptr || !in->Carries(e.page)) {
        Fail("protocol-error", "kMapReceived without a kData of its page");
        break;
      }
      f.valid = true;
      f.value = e.zero ? 0 : in->ValueOf(e.page);
      f.prot = e.writable ? 2 : 1;
      break;
    case EffectType::kFetch: {
      if (e.node >= N() || e.node == n) {
        Fail("protocol-error", absl::StrCat("n", n, " told to fetch p", e.page,
                                            " from n", e.node));
        break;
      }
      FetchOp fo;
      fo.id = next_id_++;
      fo.node = n;
      fo.page = e.page;
      fo.source = e.node;
      fo.fail = rng_ != nullptr && config_.drop && rng_->Percent(10);
      fo.ready = now_ + Delay();
      fetches_.push_back(fo);
      break;
    }
    case EffectType::kMapFetched:
      f.valid = true;
      f.value = fetched;
      f.prot = 1;
      break;
    case EffectType::kMakeWritable:
      if (!f.valid) {
        Fail("data-value", absl::StrCat("n", n, " upgrades p", e.page,
                                        " in place but holds no copy"));
      }
      f.prot = 2;
      break;
    case EffectType::kWriteProtect:
      if (f.prot == 2) f.prot = 1;
      break;
    case EffectType::kZap:
      f = Frame{false, 0, kGarbage};
      break;
    case EffectType::kPageLost:
      lost_declared_.push_back(e.page);
      break;
    case EffectType::kDefer:
      deferred_.push_back({n, e.node, e.msg});
      break;
    case EffectType::kRetry:
      break;  // the woken thread faults again
  }
  if (Completes(e.type)) Wake(n, e.page);
}

void World::ApplyLate(uint32_t index) {
  LateEffect late = late_[index];
  late_.erase(late_.begin() + index);
  if (!dead_[late.node]) PerformLocal(late.node, late.effect, nullptr, 0);
}

}  // namespace ssihv::directory::sim::internal
