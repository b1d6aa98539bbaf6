// DsmEngine: the implementation behind DsmNode. It drives the protocol's
// Node from two kinds of threads and performs the effects it asks for:
//
// * fault threads (the pager's): OnFault for the faulting page;
// * the transport's data thread: OnMessage for each received frame.
//
// Calls for one page are serialised by a striped page lock held across the
// call and its effects (page_locks.h).
#ifndef SSIHV_PAGER_DSM_ENGINE_H_
#define SSIHV_PAGER_DSM_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "dsm/answer_order.h"
#include "dsm/downgrade.h"
#include "dsm/grant_hold.h"
#include "dsm/held_pages.h"
#include "dsm/outbox.h"
#include "dsm/page_locks.h"
#include "dsm/read_ahead.h"
#include "dsm/read_refresh.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/directory/node.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/pager/pager.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::pager {

/// The Output reused by each thread (cleared): steady-state calls do not
/// allocate.
directory::Output& ThreadOutput();

class DsmEngine {
 public:
  static absl::StatusOr<std::unique_ptr<DsmEngine>> Create(
      const cluster::ClusterConfig& config, uint32_t self,
      std::unique_ptr<rdmax::Transport> transport, DsmOptions options);
  ~DsmEngine();

  absl::Status Start();
  void Stop();

  uint32_t self() const { return self_; }
  const GuestMemory& memory() const { return memory_; }
  uint8_t* HostAddress(uint64_t gpa) const;
  Pager& pager() { return *pager_; }
  rdmax::Transport& transport() { return *transport_; }
  absl::Status DeclareDead(uint32_t node);
  nlohmann::json StatsJson() const;
  // Inspection for the control API (inspect.cc).
  absl::StatusOr<DsmPageView> InspectPage(uint64_t gpa) const;
  std::array<uint64_t, 4> PagesByState() const;
  std::vector<DsmRequestsServed> RequestsServed() const;
  std::vector<DsmPageTraffic> HottestPages(size_t n) const;
  uint64_t PagesLost() const { return node_->Stats().pages_lost; }

  // PageSource entry points (fault threads).
  void HandleFault(const Fault& fault, Resolver& resolver);

 private:
  /// What the effects of one call refer to.
  struct Ctx {
    const Fault* fault = nullptr;  // the fault of an OnFault call
    bool fault_done = false;       // resolved, parked or failed
    bool parked = false;           // the fault waits for the network
    bool ahead = false;            // a read-ahead request: no thread faulted
    bool refreshing = false;       // ahead, for read refresh
    // A remote write miss answered with zeros (kFlagZero): a first touch
    // of memory homed elsewhere; write runs follow it.
    std::optional<directory::PageId> first_touch_remote;
    bool first_touch = false;   // a page held Modified here, mapped for the
                                // first time (zeros): fault-around applies
    bool held_marker = false;   // the fault mapped a held read-ahead marker
    bool invalidation = false;  // the call handles an Inv (another's write)
    // Shared copies an Inv took in this call: read refresh considers them
    // once the page locks are released (RefreshAfter).
    std::vector<directory::PageId> invalidated;
    absl::Span<const uint8_t> page_bytes;  // kData/kDataRun payload
    directory::PageId data_first = 0;      // the page its bytes start with
    // Answer lanes (lanes.cc). Home: the call serves a lane request from
    // this node; its answer goes back on the lane (lane_answered).
    uint32_t lane_from = kNoLane;
    bool lane_answered = false;
    // Requester: the fault's request, set aside for a lane call once the
    // page lock is released (to lane_to).
    bool lane_request = false;
    uint32_t lane_to = 0;
    // kDefer'd messages whose hold had already expired: resubmitted right
    // after this call's effects, under the same page lock.
    std::vector<std::pair<uint32_t, directory::Message>> resubmit;

    /// The context of a protocol call that handles a message of `type`
    /// (received, deferred or resubmitted alike).
    static Ctx ForMessage(directory::MsgType type) {
      Ctx ctx;
      ctx.invalidation = type == directory::MsgType::kInv;
      return ctx;
    }
  };
  static constexpr uint32_t kNoLane = ~uint32_t{0};
  /// Faults parked on pages of one stripe (guarded by the stripe lock).
  using WaitMap = std::unordered_map<directory::PageId, std::vector<Fault>>;

  DsmEngine(const cluster::ClusterConfig& config, uint32_t self,
            DsmOptions options);

 public:
  /// Every DSM frame starts with a stamp (lanes.cc): on a lane answer its
  /// number, on a main-connection frame how many answers its sender had
  /// put on lanes to the receiver by then; zero on a lane request.
  static constexpr size_t kStampBytes = 8;
  /// A call's outgoing frames, built in effect order, sent after its last
  /// local effect (one arena per thread: no allocation in steady state).
  struct StagedFrames {
    struct Frame {
      uint32_t to;
      size_t offset;
      size_t length;
    };
    /// The arena; only its first `used` bytes are frames. It never shrinks,
    /// so in steady state Add neither allocates nor zero-fills (a page
    /// frame's 4 KiB would be cleared only to be overwritten).
    std::vector<uint8_t> bytes;
    size_t used = 0;
    std::vector<Frame> frames;
    void Clear() {
      used = 0;
      frames.clear();
    }
    /// Appends a frame of `length` bytes (copied from `data` if given)
    /// behind room for its stamp and returns where it lies (valid until
    /// the next Add).
    uint8_t* Add(uint32_t to, const uint8_t* data, size_t length) {
      const size_t offset = used;
      used = offset + kStampBytes + length;
      if (bytes.size() < used) bytes.resize(used);
      uint8_t* frame = bytes.data() + offset + kStampBytes;
      if (data != nullptr) std::memcpy(frame, data, length);
      frames.push_back({to, offset, kStampBytes + length});
      return frame;
    }
  };

 private:
  void Dispatch(const rdmax::Message& m);
  /// After a remote read fault on `page` (read_ahead.cc): requests the
  /// pages the read-ahead policy asks for.
  void RequestAhead(directory::PageId page);
  /// After a first touch of remote `page` (read_ahead.cc): asks for the
  /// following pages of its home's range with one write run.
  void RequestWriteRun(directory::PageId page);
  /// Both: one run request of up to `max` pages from `first`.
  absl::Status RequestRunAhead(directory::PageId first, uint32_t max,
                               bool write, uint32_t* requested,
                               bool refreshing = false);
  void FillAroundLocal(directory::PageId page, Resolver& resolver);
  /// No lock held, after a call whose Inv took `ctx.invalidated`: asks
  /// again for the pages read refresh says are read after each write
  /// (dsm/read_refresh.h).
  void RefreshAfter(const Ctx& ctx);
  /// The deferral thread, no lock held: read refresh's request of `page`.
  void RequestRefresh(directory::PageId page);
  /// A protocol frame (its stamp taken off) from `from`; `lane`: a request
  /// that came on a lane, whose answer goes back on it.
  void HandleMessage(uint32_t from, absl::Span<const uint8_t> payload,
                     bool lane = false);
  // Answer lanes (lanes.cc; docs/PROTOCOL.md, "Answers on lanes").
  /// Sends one staged frame (stamped): the answer to a lane request into
  /// the lane's reply, a fault's request set aside for a lane call, the
  /// rest through the outbox.
  void SendStaged(uint32_t to, absl::Span<uint8_t> frame, Ctx& ctx);
  /// Lanes may carry this node's requests and answers: on, and no death
  /// known (a page or exclusive guard held: membership is stable).
  bool LanesOpen() const;
  /// A fault thread, no lock held: the request set aside as a lane call to
  /// `to`, its answer handled here; or through the outbox when no lane is
  /// idle.
  void CallHome(uint32_t to);
  /// A lane thread: serves a peer's lane request; returns the reply.
  absl::Span<const uint8_t> ServeLane(const rdmax::Message& m);
  /// A fault thread: handles a lane answer from `from`, then the
  /// main-connection frames it released.
  void TakeLaneAnswer(uint32_t from, absl::Span<const uint8_t> reply);
  /// The data thread: a stamped DSM frame off the main connection.
  void AdmitFrame(uint32_t from, absl::Span<const uint8_t> payload);
  /// Exclusive guard held, after the membership may have changed: frames
  /// from dead nodes wait for no answer (AnswerOrder::SenderDead).
  void NoteDeaths();
  /// A lane call to `to` failed after its request left: the answer may be
  /// lost; unless `to` is declared dead soon, the node fails.
  void LaneFailed(uint32_t to, const absl::Status& st);
  /// The deferral thread, kLaneCheck: fails the node unless `to` has been
  /// declared dead since its lane broke.
  void CheckLaneLoss(uint32_t to);
  /// A peer can have numbered at most as many lane answers to this node as
  /// this node made lane calls to it: a larger number is a protocol error.
  bool AnswerCountPossible(uint32_t from, uint64_t count) const;
  /// Answers put on lanes, over all peers.
  uint64_t LaneAnswersSent() const;
  /// Main-connection frames that waited for a lane answer, over all peers.
  uint64_t FramesParked() const;
  absl::Status Execute(const directory::Output& out, Ctx& ctx);
  absl::Status ExecuteOne(const directory::Effect& e,
                          const directory::Output& out, Ctx& ctx,
                          StagedFrames& staged);
  void StageMessage(uint32_t to, directory::Message msg, StagedFrames& staged);
  absl::Status MapLocal(const directory::Effect& e, Ctx& ctx);
  // Run grants (run_grant.cc).
  /// The number of effects from `i` on that form one run: kMapReceived or
  /// kWriteProtect effects of the same kind on consecutive pages.
  static size_t RunOfEffects(const std::vector<directory::Effect>& effects,
                             size_t i);
  /// Performs effects[i, i + n) of one RunOfEffects with a ranged ioctl per
  /// stretch of contiguous guest-physical pages.
  absl::Status ExecuteRun(const std::vector<directory::Effect>& effects,
                          size_t i, size_t n, Ctx& ctx);
  absl::Status MapReceived(const directory::Effect& e, Ctx& ctx);
  /// Maps the received bytes of `count` consecutive pages from `first`
  /// (`writable`: a write run's Modified grants).
  absl::Status MapReceivedRun(directory::PageId first, uint64_t count,
                              bool zero, bool writable, Ctx& ctx);
  /// Maps one received page (replacing a stale copy still mapped).
  absl::Status InstallReceived(directory::PageId page, const uint8_t* bytes,
                               bool writable);
  /// The bytes the kData/kDataRun being handled carries for `page`.
  absl::StatusOr<const uint8_t*> ReceivedBytes(directory::PageId page,
                                               bool zero, const Ctx& ctx) const;
  /// Calls fn(first, count) for each stretch of [first, first + count)
  /// whose pages are contiguous in guest-physical space (a run can span
  /// the MMIO hole: consecutive in RAM, not in GPA).
  template <typename Fn>
  absl::Status ForEachGpaStretch(directory::PageId first, uint64_t count,
                                 Fn fn);
  /// Stages a kDataRun with its pages' bytes (StageMessage's run case).
  void StageRun(uint32_t to, directory::Message msg, StagedFrames& staged);
  absl::Status Zap(directory::PageId page);
  // Asynchronous read-ahead's held markers (held.cc; dsm/held_pages.h).
  /// MapReceivedRun, page lock held: keeps a read run's first page
  /// unmapped, its bytes (nullptr: zeros) held, when no thread waits for
  /// it and the pool has room. False: map it as usual.
  absl::StatusOr<bool> HoldMarker(directory::PageId page, const uint8_t* bytes);
  /// Page lock held: takes `page` out of the pool and maps it read-only if
  /// the protocol still has it Shared here. False: it was not held, or its
  /// bytes were no longer to be trusted (dropped).
  absl::StatusOr<bool> MapHeld(directory::PageId page);
  /// HandleFault, page lock held: maps a held page for `ctx.fault` and
  /// completes it. False when the page is not held (or no longer Shared).
  bool ServeHeld(directory::PageId page, Ctx& ctx, absl::Status* st);
  /// No lock held: maps held pages no walk reached for a while (a walk
  /// that stopped), so the pool serves the next walks.
  void FlushStrandedHeld();
  /// The bytes a message about `page` must carry: the mapped page, its
  /// held copy (into `scratch`), or nullptr for a page never written here.
  const uint8_t* BytesToSend(directory::PageId page, uint8_t* scratch) const;
  void CompleteWaiters(directory::PageId page, FaultKind kind, Ctx& ctx);
  void FailWaiters(directory::PageId page, const absl::Status& st, Ctx& ctx);
  void RetryWaiters(directory::PageId page);
  void Error(const absl::Status& st);

  uint64_t GpaOf(directory::PageId page) const {
    return directory::PageSpace::GpaOfPage(page);
  }
  uint8_t* HostOf(directory::PageId page) const {
    return memory_.data() + page * kPageSize;
  }
  bool Populated(directory::PageId page) const {
    return (populated_[page / 64].load(std::memory_order_acquire) >>
            (page % 64)) &
           1;
  }
  void SetPopulated(directory::PageId page, bool on);
  WaitMap& WaitersOf(directory::PageId page) {
    return waiters_[page & (dsm::PageLocks::kStripes - 1)];
  }

  cluster::ClusterConfig config_;
  cluster::GuestLayout layout_;
  uint32_t self_;
  DsmOptions options_;
  std::optional<directory::PageSpace> space_;
  std::optional<directory::Node> node_;
  GuestMemory memory_;
  std::unique_ptr<Pager> pager_;
  std::unique_ptr<rdmax::Transport> transport_;
  std::unique_ptr<dsm::PageLocks> locks_;
  std::unique_ptr<dsm::Outbox> outbox_;
  // One bit per page: mapped here (read through the host mapping without
  // faulting). Updated under the page lock.
  std::unique_ptr<std::atomic<uint64_t>[]> populated_;
  std::unique_ptr<WaitMap[]> waiters_;
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> lost_pages_logged_{0};  // DATA_LOSS errors seen
  std::atomic<bool> started_{false};

  // Messages the protocol set aside (kDefer) until the threads woken by a
  // grant had a chance to use the page; resubmitted by deferrer_.
  struct Deferred {
    enum class Kind : uint8_t {
      kMessage,    // a deferred message from `from`
      kRefresh,    // read refresh's request of msg.page
      kDowngrade,  // background downgrade of msg.page (dsm/downgrade.h)
      kLaneCheck,  // a lane call to `from` failed: still not declared dead?
    };
    int64_t due_ns;
    uint32_t from;
    directory::Message msg;
    Kind kind = Kind::kMessage;
    bool operator>(const Deferred& o) const { return due_ns > o.due_ns; }
  };
  void Defer(uint32_t from, const directory::Message& msg, Ctx& ctx);
  /// Queues `d` for the deferral thread (DeferLoop).
  void PushDeferred(const Deferred& d);
  /// Queues work on `page` that is not a message (`kind` kRefresh or
  /// kDowngrade) for the deferral thread at `due_ns`.
  void PushPageTask(Deferred::Kind kind, directory::PageId page,
                    int64_t due_ns);
  absl::Status ResubmitExpired(Ctx& ctx);
  void EndHoldsOver(const directory::Message& run);
  /// Background downgrade: after a local write made `page` writable here,
  /// schedules its downgrade if the policy asks for one.
  void ScheduleDowngrade(directory::PageId page);
  /// The deferral thread, no lock held: the downgrade scheduled for
  /// `due_ns`, if still due and the protocol allows it.
  void DowngradeIdle(directory::PageId page, int64_t due_ns);
  /// Last time a grant woke threads on a page of this stripe (guarded by
  /// the stripe lock): a deferred message waits until grant_hold after it.
  int64_t& GrantTime(directory::PageId page) {
    return grant_ns_[page & (dsm::PageLocks::kStripes - 1)];
  }
  std::unique_ptr<int64_t[]> grant_ns_;
  void DeferLoop();
  std::mutex defer_mu_;
  std::condition_variable defer_cv_;
  std::vector<Deferred> deferred_;  // min-heap on due_ns
  bool defer_stop_ = false;
  std::thread deferrer_;

  std::unique_ptr<dsm::ReadAhead> read_ahead_;
  std::unique_ptr<dsm::ReadRefresh> refresh_;
  // Read-ahead markers held at once: a few windows of each of a few walks.
  static constexpr size_t kHeldMarkers = 64;
  std::unique_ptr<dsm::HeldPages> held_;
  std::atomic<uint64_t> held_served_{0};   // markers a walk reached
  std::atomic<uint64_t> held_dropped_{0};  // invalidated while held
  std::atomic<uint64_t> held_flushed_{0};  // mapped, no walk reached them
  // The longest run read-ahead asks for: kDsmMaxRunPages, or fewer when
  // the transport's max_message_bytes cannot carry that many pages.
  uint32_t run_pages_ = 1;
  std::atomic<uint64_t> run_copies_{0};            // ranged UFFDIO_COPYs
  std::atomic<uint64_t> run_pages_one_by_one_{0};  // mapped after EEXIST
  std::unique_ptr<dsm::GrantHold> hold_;
  std::unique_ptr<dsm::BackgroundDowngrade> downgrade_;
  std::atomic<uint64_t> ahead_requests_{0};
  std::atomic<uint64_t> frames_received_{0};
  // Requests received as home: [2 * from] reads, [2 * from + 1] writes.
  std::unique_ptr<std::atomic<uint64_t>[]> served_;
  std::atomic<uint64_t> deferred_count_{0};
  std::atomic<uint64_t> zaps_{0};
  std::atomic<uint64_t> zero_page_sends_{0};
  std::atomic<uint64_t> reinstalls_{0};
  // Answer lanes (lanes.cc): per peer, the answers put on lanes to it
  // (home side) and the order of what it sends here (receiving side).
  // DsmOptions::answer_lanes on a transport with lane calls (TCP): no
  // failed call per fault elsewhere.
  bool lanes_ = false;
  std::unique_ptr<std::atomic<uint64_t>[]> lane_answers_sent_;
  std::unique_ptr<std::atomic<uint64_t>[]> lane_calls_to_;
  std::unique_ptr<dsm::AnswerOrder[]> answer_order_;
  std::atomic<uint64_t> lane_calls_{0};          // requests that left on lanes
  std::atomic<uint64_t> lane_answers_taken_{0};  // answers that came back
  std::atomic<uint64_t> lane_fallbacks_{0};      // no lane idle
  std::atomic<uint64_t> lane_failures_{0};       // broke after sending
  std::atomic<uint64_t> lane_requests_served_{0};
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_DSM_ENGINE_H_
