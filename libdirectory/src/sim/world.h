// The simulated cluster: Nodes, their page frames, the network, the
// workload threads and the checker. Shared by the seeded random runs and
// the exhaustive explorer (which copies whole Worlds).
#ifndef SSIHV_DIRECTORY_SRC_SIM_WORLD_H_
#define SSIHV_DIRECTORY_SRC_SIM_WORLD_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "sim/rng.h"
#include "ssihv/directory/node.h"
#include "ssihv/directory/sim.h"

namespace ssihv::directory::sim::internal {

/// A zapped frame's bytes: never equal to a written value.
inline constexpr uint64_t kGarbage = 0xdeaddeaddeaddeadull;

struct Frame {
  bool valid = false;  // holds bytes (mapped or not)
  uint8_t prot = 0;    // 0 unmapped, 1 read-only, 2 writable
  uint64_t value = 0;
};

struct Op {
  Access access = Access::kRead;
  PageId page = 0;
};

struct ThreadState {
  NodeId node = 0;
  uint32_t completed = 0;
  bool has_op = false;
  bool blocked = false;
  bool woken = false;  // woken by a completion, has not retried yet
  Op op;
  uint64_t fault_step = 0;  // first fault of the current op
};

struct Packet {
  uint64_t id = 0;
  NodeId from = 0;
  NodeId to = 0;
  Message msg;
  uint64_t data = 0;                          // the page value a kData carries
  std::vector<uint64_t> run_data;             // kDataRun: a value per page
  std::shared_ptr<const ReportChunk> report;  // kReport
  uint64_t ready = 0;
  /// answer_lanes: on a lane, the answer's number on its pair (from 1);
  /// on the pair's channel, how many answers the sender had put on lanes
  /// to the receiver when it sent this (the receiver takes this packet
  /// only after all of those).
  uint64_t lane_seq = 0;
  uint64_t after = 0;

  /// True if this packet delivers a value of page `p` (kData, kDataRun).
  bool Carries(PageId p) const {
    if (msg.type == MsgType::kData) return msg.page == p;
    // A refused write run delivers nothing.
    return msg.type == MsgType::kDataRun && !(msg.flags & kFlagRefused) &&
           p >= msg.page && p - msg.page < msg.pages();
  }
  /// The value of page `p` it delivers (Carries(p) must hold).
  uint64_t ValueOf(PageId p) const {
    return msg.type == MsgType::kData ? data : run_data[p - msg.page];
  }
};

struct FetchOp {
  uint64_t id = 0;
  NodeId node = 0;
  PageId page = 0;
  NodeId source = 0;
  bool fail = false;  // the transport will report failure
  uint64_t ready = 0;
};

/// A message the node deferred (kDefer) while its page was held.
struct DeferredMsg {
  NodeId node = 0;
  NodeId from = 0;
  Message msg;
};

/// driver_early_send: a local effect performed after the call's messages
/// already left.
struct LateEffect {
  NodeId node = 0;
  Effect effect;
};

struct Notice {
  NodeId node = 0;  // told by its failure detector that
  NodeId dead = 0;  // this node died
  uint64_t ready = 0;
};

enum class EventKind : uint8_t {
  kThread,
  kDeliver,
  kFetch,
  kCrash,
  kNotice,
  kRedeliver,
  kLate,
  kDowngrade,  // index: node, op.page: page
};

struct Event {
  EventKind kind = EventKind::kThread;
  uint32_t index = 0;  // thread, channel, fetch, node, notice, deferred
  Op op;               // kThread without a current op (exhaustive mode)
  bool fail = false;   // kFetch: report failure (exhaustive mode)
};

/// One step of the trace.
struct TraceRecord {
  uint64_t step = 0;
  std::string event;
  std::vector<Effect> effects;
  std::vector<ReportChunk> reports;
};

class World {
 public:
  /// `rng` (random mode) drives delays, drops and crash suffixes; nullptr in
  /// exhaustive mode (no delays, every choice is an event).
  World(const Config& config, const PageSpace& space, std::vector<Node> nodes,
        Rng* rng);

  /// Random mode: thread t runs ops[t] (threads are node-major).
  void SetWorkload(std::vector<std::vector<Op>> ops) { ops_ = std::move(ops); }

  /// Appends the enabled events. `timed`: only those whose time has come.
  void Enabled(bool timed, std::vector<Event>* out) const;
  /// The earliest time something delayed becomes ready (UINT64_MAX: none).
  uint64_t NextReady() const;
  void AdvanceTime(uint64_t t) { now_ = t; }
  /// Network stops delaying: everything is ready now and from now on.
  void SetCalm();
  bool calm() const { return calm_; }
  uint64_t calm_step() const { return calm_step_; }
  uint64_t max_calm_wait() const { return max_calm_wait_; }
  uint64_t LivenessBound() const;

  /// Performs one event and checks every invariant afterwards.
  void Apply(const Event& event);
  bool failed() const { return failed_; }
  const Violation& violation() const { return violation_; }
  /// Every live thread has finished and nothing is in flight.
  bool Finished() const;
  bool CanCrash() const;
  /// What is left to do: blocked threads with their page's states.
  std::string DescribeStuck() const;

  /// Canonical bytes of the state (values abstracted to latest / stale).
  void AppendState(std::string* out) const;
  std::string DescribeEvent(const Event& event) const;

  uint64_t steps() const { return step_; }
  uint64_t reads() const { return reads_; }
  uint64_t writes() const { return writes_; }
  uint64_t lost_ops() const { return lost_ops_; }
  uint32_t crashes() const { return crashes_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  bool dead(NodeId n) const { return dead_[n]; }
  /// The last trace records, oldest first, formatted.
  std::string FormatTrace(size_t lines) const;
  uint32_t num_threads() const {
    return static_cast<uint32_t>(threads_.size());
  }

 private:
  uint32_t N() const { return static_cast<uint32_t>(nodes_.size()); }
  Frame& frame(NodeId n, PageId p) { return frames_[n * pages_ + p]; }
  const Frame& frame(NodeId n, PageId p) const {
    return frames_[n * pages_ + p];
  }
  uint64_t Delay();

  void StepThread(uint32_t t, const Op& chosen);
  void Deliver(uint32_t channel);
  /// The channel a packet node n sends goes on: its pair's, or with lanes
  /// one of the pair's lanes (lanes.cc). With answer_lanes it also stamps
  /// the packet: its number on a lane, or the count on the pair's channel.
  /// Not const: random mode draws the lane, and it counts answers.
  uint32_t Route(NodeId n, Packet* pk);
  /// Lanes per ordered pair with request_lanes or answer_lanes (each FIFO,
  /// none ordered with another or with the pair's channel).
  static constexpr uint32_t kLanes = 2;
  bool Lanes() const { return config_.request_lanes || config_.answer_lanes; }
  /// answer_lanes: the head of a pair's channel waits for answers its
  /// sender put on lanes before it, unless the receiver knows it died.
  bool Waits(const Packet& pk) const;
  /// answer_lanes: the receiver took lane answer `seq` of pair `pair`.
  void TakeAnswer(uint32_t pair, uint64_t seq);
  void CompleteFetch(uint32_t index, bool fail);
  void Crash(NodeId n);
  void Notify(uint32_t index);
  void Redeliver(uint32_t index);
  void ApplyLate(uint32_t index);
  void Downgrade(NodeId n, PageId p);
  /// Performs one local (non-message) effect on node n's frame.
  void PerformLocal(NodeId n, const Effect& e, const Packet* in,
                    uint64_t fetched);
  /// Node n's hold on page p is over once its threads woken on p have
  /// retried: a message deferred for it may go back, a run may grant it.
  bool HoldOver(NodeId n, PageId p) const;
  /// Performs out_'s effects for node n; `in` is the message being handled,
  /// `fetched` the value a kMapFetched maps.
  void Perform(NodeId n, const Packet* in, uint64_t fetched, size_t start = 0);
  /// The bytes a kData or kDataRun that node n sends carries.
  void AttachData(NodeId n, const Effect& e, Packet* pk);
  /// After a fault on p that waits: the read (or write) run behind it.
  void RequestRun(NodeId n, PageId p, bool write);
  void Wake(NodeId n, PageId p);
  void Fail(const std::string& invariant, const std::string& detail);
  bool Check(absl::Status status, NodeId n, const std::string& what);

  void CheckInvariants();
  void CheckPage(PageId p);
  void UpdateDoomed(PageId p);
  void CheckAgreement();
  bool Quiescent() const;
  void FaultDone(ThreadState& ts);
  void Record(std::string event);

  Config config_;
  PageSpace space_;
  PageId pages_;
  std::vector<Node> nodes_;
  Rng* rng_;
  std::vector<bool> dead_;
  std::vector<Frame> frames_;
  std::vector<uint64_t> latest_;
  std::vector<bool> doomed_;
  std::vector<ThreadState> threads_;
  std::vector<std::vector<Op>> ops_;
  // from * N + to; with lanes, (1 + lane) * N * N + from * N + to: the
  // lanes.
  std::vector<std::deque<Packet>> channels_;
  // answer_lanes, per pair (from * N + to): answers put on lanes; how many
  // the receiver took, counted up to the first it has not; the numbers it
  // took beyond that.
  std::vector<uint64_t> answers_sent_;
  std::vector<uint64_t> answers_taken_;
  std::vector<std::vector<uint64_t>> answers_ahead_;
  std::vector<FetchOp> fetches_;
  std::vector<Notice> notices_;
  std::vector<DeferredMsg> deferred_;
  std::vector<LateEffect> late_;
  std::vector<PageId> lost_declared_;  // this step
  Output out_;

  uint64_t now_ = 0;
  uint64_t step_ = 0;
  uint64_t next_id_ = 1;
  uint64_t next_value_ = 1;
  uint64_t calm_step_ = 0;
  uint64_t max_calm_wait_ = 0;
  bool calm_ = false;
  uint64_t reads_ = 0, writes_ = 0, lost_ops_ = 0;
  uint32_t crashes_ = 0;
  bool failed_ = false;
  Violation violation_;

  std::vector<TraceRecord> trace_;  // ring
  size_t trace_next_ = 0;
};

}  // namespace ssihv::directory::sim::internal

#endif  // SSIHV_DIRECTORY_SRC_SIM_WORLD_H_
