// The node agent: this node's local view of every page in the cluster
// (Invalid / Shared / Modified / Lost, plus an in-flight request), driven by
// local faults and by messages from homes and data holders.
#ifndef SSIHV_DIRECTORY_NODE_AGENT_H_
#define SSIHV_DIRECTORY_NODE_AGENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ssihv/directory/membership.h"
#include "ssihv/directory/message.h"
#include "ssihv/directory/types.h"

namespace ssihv::directory {

/// One byte per page of the whole cluster (1 GiB of guest RAM = 256 KiB of
/// state). Every call touches only its page's byte and the counters. Plain
/// copyable data; the Node passes the environment to each call.
class NodeAgent {
 public:
  /// Initially this node's own pages are Modified (never written: reads as
  /// zeros, shipped as kFlagZero) and every other page is Invalid.
  NodeAgent(const PageSpace& space, NodeId self, TestBug bug);

  /// A local read or write fault on `page`.
  absl::Status OnFault(Env& env, PageId page, Access access);
  /// kFwdRead, kTransfer, kInv, kData, kDataRun, kGrant, kPullGrant, kLost,
  /// kProbe.
  absl::Status OnMessage(Env& env, NodeId from, const Message& msg);

  /// Read-ahead as one run grant: the longest prefix of [first, first +
  /// max_pages) (clipped to first's static range) whose pages are Invalid
  /// with nothing pending becomes pending reads, asked for with one
  /// kReadRun to their home. Returns the prefix length (0: page `first` is
  /// not Invalid and idle, or its home is this node: nothing sent).
  /// `write`: pending writes instead, asked for with kReadRun|kFlagWrite
  /// (the home grants the pristine ones and refuses the others).
  uint32_t RequestRun(Env& env, PageId first, uint32_t max_pages,
                      bool write = false);
  /// Home side of a run: true if this node's copy of `page` can go into a
  /// kDataRun now (Shared or Modified, no request pending, not held).
  bool CanServeRun(PageId page) const;
  /// Home side of a run: serves `page` (a Modified copy is write-protected
  /// first and stays Shared). Returns true if the page was never written.
  bool ServeRun(Env& env, PageId page);
  /// Home side of a write run: true if this node holds `page` Modified and
  /// pristine (never mapped here: nothing to unmap), idle and not held.
  bool CanServeWriteRun(PageId page) const;
  /// Home side of a write run: gives the page up (kZap, Invalid).
  void ServeWriteRun(Env& env, PageId page);
  /// Background downgrade: true if this node holds `page` Modified, written
  /// (not pristine), with nothing pending and not held.
  bool CanDowngrade(PageId page) const;
  /// Write-protects that copy (kWriteProtect): Shared from now on.
  void Downgrade(Env& env, PageId page);
  /// The hold of `page` is over (no-op if it has none): the next request
  /// that would take it is served at once, as the kDefer it would have
  /// caused would be taken back at once.
  void EndHold(PageId page) { pages_[page] &= static_cast<uint8_t>(~kHeldBit); }
  /// The driver finished the kFetch of `page` (ok = the bytes are in hand).
  absl::Status OnFetchDone(Env& env, PageId page, bool ok);

  /// Recovery, exclusive access. After cutting off the dead node `dead`:
  /// every request still pending on a page whose home survived is announced
  /// with kStalled (pages of `skip_ranges` are reported instead).
  void AnnounceStalled(Env& env, NodeId dead, NodeMask skip_ranges);
  /// Appends this node's report of static range `range` for node `to`.
  void AppendReport(Env& env, NodeId range, NodeId to) const;

  PageState StateOf(PageId page) const {
    return static_cast<PageState>(pages_[page] & kStateBits);
  }
  /// 0 none, else the access of the request in flight.
  bool Pending(PageId page) const { return (pages_[page] & kPendingBits); }
  bool PendingWrite(PageId page) const {
    return (pages_[page] & kPendingBits) == kPendWrite;
  }
  bool Pulling(PageId page) const { return pages_[page] & kPullingBit; }
  /// The local state byte (local_state:: encoding, without internal bits).
  uint8_t LocalStateByte(PageId page) const { return pages_[page] & kWireBits; }
  PageId num_pages() const { return pages_.size(); }
  /// The raw per-page bytes (for state hashing in the model checker).
  const std::vector<uint8_t>& raw() const { return pages_; }

 private:
  static constexpr uint8_t kStateBits = local_state::kStateMask;
  static constexpr uint8_t kPendingBits = local_state::kPendingMask;
  static constexpr uint8_t kPendRead = local_state::kPendingRead;
  static constexpr uint8_t kPendWrite = local_state::kPendingWrite;
  static constexpr uint8_t kPullingBit = local_state::kPulling;
  static constexpr uint8_t kWireBits = 0x1f;
  static constexpr uint8_t kPristineBit = 0x20;  // never written since start
  static constexpr uint8_t kHeldBit = 0x40;      // granted, not yet used: defer

  void Set(PageId page, PageState state, uint8_t pending);
  absl::Status OnFwdRead(Env& env, NodeId from, const Message& msg);
  absl::Status OnTransfer(Env& env, NodeId from, const Message& msg);
  absl::Status OnInv(Env& env, NodeId from, const Message& msg);
  absl::Status OnData(Env& env, NodeId from, const Message& msg);
  absl::Status OnDataRun(Env& env, NodeId from, const Message& msg);
  absl::Status OnGrant(Env& env, NodeId from, const Message& msg);
  absl::Status OnPullGrant(Env& env, NodeId from, const Message& msg);
  absl::Status OnLost(Env& env, NodeId from, const Message& msg);
  absl::Status Violation(const Message& msg, NodeId from,
                         const char* why) const;
  /// If `page` is held, emits kDefer for `msg` and releases the hold.
  bool DeferIfHeld(Env& env, NodeId from, const Message& msg);
  // A forward from this node's own home agent: kFlagNoDone, else 0.
  static uint8_t ServedByHome(const Env& env, NodeId from);
  // After a kData sent with kFlagNoDone: the home's kDone, locally.
  static void EndServedByHome(Env& env, uint8_t by_home, PageId page);

  std::vector<uint8_t> pages_;
  TestBug bug_;
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_NODE_AGENT_H_
