// The home agent: the directory of the pages homed at this node (state,
// copy holders, the transaction in progress, waiting requesters), which
// serialises all requests for a page.
#ifndef SSIHV_DIRECTORY_HOME_AGENT_H_
#define SSIHV_DIRECTORY_HOME_AGENT_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "ssihv/directory/membership.h"
#include "ssihv/directory/message.h"
#include "ssihv/directory/stats.h"
#include "ssihv/directory/types.h"

namespace ssihv::directory {

/// The directory's state of a page.
enum class DirState : uint8_t {
  kShared = 0,      // copies = the sharers (read-only)
  kModified = 1,    // copies = {owner}
  kLost = 2,        // no valid copy exists
  kRecovering = 3,  // adopted after a death, collecting reports
};

/// The phase of the transaction in progress on a page.
enum class TxnPhase : uint8_t {
  kIdle = 0,
  kAcks,          // write: waiting for kInvAck from copies \ {source, req}
  kAwaitDone,     // data/grant on its way: waiting for the requester's kDone
  kAwaitVerdict,  // the source died: waiting for the requester's kDone or
                  // kStalled to learn whether the page reached it
  kAwaitProbe,    // the requester died: waiting for the source's kProbeAck
  kAbortAcks,     // the requester died during kAcks: collect, then settle
};

/// A read-only view of one directory entry (tests, simulator, debugging).
struct DirView {
  DirState state = DirState::kShared;
  NodeMask copies = 0;
  TxnPhase phase = TxnPhase::kIdle;
  bool write_txn = false;
  bool pulled = false;
  NodeId requester = kNoNode;
  NodeId source = kNoNode;
  NodeMask read_waiters = 0;
  NodeMask write_waiters = 0;
  uint32_t version = 0;
};

class HomeAgent {
 public:
  struct Options {
    /// Grant reads of pages the home holds no copy of as kPullGrant (the
    /// requester fetches from a sharer's memory) instead of kFwdRead.
    bool allow_pull = false;
    /// Keep PageStats for every homed page (16 bytes per page).
    bool per_page_stats = true;
    TestBug bug = TestBug::kNone;
  };

  /// Homes this node's own range: every page Modified here, version 0.
  HomeAgent(const PageSpace& space, NodeId self, Options options);

  /// kReadReq, kWriteReq, kInvAck, kDone, kProbeAck, kStalled for a page
  /// homed here. Touches only that page's entry and the counters.
  absl::Status OnMessage(Env& env, NodeId from, const Message& msg);

  /// Run grants (docs/PROTOCOL.md, "Run grants"). True if a read of `page`
  /// (homed here: the caller checked) by `req` can be granted from this
  /// node's own copy right now: Shared or Modified with a copy here and
  /// none at `req`, no transaction in progress and nobody waiting.
  bool CanGrantRun(PageId page, NodeId req) const;
  /// Starts that read (CanGrantRun must hold), for the run that will carry
  /// the page from this node's copy; EndRun ends it as that run leaves.
  void StartRunRead(Env& env, PageId page, NodeId req);
  /// Write runs: true if `page` is Modified here alone (this node the only
  /// copy), no transaction in progress and nobody waiting, so that `req`
  /// can have it at once.
  bool CanGrantWriteRun(PageId page, NodeId req) const;
  /// Background downgrade: true if `page` is homed here and Modified with
  /// this node's copy alone, no transaction in progress, nobody waiting.
  bool CanDowngrade(PageId page) const;
  /// That page (CanDowngrade must hold) becomes Shared, this node its only
  /// sharer; the version stays (no write happened).
  void Downgrade(PageId page);
  /// True while `page`'s entry is rebuilt from the survivors' reports
  /// (homed here after a death): requests for it wait for the rebuild.
  bool Rebuilding(PageId page) const;
  /// Starts that write (CanGrantWriteRun must hold): ownership moves to
  /// `req` from this node's copy (the source); EndRun ends it as the run
  /// leaves.
  void StartRunWrite(Env& env, PageId page, NodeId req);
  /// kDoneRun: ends the transaction of every page of the run, which must
  /// each await `from`'s kDoneRun; all or nothing. (This home sends every
  /// kDataRun with kFlagNoDone, so a kDoneRun reaching it is refused.)
  absl::Status OnDoneRun(Env& env, NodeId from, const Message& msg);
  /// The run's kDataRun to `req` left with kFlagNoDone: ends the
  /// transactions StartRunRead/StartRunWrite began for its `count` pages.
  void EndRun(Env& env, NodeId req, PageId first, uint32_t count);

  /// Recovery, exclusive access: `dead` died; `adopted` = static ranges
  /// whose home became this node (their entries start kRecovering).
  void OnNodeDead(Env& env, NodeId dead, NodeMask adopted);
  /// Recovery, exclusive access: a node's report chunk for an adopted range.
  absl::Status OnReport(Env& env, NodeId from, const ReportChunk& chunk);

  /// True if `range`'s directory is held here (own or adopted).
  bool HoldsRange(NodeId range) const { return !dir_[range].empty(); }
  /// True while an adopted range is still collecting reports.
  bool Recovering(NodeId range) const { return recovering_ & Bit(range); }
  /// The entry of a page whose range HoldsRange().
  DirView Inspect(PageId page) const;
  /// nullptr unless per_page_stats and HoldsRange().
  const PageStats* PageStatsOf(PageId page) const;
  /// Appends the protocol state (no counters) for model-checker hashing.
  void AppendState(std::string* out) const;

 private:
  // 32 bytes per homed page; dense, indexed by page - FirstPageOf(range).
  struct Entry {
    NodeMask copies = 0;
    NodeMask read_waiters = 0;
    NodeMask write_waiters = 0;
    uint32_t version = 0;
    uint8_t bits = 0;  // DirState | TxnPhase << 2 | write << 5 | pulled << 6
                       // | run << 7
    uint8_t requester = kNoNode;
    uint8_t source = kNoNode;
    uint8_t cursor = 0;  // last node served (round-robin among waiters)
  };
  static_assert(sizeof(Entry) == 32);

  Entry* Find(PageId page);
  const Entry* Find(PageId page) const;
  PageStats* StatsFor(PageId page);

  absl::Status OnRequest(Env& env, NodeId from, const Message& msg, Entry& e);
  absl::Status OnInvAck(Env& env, NodeId from, const Message& msg, Entry& e);
  absl::Status OnDone(Env& env, NodeId from, const Message& msg, Entry& e);
  absl::Status OnProbeAck(Env& env, NodeId from, const Message& msg, Entry& e);
  absl::Status OnStalled(Env& env, NodeId from, const Message& msg, Entry& e);
  absl::Status OnDoneWhileRecovering(Env& env, NodeId from, const Message& msg,
                                     Entry& e);

  PageStats* BeginTxn(Env& env, PageId page, Entry& e, NodeId req, bool write,
                      bool run, TxnPhase phase);
  absl::Status StartRead(Env& env, PageId page, Entry& e, NodeId req,
                         bool no_pull);
  absl::Status StartWrite(Env& env, PageId page, Entry& e, NodeId req);
  void FinishAcks(Env& env, PageId page, Entry& e);
  void Settle(Env& env, PageId page, Entry& e);
  void EndAborted(Env& env, PageId page, Entry& e);
  void EndTxn(Env& env, PageId page, Entry& e);
  void ServeNext(Env& env, PageId page, Entry& e);
  void Lose(Env& env, PageId page, Entry& e);
  void ApplyDeath(Env& env, PageId page, Entry& e, NodeId dead);
  void ApplyDeathRecovering(Entry& e, NodeId dead);
  void MaybeFinishRecovery(Env& env, NodeId range);
  void FinishRecovery(Env& env, NodeId range);
  NodeId PickSource(const Env& env, NodeMask copies) const;

  PageSpace space_;
  NodeId self_;
  Options options_;
  std::array<std::vector<Entry>, kMaxNodes> dir_;
  std::array<std::vector<PageStats>, kMaxNodes> page_stats_;
  NodeMask recovering_ = 0;
  std::array<NodeMask, kMaxNodes> reported_{};  // reporters per range
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_HOME_AGENT_H_
