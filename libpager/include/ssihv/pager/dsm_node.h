// DsmNode: one node of the distributed shared memory. It composes the pager
// (guest RAM, faults), libdirectory's coherence protocol (ssihv::directory::
// Node: node agent + home agent) and librdmax's transport:
//
//   read fault on an Invalid page   -> ask the home; map the arriving bytes
//                                      read-only (UFFDIO_COPY | MODE_WP,
//                                      straight from the receive buffer)
//   write fault on a Shared page    -> upgrade; map writable in place
//   invalidate from the home        -> MADV_DONTNEED the page, ack
//   request for a page owned here   -> served from local memory
//
// Every node maps the whole cluster's guest RAM (the layout of the cluster
// config) and registers it with its pager; the pages homed here start
// Modified here (first touch is local, zero-filled), the others Invalid.
// docs/PAGER.md, "DSM node", has the threading model and the decisions.
#ifndef SSIHV_PAGER_DSM_NODE_H_
#define SSIHV_PAGER_DSM_NODE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ssihv/cluster/config.h"
#include "ssihv/pager/guest_memory.h"
#include "ssihv/pager/pager.h"
#include "ssihv/pager/stats.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::pager {

class DsmEngine;

/// The names of a node's local page states (libdirectory's PageState, in
/// its order): "invalid", "shared", "modified", "lost".
inline constexpr std::array<const char*, 4> kDsmPageStateNames = {
    "invalid", "shared", "modified", "lost"};

/// The home's directory entry of a page.
struct DsmDirectoryView {
  std::string state;  ///< "shared", "modified", "lost", "recovering"
  std::optional<uint32_t> owner;  ///< the Modified holder
  std::vector<uint32_t> sharers;  ///< the nodes with a Shared copy
  bool busy = false;              ///< a transaction is in progress
};

/// One page as this node sees it.
struct DsmPageView {
  std::string state;  ///< one of kDsmPageStateNames
  /// Present when this node holds the page's directory (its home, or the
  /// adopter of a dead home's range).
  std::optional<DsmDirectoryView> directory;
};

/// The home side of a peer's remote faults: page requests the peer sent to
/// this node as the page's home (its read misses, and its write misses and
/// upgrades), read-ahead requests included.
struct DsmRequestsServed {
  uint64_t reads = 0;
  uint64_t writes = 0;
};

/// A page's traffic as its home counted it, since the node started.
struct DsmPageTraffic {
  uint64_t gpa = 0;
  uint32_t reads = 0;          ///< read transactions (a copy sent Shared)
  uint32_t writes = 0;         ///< write transactions (misses, upgrades)
  uint32_t invalidations = 0;  ///< copies invalidated
  uint32_t transfers = 0;      ///< ownership moved between nodes
};

struct DsmOptions {
  /// Pager fault threads (see PagerOptions::fault_threads).
  int fault_threads = 1;
  /// The nice value of the threads that serve faults and peers' requests:
  /// the fault threads (PagerOptions::thread_nice), the sender and the
  /// hold timer. The transport's threads take TransportOptions::
  /// service_nice. 0: inherited.
  int service_nice = 0;
  /// How long Start() waits for every peer to connect.
  absl::Duration connect_timeout = absl::Seconds(30);
  /// How long a page just granted to this node is held before a request
  /// that takes it away again (deferred by the protocol: kDefer) is served,
  /// so the woken threads use the grant at least once: no livelock when
  /// nodes fight over a page (a spinlock).
  absl::Duration grant_hold = absl::Microseconds(20);
  /// The hold of a page that keeps coming back soon after it left doubles
  /// with each return up to this (docs/PAGER.md, "Grant hold"): two nodes
  /// writing one page (KVM's kvmclock page, a guest spinlock) must each
  /// keep it long enough to use it once, however slow the host.
  absl::Duration max_grant_hold = absl::Milliseconds(5);
  /// Remote read-ahead: when read faults walk pages homed on another node
  /// in order, the following pages of that node's range are requested in
  /// the same burst, in a window that doubles with each sequential fault
  /// up to this many pages (docs/PAGER.md, "Remote read-ahead"). 0: off.
  uint32_t read_ahead_pages = 128;
  /// Read refresh: a remote page this node reads again soon after each
  /// invalidation (another node writes it now and then: a guest's jiffies
  /// and timekeeper) is asked for again as soon as a write takes it, so the
  /// next read finds it here instead of waiting a round trip; a page whose
  /// refreshed copies go unread stops being refreshed (docs/PAGER.md,
  /// "Read refresh"). Off by default: in the lab's 2-process guest it
  /// halved the CPU-bound benchmark (docs/PERFORMANCE.md).
  bool read_refresh = false;
  /// Background downgrade (docs/PAGER.md, "Background downgrade"): a page
  /// homed here that other nodes read after it had been left alone this
  /// long since the home's last write is, from the second such read on,
  /// write-protected in the background that long after each of the home's
  /// writes, so that the next remote read finds it Shared and has no
  /// downgrade on its path. Each time a local write undoes such a downgrade
  /// first, that page waits twice as long and needs new evidence; after six
  /// in a row it is left alone. Off by default (zero): in the lab's
  /// 2-process guest it lengthened the boot (docs/PERFORMANCE.md).
  absl::Duration background_downgrade = absl::ZeroDuration();
  /// First-touch write runs: after a remote write fault was answered with a
  /// page nobody had written (a first touch of memory homed elsewhere),
  /// up to this many following pages of that home's range are asked for
  /// with one write run; the home grants those it holds untouched and
  /// alone (docs/PAGER.md, "First-touch write runs"). 0: off.
  uint32_t write_run_pages = 32;
  /// Local fault-around: after a first touch of a page this node holds
  /// Modified, the rest of its aligned block of this many pages (a power
  /// of two) that the node holds Modified and never mapped is zero-filled
  /// too (docs/PAGER.md, "Local fault-around"). 512 = 2 MiB; < 2: off.
  uint32_t local_fault_around_pages = 512;
  /// Answer lanes (docs/PAGER.md, "Answer lanes"): a fault's request to
  /// the page's home is a lane call (rdmax::Transport::CallOnLane): the
  /// home's lane thread, blocked in recv, serves it and puts its answer on
  /// the same lane, where the fault thread that asked reads and maps it: no
  /// data thread on either side. Only until the node knows of a death, and
  /// main-connection frames wait for the answers sent before them
  /// (docs/PROTOCOL.md, "Answers on lanes"). Without a lane (loopback,
  /// none idle) the request takes the main connection.
  bool answer_lanes = true;
  /// Called when the node cannot go on: a protocol error, a lost page, a
  /// message that could not be sent. The guest must be stopped. May run on
  /// any DSM thread; must not call Stop().
  std::function<void(const absl::Status&)> on_error;

  // ---- the owner's own traffic over the node's transport ----
  // The transport carries the DSM's frames (message type kDsmFrameType) and
  // anything else the owner sends through DsmNode::transport() (IPIs,
  // forwarded I/O, ...). The DsmNode owns the transport's handlers; these
  // receive what is not the DSM's, with the transport's threading contract
  // (docs/TRANSPORT.md): on its data thread, never blocking, Send/Reply/
  // Call allowed.

  /// Every message and request whose type is not kDsmFrameType. Without it,
  /// such requests are answered with an Unimplemented error and one-way
  /// messages are dropped with a log line.
  rdmax::MessageHandler message_handler;
  /// A peer's connection came up or went down (after the DSM's own
  /// handling). A connection going down is not a death: the owner's failure
  /// detector decides (DsmNode::DeclareDead).
  rdmax::PeerHandler peer_handler;
};

/// The transport message type that carries protocol frames
/// (directory::Encode: 16-byte header, plus the page for kData).
inline constexpr uint16_t kDsmFrameType = 0x5D01;

/// The longest run grant a DSM node asks for (docs/PAGER.md, "Run
/// grants"): read-ahead asks for at most this many pages with one request,
/// and the home answers with one frame of their bytes. Bounded further by
/// the transport's max_message_bytes: with the transport's default (16 KiB)
/// runs are 3 pages long.
inline constexpr uint32_t kDsmMaxRunPages = 32;

/// `base` with max_message_bytes raised to carry a run grant of
/// kDsmMaxRunPages pages (128 KiB + 16). Create a DSM node's transport
/// with it; every node of the cluster must (a node refuses larger frames
/// than its own limit). On RDMA each posted receive buffer grows to that
/// size (rdma_recv_depth of them per peer).
rdmax::TransportOptions DsmTransportOptions(rdmax::TransportOptions base = {});

class DsmNode {
 public:
  ~DsmNode();
  DsmNode(const DsmNode&) = delete;
  DsmNode& operator=(const DsmNode&) = delete;

  /// Node `self` of `config`, talking through `transport` (created for the
  /// same config and self, not started: DsmNode installs its handlers and
  /// owns it from here). Maps guest RAM for the whole layout (anonymous
  /// memory) and registers it with a new pager.
  static absl::StatusOr<std::unique_ptr<DsmNode>> Create(
      const cluster::ClusterConfig& config, uint32_t self,
      std::unique_ptr<rdmax::Transport> transport, DsmOptions options = {});

  /// Starts the fault threads and the transport, then waits until every
  /// peer is connected (DsmOptions::connect_timeout).
  absl::Status Start();
  /// Shuts the transport down (no more protocol traffic), then stops the
  /// pager. Faults still waiting for a remote page stay blocked. Idempotent.
  void Stop();

  uint32_t self() const;
  /// Guest RAM of the whole cluster: RAM offset x is at memory().data() + x
  /// (GPA = GuestLayout::RamOffsetToGpa(x)). Give it to KVM.
  const GuestMemory& memory() const;
  /// Host address of a guest-physical address, or nullptr outside RAM.
  uint8_t* HostAddress(uint64_t gpa) const;

  /// The failure detector declared `node` dead (it must be fenced). Pages
  /// whose only copy it held are reported through on_error.
  absl::Status DeclareDead(uint32_t node);

  /// The node's transport, started by Start(), for the owner's own message
  /// types: Send, Call, CallSync, Reply, ReplyError (never kDsmFrameType,
  /// which is the DSM's). Handlers are DsmOptions::message_handler and
  /// peer_handler; do not call SetMessageHandler/SetPeerHandler on it.
  rdmax::Transport& transport();

  Pager& pager();
  PagerStats PagerStatistics() const;
  /// The page at `gpa` (any address in it): this node's state and, when the
  /// directory is here, its entry. Takes the page's lock briefly (never on
  /// a fault thread). NotFound outside guest RAM.
  absl::StatusOr<DsmPageView> InspectPage(uint64_t gpa) const;
  /// Guest pages by this node's state (index: kDsmPageStateNames). Takes
  /// each page lock stripe in turn (about a millisecond per GiB of RAM).
  std::array<uint64_t, 4> PagesByState() const;
  /// Requests served as home, indexed by the requesting node's id (this
  /// node's own entry stays zero: its faults reach its home agent without
  /// a message). Lock-free counters, any thread.
  std::vector<DsmRequestsServed> RequestsServed() const;
  /// The `n` pages whose directory is here with the most transactions
  /// (reads + writes), most first; pages without any are left out. The
  /// pages that move between nodes the most, for a guest that runs slow
  /// (a spinlock or a counter that two nodes write). Takes each page lock
  /// stripe in turn, like PagesByState.
  std::vector<DsmPageTraffic> HottestPages(size_t n) const;
  /// Pages this node, as their home, declared lost (their only copy died
  /// with a node). Any thread.
  uint64_t PagesLost() const;
  /// {"pager": ..., "protocol": ..., "transport": ..., "dsm": ...}.
  nlohmann::json StatsJson() const;

 private:
  explicit DsmNode(std::unique_ptr<DsmEngine> engine);
  std::unique_ptr<DsmEngine> engine_;
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_DSM_NODE_H_
