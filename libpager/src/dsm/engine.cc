#include "dsm/engine.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "clock.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"
#include "ssihv/directory/message.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

dir::Output& ThreadOutput() {
  thread_local dir::Output out;
  out.Clear();
  return out;
}

namespace {

alignas(4096) const uint8_t kZeroPage[kPageSize] = {};

/// The staging area of each thread's outgoing frames (see Execute).
DsmEngine::StagedFrames& ThreadFrames() {
  thread_local DsmEngine::StagedFrames frames;
  return frames;
}

/// The PageSource the pager calls: forwards to the engine.
class DsmSource final : public PageSource {
 public:
  explicit DsmSource(DsmEngine* engine) : engine_(engine) {}
  void OnFault(const Fault& fault, Resolver& resolver) override {
    engine_->HandleFault(fault, resolver);
  }
  std::string_view name() const override { return "dsm"; }

 private:
  DsmEngine* engine_;
};

}  // namespace

DsmEngine::DsmEngine(const cluster::ClusterConfig& config, uint32_t self,
                     DsmOptions options)
    : config_(config),
      layout_(config_),
      self_(self),
      options_(std::move(options)) {}

DsmEngine::~DsmEngine() { Stop(); }

absl::StatusOr<std::unique_ptr<DsmEngine>> DsmEngine::Create(
    const cluster::ClusterConfig& config, uint32_t self,
    std::unique_ptr<rdmax::Transport> transport, DsmOptions options) {
  if (self >= config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DsmNode: self=", self, " is not a node of the cluster (",
                     config.num_nodes(), " nodes)"));
  }
  if (transport == nullptr || transport->self() != self) {
    return absl::InvalidArgumentError(
        absl::StrCat("DsmNode: the transport must be node ", self, "'s"));
  }
  std::unique_ptr<DsmEngine> e(new DsmEngine(config, self, std::move(options)));
  SSIHV_ASSIGN_OR_RETURN(dir::PageSpace space,
                         dir::PageSpace::FromLayout(e->layout_));
  e->space_.emplace(space);
  // No one-sided pulls: guest RAM is anonymous memory, which must not be an
  // RDMA MR (docs/PAGER.md, "Remote reads"); page bytes travel in kData.
  dir::Node::Options node_options;
  node_options.allow_pull = false;
  SSIHV_ASSIGN_OR_RETURN(dir::Node node,
                         dir::Node::Create(space, self, node_options));
  e->node_.emplace(std::move(node));
  SSIHV_ASSIGN_OR_RETURN(e->memory_,
                         GuestMemory::Create(e->layout_.ram_bytes()));

  PagerOptions pager_options;
  pager_options.fault_threads = e->options_.fault_threads;
  pager_options.thread_nice = e->options_.service_nice;
  // The node's own zaps are the only discards of its RAM (docs/PAGER.md,
  // "Limits"), and it needs no event for them: without REMOVE events each
  // zap is one madvise, not a madvise that waits for a fault thread to read
  // the event (the invalidation of every upgrade pays it), and fault
  // threads may sleep on page locks (page_locks.h).
  pager_options.remove_events = false;
  DsmEngine* raw = e.get();
  pager_options.on_error = [raw](const absl::Status& st) { raw->Error(st); };
  SSIHV_ASSIGN_OR_RETURN(e->pager_, Pager::Create(std::move(pager_options)));
  for (const cluster::GpaRange& r : e->layout_.ranges()) {
    SSIHV_RETURN_IF_ERROR(e->pager_->RegisterGuestMemory(
        e->memory_, r.ram_offset, r.size, r.gpa));
  }
  SSIHV_RETURN_IF_ERROR(e->pager_->SetSource(std::make_shared<DsmSource>(raw)));

  const uint64_t pages = space.num_pages();
  e->populated_.reset(new std::atomic<uint64_t>[(pages + 63) / 64]());
  e->served_.reset(new std::atomic<uint64_t>[2 * config.num_nodes()]());
  e->waiters_.reset(new WaitMap[dsm::PageLocks::kStripes]);
  e->grant_ns_.reset(new int64_t[dsm::PageLocks::kStripes]());
  e->locks_ = std::make_unique<dsm::PageLocks>();
  e->read_ahead_ =
      std::make_unique<dsm::ReadAhead>(e->options_.read_ahead_pages);
  e->held_ = std::make_unique<dsm::HeldPages>(kHeldMarkers);
  e->refresh_ = std::make_unique<dsm::ReadRefresh>(e->options_.read_refresh);
  const uint32_t max_bytes = transport->max_message_bytes();
  constexpr uint64_t kFrameHeader = kStampBytes + dir::kHeaderSize;
  e->run_pages_ = static_cast<uint32_t>(std::clamp<uint64_t>(
      max_bytes > kFrameHeader ? (max_bytes - kFrameHeader) / kPageSize : 0, 1,
      kDsmMaxRunPages));
  e->hold_ = std::make_unique<dsm::GrantHold>(
      absl::ToInt64Nanoseconds(e->options_.grant_hold),
      absl::ToInt64Nanoseconds(e->options_.max_grant_hold));
  e->downgrade_ = std::make_unique<dsm::BackgroundDowngrade>(
      space.FirstPageOf(self), space.PageCountOf(self),
      absl::ToInt64Nanoseconds(e->options_.background_downgrade));
  e->transport_ = std::move(transport);
  e->outbox_ = std::make_unique<dsm::Outbox>(
      e->transport_.get(), kDsmFrameType, config.num_nodes(),
      e->options_.service_nice,
      [raw](const absl::Status& st) { raw->Error(st); });
  e->transport_->SetMessageHandler(
      [raw](const rdmax::Message& m) { raw->Dispatch(m); });
  // TCP and RDMA serve lane calls; the in-process loopback has no lanes.
  e->lanes_ = e->options_.answer_lanes &&
              e->transport_->kind() != rdmax::BackendKind::kLoopback;
  e->lane_answers_sent_.reset(new std::atomic<uint64_t>[config.num_nodes()]());
  e->lane_calls_to_.reset(new std::atomic<uint64_t>[config.num_nodes()]());
  e->answer_order_.reset(new dsm::AnswerOrder[config.num_nodes()]);
  e->transport_->SetLaneHandler(
      [raw](const rdmax::Message& m) { return raw->ServeLane(m); });
  e->transport_->SetPeerHandler(
      [raw](rdmax::NodeId peer, rdmax::PeerState state) {
        if (state == rdmax::PeerState::kDown && raw->started_) {
          base::Log(base::LogLevel::kWarning, "dsm node ", raw->self_,
                    ": lost the connection to node ", peer);
        }
        if (raw->options_.peer_handler) raw->options_.peer_handler(peer, state);
      });
  return e;
}

absl::Status DsmEngine::Start() {
  if (started_) return absl::OkStatus();
  SSIHV_RETURN_IF_ERROR(pager_->Start());
  outbox_->Start();
  defer_stop_ = false;
  deferrer_ = std::thread([this] { DeferLoop(); });
  base::NameThread(deferrer_, "dsm-defer");
  started_ = true;
  SSIHV_RETURN_IF_ERROR(transport_->Start());
  return transport_->WaitForAllPeers(absl::Now() + options_.connect_timeout);
}

void DsmEngine::Stop() {
  if (!started_) return;
  started_ = false;
  transport_->Shutdown();
  {
    std::lock_guard<std::mutex> lock(defer_mu_);
    defer_stop_ = true;
  }
  defer_cv_.notify_all();
  deferrer_.join();
  outbox_->Stop();
  pager_->Stop();
}

uint8_t* DsmEngine::HostAddress(uint64_t gpa) const {
  std::optional<dir::PageId> page = space_->PageOfGpa(gpa);
  if (!page) return nullptr;
  return HostOf(*page) + (gpa % kPageSize);
}

// A lost page (DataLoss: its only copy died with a node) is reported but
// does not stop the node: its faults stay unresolved, every other page
// keeps working and the node keeps taking part in recovery, which the other
// survivors wait for. Whether to stop the guest is the owner's decision.
// Anything else (a protocol error, a frame that could not be sent) leaves
// the node's state unknown: it stops serving.
// A dead node can take thousands of pages with it, each reported here: the
// first few are logged one by one, then a count at every power of two, so
// the log keeps what came before the death readable.
void DsmEngine::Error(const absl::Status& st) {
  if (!absl::IsDataLoss(st)) {
    failed_.store(true, std::memory_order_release);
    base::Log(base::LogLevel::kError, "dsm node ", self_, ": ", st.ToString());
  } else {
    constexpr uint64_t kLoggedOneByOne = 8;
    const uint64_t n =
        lost_pages_logged_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n <= kLoggedOneByOne) {
      base::Log(base::LogLevel::kError, "dsm node ", self_, ": ",
                st.ToString());
    } else if ((n & (n - 1)) == 0) {
      base::Log(base::LogLevel::kError, "dsm node ", self_, ": ", n,
                " lost-page errors so far; the latest: ", st.ToString());
    }
  }
  if (options_.on_error) options_.on_error(st);
}

void DsmEngine::SetPopulated(dir::PageId page, bool on) {
  const uint64_t bit = uint64_t{1} << (page % 64);
  if (on) {
    populated_[page / 64].fetch_or(bit, std::memory_order_release);
  } else {
    populated_[page / 64].fetch_and(~bit, std::memory_order_release);
  }
}

// ---- entry points ---------------------------------------------------------

void DsmEngine::HandleFault(const Fault& fault, Resolver& resolver) {
  std::optional<dir::PageId> page = space_->PageOfGpa(fault.gpa);
  if (!page) {
    resolver.Fail(fault, absl::InternalError("fault outside the page space"));
    return;
  }
  if (failed_.load(std::memory_order_acquire)) {
    resolver.Fail(fault, absl::AbortedError("the DSM node has failed"));
    return;
  }
  const dir::Access access =
      fault.is_write() ? dir::Access::kWrite : dir::Access::kRead;
  Ctx ctx;
  ctx.fault = &fault;
  absl::Status st;
  {
    dsm::PageGuard guard(*locks_, *page);
    if (!ServeHeld(*page, ctx, &st)) {
      dir::Output& out = ThreadOutput();
      st = node_->OnFault(*page, access, &out);
      if (st.ok()) st = Execute(out, ctx);
    }
  }
  if (st.ok() && !ctx.fault_done) {
    st = absl::InternalError(absl::StrCat(
        "the protocol left the fault on page ", *page, " unanswered"));
  }
  if (!st.ok()) {
    if (ctx.fault_done) {
      Error(st);
    } else {
      resolver.Fail(fault, st);  // reports through the pager's on_error
    }
    return;
  }
  // After this page's request was staged (or a held marker was mapped):
  // the next ones of a sequential walk, before this thread waits for its
  // own answer on a lane.
  if (access == dir::Access::kRead && (ctx.parked || ctx.held_marker)) {
    RequestAhead(*page);
  }
  // The request Execute set aside leaves now that the lock is free: the
  // home's answer, read on the lane, takes page locks here.
  if (ctx.lane_request) CallHome(ctx.lane_to);
  if (access == dir::Access::kRead && ctx.parked &&
      space_->StaticHomeOf(*page) != self_) {
    refresh_->OnRemoteRead(*page, MonotonicNs());
  }
  RefreshAfter(ctx);  // an Inv a hold had deferred, resubmitted here
  if (ctx.first_touch) FillAroundLocal(*page, resolver);
  if (ctx.parked) FlushStrandedHeld();
}

// Local fault-around: a guest that walks memory it holds (a booting kernel
// decompressing, initialising struct pages, zeroing allocations) would take
// one fault per page. After the faulting thread resumed, the other pages of
// the fault's aligned block that this node holds Modified and has never
// mapped are mapped (zeros) too. Each goes through the protocol as a local
// write fault would, under its page lock: the node agent then knows the page
// is no longer pristine (so a request for it ships the page's bytes, not
// kFlagZero), and a Modified page's write fault needs no message.
void DsmEngine::FillAroundLocal(dir::PageId page, Resolver& resolver) {
  const uint64_t block = options_.local_fault_around_pages;
  if (block < 2) return;
  const dir::PageId first = page & ~(block - 1);
  const dir::PageId end =
      std::min<dir::PageId>(first + block, space_->num_pages());
  for (dir::PageId q = first; q < end; ++q) {
    if (q == page || Populated(q)) continue;
    dsm::PageGuard guard(*locks_, q);
    if (Populated(q) ||
        node_->node_agent().StateOf(q) != dir::PageState::kModified) {
      continue;
    }
    dir::Output& out = ThreadOutput();
    absl::Status st = node_->OnFault(q, dir::Access::kWrite, &out);
    if (st.ok() && (out.effects.size() != 1 ||
                    out.effects[0].type != dir::EffectType::kMapLocal ||
                    !out.effects[0].writable)) {
      st = absl::InternalError(absl::StrCat(
          "fault-around of page ", q,
          ": the protocol did not answer a Modified page's write fault "
          "with a local writable mapping"));
    }
    if (st.ok()) st = resolver.ZeroFillRange(GpaOf(q), kPageSize).status();
    if (!st.ok()) {
      Error(st);
      return;
    }
    SetPopulated(q, true);
    GrantTime(q) = MonotonicNs();
  }
}

// The DSM's frames go to the protocol; anything else is the owner's.
void DsmEngine::Dispatch(const rdmax::Message& m) {
  if (m.type == kDsmFrameType && m.request_id == 0) {
    AdmitFrame(m.from, m.payload);
  } else if (m.type != kDsmFrameType && options_.message_handler) {
    options_.message_handler(m);
  } else if (m.request_id != 0) {
    (void)transport_->ReplyError(
        rdmax::ReplyToken::For(m),
        absl::UnimplementedError(absl::StrCat("dsm node ", self_,
                                              ": no handler for requests of "
                                              "type ",
                                              m.type)));
  } else {
    base::Log(base::LogLevel::kWarning, "dsm node ", self_,
              ": dropped a message of type ", m.type, " from node ", m.from,
              " (no DsmOptions::message_handler)");
  }
}

void DsmEngine::HandleMessage(uint32_t from, absl::Span<const uint8_t> payload,
                              bool lane) {
  frames_received_.fetch_add(1, std::memory_order_relaxed);
  if (failed_.load(std::memory_order_acquire)) return;
  absl::StatusOr<dir::DecodedFrame> frame = dir::Decode(payload, *space_);
  if (!frame.ok()) {
    Error(absl::InvalidArgumentError(
        absl::StrCat("malformed DSM frame from node ", from, ": ",
                     frame.status().message())));
    return;
  }
  const dir::MsgType type = frame->msg.type;
  if ((type == dir::MsgType::kReadReq || type == dir::MsgType::kWriteReq ||
       type == dir::MsgType::kReadRun) &&
      from < config_.num_nodes()) {
    // A run counts each page it asks for: they are read requests each.
    served_[2 * from + (type == dir::MsgType::kWriteReq ? 1 : 0)].fetch_add(
        frame->msg.pages(), std::memory_order_relaxed);
  }
  dir::Output& out = ThreadOutput();
  Ctx ctx = Ctx::ForMessage(type);
  if (lane) ctx.lane_from = from;
  ctx.page_bytes = frame->page_bytes;
  ctx.data_first = frame->msg.page;
  absl::Status st;
  if (frame->msg.type == dir::MsgType::kReport) {
    dsm::ExclusiveGuard guard(*locks_);
    st = node_->OnReport(from, frame->report, &out);
    if (st.ok()) st = Execute(out, ctx);
    NoteDeaths();
  } else if (dir::IsExclusive(frame->msg.type)) {
    dsm::ExclusiveGuard guard(*locks_);
    st = node_->OnMessage(from, frame->msg, &out);
    if (st.ok()) st = Execute(out, ctx);
    NoteDeaths();
  } else if (frame->msg.is_run()) {
    // Decode() bounded the run to kMaxRunPages pages of one range.
    dsm::RunGuard guard(*locks_, frame->msg.page, frame->msg.pages());
    if (type == dir::MsgType::kReadRun) EndHoldsOver(frame->msg);
    st = node_->OnMessage(from, frame->msg, &out);
    if (st.ok()) st = Execute(out, ctx);
  } else {
    dsm::PageGuard guard(*locks_, frame->msg.page);
    st = node_->OnMessage(from, frame->msg, &out);
    if (st.ok()) st = Execute(out, ctx);
  }
  if (!st.ok()) {
    Error(absl::Status(
        st.code(),
        absl::StrCat(dir::MsgTypeName(frame->msg.type), " from node ", from,
                     " for page ", frame->msg.page, ": ", st.message())));
    return;
  }
  // After the page's lock was released: the write run behind a first touch,
  // the read refresh behind an invalidation.
  if (ctx.first_touch_remote) RequestWriteRun(*ctx.first_touch_remote);
  RefreshAfter(ctx);
}

absl::Status DsmEngine::DeclareDead(uint32_t node) {
  dsm::ExclusiveGuard guard(*locks_);
  dir::Output& out = ThreadOutput();
  Ctx ctx;
  SSIHV_RETURN_IF_ERROR(node_->OnNodeDead(node, &out));
  outbox_->DropPeer(node);  // the protocol sends it nothing from here on
  NoteDeaths();
  return Execute(out, ctx);
}

// ---- effects --------------------------------------------------------------

// The messages of a call are built where they stand in the effect list (a
// kData copies the page there: after an earlier kWriteProtect, before a
// later kZap) but leave only after the call's last local effect
// (directory/node.h): a holder handing its page over must have dropped its
// copy before the new owner can receive it and write.
absl::Status DsmEngine::Execute(const dir::Output& out, Ctx& ctx) {
  StagedFrames& staged = ThreadFrames();
  staged.Clear();
  for (size_t i = 0; i < out.effects.size();) {
    // A run grant's pages are mapped (requester) or write-protected (home)
    // with one ioctl per contiguous stretch instead of one per page.
    if (const size_t n = RunOfEffects(out.effects, i); n > 1) {
      SSIHV_RETURN_IF_ERROR(ExecuteRun(out.effects, i, n, ctx));
      i += n;
      continue;
    }
    SSIHV_RETURN_IF_ERROR(ExecuteOne(out.effects[i], out, ctx, staged));
    ++i;
  }
  for (const StagedFrames::Frame& f : staged.frames) {
    SendStaged(f.to, absl::MakeSpan(staged.bytes.data() + f.offset, f.length),
               ctx);
  }
  staged.Clear();
  return ResubmitExpired(ctx);
}

absl::Status DsmEngine::ExecuteOne(const dir::Effect& e, const dir::Output& out,
                                   Ctx& ctx, StagedFrames& staged) {
  Resolver& r = pager_->resolver();
  switch (e.type) {
    case dir::EffectType::kSend:
      if (ctx.ahead && !ctx.refreshing &&
          !(e.msg.flags & dir::kFlagWrite)) {  // read-ahead
        ahead_requests_.fetch_add(e.msg.pages(), std::memory_order_relaxed);
      }
      StageMessage(e.node, e.msg, staged);
      return absl::OkStatus();
    case dir::EffectType::kSendReport: {
      std::vector<uint8_t> frame = dir::EncodeReport(out.reports[e.index]);
      staged.Add(e.node, frame.data(), frame.size());
      return absl::OkStatus();
    }
    case dir::EffectType::kMapLocal:
      if (ctx.ahead) return absl::OkStatus();  // valid here already
      return MapLocal(e, ctx);
    case dir::EffectType::kWait:
      if (ctx.ahead) return absl::OkStatus();  // already on its way
      if (ctx.fault == nullptr) {
        return absl::InternalError("kWait outside a fault");
      }
      WaitersOf(e.page)[e.page].push_back(*ctx.fault);
      ctx.fault_done = true;
      ctx.parked = true;
      return absl::OkStatus();
    case dir::EffectType::kMapReceived:
      return MapReceived(e, ctx);
    case dir::EffectType::kMakeWritable:
      SSIHV_RETURN_IF_ERROR(r.Unprotect(GpaOf(e.page), kPageSize));
      CompleteWaiters(e.page, FaultKind::kUpgrade, ctx);
      ScheduleDowngrade(e.page);
      return absl::OkStatus();
    case dir::EffectType::kWriteProtect: {  // a downgrade, for a reader
      const int64_t now = MonotonicNs();
      hold_->OnTaken(e.page, now, /*for_write=*/false);
      downgrade_->OnReadDowngrade(e.page, now);
      return r.WriteProtect(GpaOf(e.page), kPageSize);
    }
    case dir::EffectType::kZap:  // for another node's write
      hold_->OnTaken(e.page, MonotonicNs(), /*for_write=*/true);
      if (held_->Drop(e.page)) {  // a marker no walk reached: stale now
        held_dropped_.fetch_add(1, std::memory_order_relaxed);
        refresh_->OnWasted(e.page);
      }
      if (ctx.invalidation) ctx.invalidated.push_back(e.page);
      // A pristine copy given up by a write run was never mapped here: no
      // madvise (and no REMOVE event) for it.
      if (e.zero && !Populated(e.page)) return absl::OkStatus();
      return Zap(e.page);
    case dir::EffectType::kRetry:
      RetryWaiters(e.page);
      return absl::OkStatus();
    case dir::EffectType::kPageLost: {
      if (ctx.ahead) return absl::OkStatus();  // a real fault reports it
      absl::Status lost = absl::DataLossError(
          absl::StrCat("guest page gpa=0x", absl::Hex(GpaOf(e.page)),
                       " is lost: its only valid copy was on a dead node"));
      FailWaiters(e.page, lost, ctx);
      Error(lost);
      return absl::OkStatus();
    }
    case dir::EffectType::kDefer:
      Defer(e.node, e.msg, ctx);
      return absl::OkStatus();
    case dir::EffectType::kFetch:
    case dir::EffectType::kMapFetched:
      return absl::UnimplementedError(
          "one-sided page pulls are off (allow_pull = false)");
  }
  return absl::InternalError("unknown effect");
}

// The page bytes go with the header in one frame; a page never mapped here
// (never written since start) reads as zeros and travels as kFlagZero.
void DsmEngine::StageMessage(uint32_t to, dir::Message msg,
                             StagedFrames& staged) {
  if (msg.type == dir::MsgType::kDataRun) {
    StageRun(to, msg, staged);
    return;
  }
  alignas(64) uint8_t scratch[kPageSize];
  const uint8_t* bytes =
      msg.carries_page() ? BytesToSend(msg.page, scratch) : nullptr;
  if (msg.type == dir::MsgType::kData && !(msg.flags & dir::kFlagWrite)) {
    downgrade_->OnServed(msg.page);  // a read answered from a Shared copy
  }
  if (msg.carries_page() && bytes == nullptr) {
    msg.flags |= dir::kFlagZero;
    zero_page_sends_.fetch_add(1, std::memory_order_relaxed);
  }
  uint8_t* frame = staged.Add(
      to, nullptr, dir::kHeaderSize + (bytes != nullptr ? kPageSize : 0));
  dir::EncodeHeader(msg, frame);
  if (bytes != nullptr) {
    std::memcpy(frame + dir::kHeaderSize, bytes, kPageSize);
  }
}

// The local copy is valid. A missing page here has never been written (or
// was discarded): it reads as zeros. Read-only zeros are a write-protected
// copy, never the zero page, whose first write would be a silent kernel
// copy-on-write instead of a write-protect fault.
absl::Status DsmEngine::MapLocal(const dir::Effect& e, Ctx& ctx) {
  if (ctx.fault == nullptr)
    return absl::InternalError("kMapLocal outside a fault");
  const Fault& f = *ctx.fault;
  Resolver& r = pager_->resolver();
  absl::Status st;
  if (f.access == FaultAccess::kWriteProtect) {
    st = e.writable ? r.Unprotect(f, FaultKind::kUpgrade)
                    : r.Wake(f.gpa, kPageSize);
  } else if (e.writable) {
    st = r.ZeroFill(f);
    ctx.first_touch = !Populated(e.page);
  } else {
    st = r.Copy(f, kZeroPage, /*read_only=*/true, FaultKind::kLocalZero);
  }
  SetPopulated(e.page, true);
  GrantTime(e.page) = MonotonicNs();
  ctx.fault_done = true;
  return st;
}

absl::Status DsmEngine::Zap(dir::PageId page) {
  zaps_.fetch_add(1, std::memory_order_relaxed);
  SetPopulated(page, false);
  return pager_->resolver().Discard(GpaOf(page), kPageSize);
}

}  // namespace ssihv::pager
