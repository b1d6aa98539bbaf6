// ssihv::directory::Node — one cluster node's side of the page coherence
// protocol: its node agent, its home agent, and the membership view, as one
// pure state machine. The DSM node of libpager drives it; dsm-sim drives it
// in the model checker. No I/O, threads or clocks.
//
// The protocol (docs/PROTOCOL.md): single writer / multiple readers per
// 4 KiB page, write-invalidate, a home per page (the node whose memory holds
// it, or its successor after a death) that serialises requests, initially
// every page Modified at its home.
//
// DRIVING CONTRACT
//
// Threads. Calls for one page must be serialised by the caller (a lock per
// page or per stripe of pages, held across the call and while performing
// its effects). Calls for different pages may run concurrently: a per-page
// call touches only that page's bytes of the dense state arrays plus atomic
// counters. The calls marked EXCLUSIVE (OnNodeDead, OnMessage of an
// IsExclusive() type, OnReport) touch many pages: run them with no other
// call in progress (e.g. a reader/writer lock: per-page calls take it
// shared, exclusive calls take it exclusive). Stats() may be read anytime.
//
// Effects. Each call appends to `out` the effects to perform, in order
// (output.h): messages to send (never to this node: messages between this
// node's own agents are delivered inside the call) and actions on the local
// mapping of the page. Perform them in order, under the page lock, with ONE
// RULE FOR MESSAGES: none may reach the transport before the call's last
// effect has been performed. A message that carries_page() copies the local
// page at its position in the list (after an earlier kWriteProtect stopped
// writers, before a later kZap drops it) but leaves with the others, after
// the list: a holder that hands its page over (kWriteProtect, kSend, kZap)
// must have dropped its copy before the new owner can receive it and write.
// Messages to one destination keep their order, across calls too.
//
// Runs. kReadRun, kDataRun and kDoneRun name up to kMaxRunPages
// consecutive pages (Message::pages()): a call handling one of them, and
// RequestRun, is a per-page call for every page of the run at once: hold
// all of their locks (in one global order, to avoid deadlocks).
//
// Faults. OnFault(page, access) answers kMapLocal (resolve from the local
// copy), kWait (park the thread; a request is in flight), or kPageLost. A
// parked thread is woken when a later call for the page emits kMapReceived,
// kMapFetched, kMakeWritable or kPageLost; it then retries the access, which
// may fault again (e.g. a write after a read completed: the upgrade).
//
// Holds and fetches. A page that just completed a request is held: the
// first conflicting message for it comes back as kDefer. Keep it and hand it
// to Resubmit once the threads woken by that completion have retried their
// access (a few microseconds); this is what guarantees every fault
// progresses on a contended page. A kFetch (only with allow_pull) is
// answered by exactly one OnFetchDone(page, ok), whatever happens.
//
// Channels. The transport must deliver messages between each pair of nodes
// reliably and in FIFO order, without duplicates (TCP and RDMA RC do this;
// retransmission and duplicate suppression are the transport's job). Pairs
// may be reordered relative to each other arbitrarily. The failure-free
// protocol does not depend on FIFO; recovery after a death does.
//
// Failures. Crash-stop. When a node is declared dead, call OnNodeDead on
// every survivor (deaths may be learned in any order; a node also learns of
// a death from a peer's kFlush). From then on the Node ignores messages from
// the dead node and never sends to it. The failure detector must fence the
// dead node (a node declared dead must really have stopped). A Node that
// learns it was itself declared dead returns kAborted from the call that
// told it: stop this node. Pages whose only valid copy died are reported
// with kPageLost; the guest must then be stopped with an error.
//
// Errors. A non-OK Status means the input violates the protocol (a bug, or
// a peer that is not running this protocol): log it and stop; the Node's
// state is unspecified afterwards. Malformed frames never get here: Decode()
// rejects them first.
#ifndef SSIHV_DIRECTORY_NODE_H_
#define SSIHV_DIRECTORY_NODE_H_

#include <array>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/directory/home_agent.h"
#include "ssihv/directory/membership.h"
#include "ssihv/directory/message.h"
#include "ssihv/directory/node_agent.h"
#include "ssihv/directory/output.h"
#include "ssihv/directory/page_space.h"
#include "ssihv/directory/stats.h"
#include "ssihv/directory/types.h"

namespace ssihv::directory {

class Node {
 public:
  struct Options {
    /// Let homes answer reads of pages they hold no copy of with kPullGrant
    /// (one-sided fetch from a sharer) — set it when the transport has RDMA.
    bool allow_pull = false;
    /// Per-page counters at the home (16 bytes per homed page).
    bool per_page_stats = true;
    /// Test only: inject a protocol bug (see TestBug).
    TestBug test_bug = TestBug::kNone;
  };

  /// The node `self` of `space` (at most 64 nodes). Memory: 1 byte per page
  /// of the cluster + 32 (+16 with per_page_stats) per page homed here.
  static absl::StatusOr<Node> Create(const PageSpace& space, NodeId self,
                                     Options options);
  static absl::StatusOr<Node> Create(const PageSpace& space, NodeId self) {
    return Create(space, self, Options());
  }

  NodeId self() const { return members_.self(); }
  const PageSpace& space() const { return members_.space(); }
  const Membership& membership() const { return members_; }

  /// A local fault on `page` (page must be space().Contains()).
  absl::Status OnFault(PageId page, Access access, Output* out);
  /// A message from node `from` (decoded and validated by Decode()). The
  /// page bytes of a kData stay with the caller: kMapReceived refers to
  /// them. EXCLUSIVE when IsExclusive(msg.type) (kFlush).
  absl::Status OnMessage(NodeId from, const Message& msg, Output* out);
  /// Read-ahead with one transaction for many pages (docs/PROTOCOL.md,
  /// "Run grants"): the longest prefix of [first, first + max_pages)
  /// within first's static range (and at most kMaxRunPages) whose pages
  /// are Invalid here with nothing pending is requested with one kReadRun
  /// to its home, which is not this node. Hold the locks of all those
  /// pages (a per-page call for each of them). Sets `*requested` to the
  /// prefix length (0: nothing sent: page `first` is not Invalid and idle,
  /// or is homed here). No thread waits on these pages; a later fault on
  /// one of them joins the request (kWait).
  /// `write`: a write run (docs/PROTOCOL.md, "Write runs"): the pages
  /// become pending writes; the home grants them Modified where it holds
  /// them pristine and alone, and refuses the others (kRetry wakes any
  /// thread that joined a refused page).
  absl::Status RequestRun(PageId first, uint32_t max_pages, Output* out,
                          uint32_t* requested, bool write = false);
  /// The driver's hold on `page` (granted here, not yet used: a request
  /// that takes it is deferred) is over: the thread it was granted to has
  /// used it. Lets a run that names the page grant it: a run never waits
  /// for a hold, it asks for the held page one by one instead. Hold the
  /// page's lock; `page` must be space().Contains().
  void EndHold(PageId page) { node_.EndHold(page); }
  /// The kFetch of `page` finished; ok = the bytes are in hand.
  absl::Status OnFetchDone(PageId page, bool ok, Output* out);
  /// Background downgrade (docs/PROTOCOL.md, "Background downgrade"): true
  /// if `page` is homed here and held Modified by this node alone, written,
  /// idle (no transaction, nobody waiting, nothing pending, not held).
  bool CanDowngrade(PageId page) const;
  /// Such a page becomes Shared here, this node its only sharer: one
  /// kWriteProtect, no message. A later read by another node is served
  /// from this copy with no downgrade on its path; a later write here is an
  /// upgrade that needs no message either. Returns false (no effect) when
  /// the page does not qualify (any more). Hold the page's lock.
  bool Downgrade(PageId page, Output* out);
  /// Hands back a message this node deferred (kDefer), with the `from` of
  /// that effect (which may be this node).
  absl::Status Resubmit(NodeId from, const Message& msg, Output* out);

  /// EXCLUSIVE. The failure detector declared `dead` dead. Idempotent.
  absl::Status OnNodeDead(NodeId dead, Output* out);
  /// EXCLUSIVE. A recovery report chunk from `from` (kReport frames).
  absl::Status OnReport(NodeId from, const ReportChunk& chunk, Output* out);

  /// True once every death known here has been flushed with every
  /// survivor and reported (recovery is then up to the new homes).
  bool RecoveryQuiet() const;

  const NodeAgent& node_agent() const { return node_; }
  const HomeAgent& home_agent() const { return home_; }
  StatsSnapshot Stats() const { return stats_.Snapshot(); }
  /// Appends the protocol state (no counters) in a canonical form, for
  /// state hashing in the model checker.
  void AppendState(std::string* out) const;

 private:
  Node(const PageSpace& space, NodeId self, Options options);

  absl::Status Deliver(Env& env, NodeId from, const Message& msg);
  absl::Status DeliverReport(Env& env, NodeId from, const ReportChunk& chunk);
  /// Delivers the self-addressed effects appended from index `start` on.
  absl::Status RunLocal(Output* out, size_t start);
  absl::Status LearnDeath(Env& env, NodeId dead);
  absl::Status OnFlush(Env& env, NodeId from, const Message& msg);
  absl::Status ServeReadRun(Env& env, NodeId from, const Message& msg);
  absl::Status ServeWriteRun(Env& env, NodeId from, const Message& msg);
  void MaybeReport(Env& env);

  Membership members_;
  directory::Stats stats_;
  NodeAgent node_;
  HomeAgent home_;
  /// Per dead node: survivors whose kFlush for it has not arrived yet.
  std::array<NodeMask, kMaxNodes> flush_wait_{};
  /// Static ranges whose home changed and that this node has not reported.
  NodeMask unreported_ = 0;
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_NODE_H_
