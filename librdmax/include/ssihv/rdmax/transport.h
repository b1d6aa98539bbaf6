// The node-to-node transport of a ssihv cluster: authenticated two-sided
// messages (one-way and request/response) and one-sided page fetches from a
// peer's registered memory, over RDMA (libibverbs RC), TCP, or an in-process
// loopback used by protocol tests. docs/TRANSPORT.md has the wire formats,
// the authentication handshake and the measured latencies.
//
// THREADING AND CALLBACK CONTRACT
//
// * Every method is thread-safe, except SetMessageHandler/SetPeerHandler,
//   which must be called before Start().
// * Each transport runs one *data thread*. Message handlers, peer handlers,
//   and the completions of Call run on it, one at a time.
//   Messages from one peer reach the handler in the order the peer sent them
//   (per-peer FIFO, across Send, Call and Reply). There is no order between
//   different peers, nor between messages and fetch completions.
// * Callbacks must not block: no Fetch, CallSync or waiting Send from a
//   callback (those return FailedPrecondition there). They may call Send
//   (which then never waits), Reply and Call.
// * The blocking calls (Fetch, CallSync, Send with a deadline) block only the
//   calling thread, and never run a callback on it: a fault thread that holds
//   its own locks can call Fetch without re-entering its own handlers. On the
//   fast path the calling thread reads its own completion instead of waiting
//   for a hand-off from the data thread: a Fetch goes over a fetch lane
//   (TransportOptions::fetch_lanes) whose response (TCP) or CQ (RDMA, event
//   or busy-poll mode) only that thread reads.
// * A Message (and its payload) is a view valid only during the callback.
//
// MEMORY REGIONS
//
// RegisterRegion may be called at any time, before or after Start(); peers
// learn of new regions in FIFO order with the messages this node sends
// afterwards, so "register, then send a message naming it" is race-free. The
// transport does not assume the memory is anonymous: it may be a memfd or
// file mapping, or a staging buffer. On RDMA, registration calls
// ibv_reg_mr, which PINS the pages: registering userfaultfd-armed guest RAM
// faults every page in during the call, and MADV_DONTNEED on pinned
// anonymous memory makes the MR and the process mapping diverge (remote
// READs then see stale pages). Register memfd-backed memory (the pin holds
// the shared page, which stays the mapping's page) or a staging region, not
// raw anonymous guest RAM (docs/TRANSPORT.md, "Pinning").
// A region passed to RegisterRegion must stay mapped until UnregisterRegion
// returns.
//
// FETCH
//
// Fetch copies `dst.size()` bytes at `offset` of a peer's exported region
// into `dst`. On RDMA it is one RDMA READ straight into `dst` when `dst` lies
// inside a region registered here (exported or RegionAccess::kLocalOnly);
// otherwise it lands in a registered bounce buffer and is copied. On TCP
// the response payload is received straight into `dst`. A fetch outside the
// peer's region is refused (OutOfRange) before anything is sent, and
// re-checked by the peer. If a fetch fails, `dst` holds unspecified bytes.
// A fetch that times out resets the connection, so no late data can land in
// `dst` after the call returned.
#ifndef SSIHV_RDMAX_TRANSPORT_H_
#define SSIHV_RDMAX_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ssihv/cluster/config.h"

namespace ssihv::rdmax {

using NodeId = uint32_t;
using RegionId = uint32_t;
/// Application message type; the full 16-bit space belongs to the user.
using MessageType = uint16_t;

enum class BackendKind { kLoopback, kTcp, kRdma };
absl::string_view BackendName(BackendKind kind);

/// A received message or response. A view: valid only during the callback.
struct Message {
  NodeId from = 0;
  MessageType type = 0;
  /// Non-zero for a request (answer it with Reply) and for a response.
  uint64_t request_id = 0;
  absl::Span<const uint8_t> payload;
};

/// What Reply needs to answer a request; copy it out of the Message to reply
/// later, from any thread.
struct ReplyToken {
  NodeId to = 0;
  uint64_t request_id = 0;
  static ReplyToken For(const Message& request) {
    return ReplyToken{request.from, request.request_id};
  }
};

enum class PeerState { kUp, kDown };

/// Called on the data thread for every one-way message and every request.
using MessageHandler = std::function<void(const Message&)>;
/// Called on the data thread when a peer's authenticated connection comes up
/// or goes down (peer restart, network failure, Shutdown). All Calls and
/// fetches in flight to a peer that goes down fail with Unavailable.
using PeerHandler = std::function<void(NodeId, PeerState)>;
/// Serves a request a peer made with CallOnLane, on the thread of the lane
/// it came on (never the data thread; several lanes' threads may run it at
/// once). Returns the response payload (at most max_message_bytes), which
/// must stay valid until the same thread calls the handler again (a
/// thread-local buffer). It may take locks but must not wait for the
/// network: the caller is blocked on the lane.
using LaneHandler =
    std::function<absl::Span<const uint8_t>(const Message& request)>;
/// Completion of Call, on the data thread. On error `response` is empty.
/// A peer that answers with ReplyError yields that status.
using ResponseCallback =
    absl::AnyInvocable<void(absl::Status, const Message& response)>;

enum class RegionAccess {
  /// Peers may fetch from it (and it may be a local fetch destination).
  kRemoteRead,
  /// Only a local destination for RDMA READs; never advertised to peers.
  kLocalOnly,
};

struct TransportOptions {
  /// The cluster secret (raw bytes, at least 16). LoadClusterSecret reads it
  /// from the config's secret_file with the permission checks.
  std::string secret;
  /// Largest message/request/response payload.
  uint32_t max_message_bytes = 16 * 1024;
  /// Largest single fetch.
  uint32_t max_fetch_bytes = 2 * 1024 * 1024;
  /// Bytes a peer's send queue may hold in user space, beyond what the
  /// kernel socket buffer (TCP) or the posted send slots (RDMA) hold. Sends
  /// beyond it wait or fail with ResourceExhausted.
  size_t send_queue_bytes = 4 * 1024 * 1024;
  /// Calls plus fetches in flight to one peer; more wait (blocking calls) or
  /// fail with ResourceExhausted (async calls).
  uint32_t max_outstanding = 128;
  /// A Fetch or Call without an answer by then fails with DeadlineExceeded
  /// and resets that peer's connection.
  absl::Duration op_timeout = absl::Seconds(10);
  absl::Duration handshake_timeout = absl::Seconds(5);
  /// Redial backoff after a failed connect or a lost connection: doubles
  /// from min to max, with jitter.
  absl::Duration reconnect_min = absl::Milliseconds(10);
  absl::Duration reconnect_max = absl::Seconds(1);
  /// Fetch lanes per peer (docs/TRANSPORT.md, "Fetch lanes"). A thread
  /// blocked in Fetch takes an idle lane of its own to the peer, which no
  /// data thread watches: on TCP an extra connection, authenticated like
  /// the main one, so the fetch is one sendmsg and one blocking recvmsg (the
  /// peer serves it from a thread blocked in recv); on RDMA an extra QP with
  /// its own completion queue and channel, so the thread sleeps on (or, with
  /// busy_poll, polls) its own completion. Lanes are set up on demand, up to
  /// this many per peer; a fetch that finds none idle uses the main
  /// connection meanwhile. A node accepts at
  /// most this many lanes per peer (each costs it a thread on TCP, a QP on
  /// RDMA). 0: every fetch uses the main connection.
  uint32_t fetch_lanes = 8;
  /// The nice value of the threads that serve peers (the data thread, TCP
  /// lanes' server threads), so that a peer's request preempts this host's
  /// vCPU threads (base/thread_priority.h). 0: inherited. Lowering it needs
  /// CAP_SYS_NICE; without it the threads keep their priority, with one
  /// warning.
  int service_nice = 0;

  // ---- TCP ----
  /// A thread blocked in Fetch/CallSync reads its own response; meanwhile
  /// the data thread stops watching that socket (one epoll_ctl, overlapped
  /// with the request's flight) and is switched back on when the call
  /// returns (another, on the caller's path). With a positive delay the
  /// switch-back is left to a timer that long after the first call, so a
  /// stream of fetches pays no epoll_ctl at all (interrupt coalescing). The
  /// price: an unsolicited message that arrives in that window while no
  /// call is reading waits up to the delay. Measured on a 2-vCPU VM, a
  /// timer firing inside a fetch stream costs more than it saves below
  /// ~200 us (docs/PERFORMANCE.md, "Transport"). Zero (the default): switch
  /// back after every call; messages are never delayed.
  absl::Duration tcp_rearm_delay = absl::ZeroDuration();

  // ---- RDMA ----
  /// Device name ("rxe0", "mlx5_0"); empty = the first device with an
  /// ACTIVE port.
  std::string rdma_device;
  uint8_t rdma_port = 1;
  /// GID table index; -1 = choose (docs/TRANSPORT.md, "GID selection").
  int gid_index = -1;
  /// Receive buffers posted per peer (each max_message_bytes + 16).
  uint32_t rdma_recv_depth = 64;
  /// Opt-in: blocking calls poll the completion queue from the calling
  /// thread instead of sleeping on the completion channel. Burns a CPU while
  /// a fetch is in flight; the lowest latency on RDMA.
  bool busy_poll = false;
};

struct TransportStats {
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t fetches = 0;
  uint64_t fetch_bytes = 0;
  uint64_t fetches_served = 0;  // TCP/loopback: fetches answered for peers
  uint64_t fetches_refused = 0;
  uint64_t bounce_copies = 0;  // RDMA READs that needed a bounce buffer
  uint64_t send_queue_full = 0;
  uint64_t connections_established = 0;
  uint64_t connections_lost = 0;
  uint64_t auth_failures = 0;
  uint64_t malformed_frames = 0;
  /// Largest user-space send queue seen (bytes), over all peers.
  uint64_t send_queue_high_water = 0;
  /// Fetch lanes (TransportOptions::fetch_lanes): fetches that went over a
  /// lane (included in `fetches`); lanes this node set up for its fetches
  /// (TCP: dialed and authenticated), lanes it accepted from peers, lanes
  /// it refused (beyond fetch_lanes, or from a peer whose main connection
  /// is not up); and, as gauges, the lanes open now that this node fetches
  /// over / serves for peers.
  uint64_t lane_fetches = 0;
  uint64_t lanes_dialed = 0;
  uint64_t lanes_accepted = 0;
  uint64_t lanes_refused = 0;
  uint64_t lanes_open = 0;
  uint64_t lanes_serving = 0;
  /// Lane calls (CallOnLane) this node made that went over a lane, and the
  /// ones it served for peers.
  uint64_t lane_calls = 0;
  uint64_t lane_calls_served = 0;
};

/// One peer's share of the traffic (TransportStats is the node's total),
/// for per-peer telemetry. Messages: Send and Call requests (not replies).
/// Bytes: their payloads and the replies', plus page bytes fetched from the
/// peer (received)
/// and, over TCP and loopback, served to it (sent; an RDMA READ of this
/// node's memory never passes through its CPU and is not seen). Errors: the
/// connection to the peer lost, and messages to it that could not be sent.
struct PeerTransportStats {
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t errors = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  NodeId self() const { return self_; }
  virtual BackendKind kind() const = 0;
  /// One line: backend and, for RDMA, device, port and GID.
  virtual std::string Describe() const = 0;

  /// Set before Start(). Without a message handler, requests are answered
  /// with an Unimplemented error and one-way messages are dropped (logged).
  virtual void SetMessageHandler(MessageHandler handler) = 0;
  virtual void SetPeerHandler(PeerHandler handler) = 0;
  /// Set before Start(). Without one, a lane call is answered with an
  /// Unimplemented error.
  virtual void SetLaneHandler(LaneHandler handler) = 0;

  /// Starts listening and dialing the peers. Returns when the listener is
  /// bound (or the backend device opened); connections come up in the
  /// background and are re-established with backoff after a peer restarts.
  virtual absl::Status Start() = 0;
  /// Stops accepting work, fails what is in flight with Unavailable, closes
  /// every connection and joins the transport's threads. Idempotent; the
  /// destructor calls it.
  virtual void Shutdown() = 0;

  virtual bool IsConnected(NodeId peer) const = 0;
  /// Waits until `peer` is connected (authenticated, regions exchanged).
  virtual absl::Status WaitForPeer(NodeId peer, absl::Time deadline) = 0;
  /// Waits until every other node of the cluster is connected.
  absl::Status WaitForAllPeers(absl::Time deadline);

  /// Registers [base, base + length) under `id` (unique per node). Peers can
  /// fetch from it once they have processed the advertisement, which reaches
  /// them before any message this node sends after the call.
  virtual absl::Status RegisterRegion(
      RegionId id, void* base, size_t length,
      RegionAccess access = RegionAccess::kRemoteRead) = 0;
  /// Withdraws a region. When it returns, no peer reads it any more (on
  /// RDMA: peers have acknowledged and their READs have drained, or their
  /// connection was reset) and the memory may be unmapped.
  virtual absl::Status UnregisterRegion(RegionId id) = 0;

  /// Sends a one-way message. When the peer's send queue is full, waits for
  /// room until `deadline`; InfinitePast() (the default) never waits and
  /// returns ResourceExhausted at once. Never waits on the data thread.
  /// Unavailable when the peer is not connected.
  virtual absl::Status Send(NodeId to, MessageType type,
                            absl::Span<const uint8_t> payload,
                            absl::Time deadline = absl::InfinitePast()) = 0;
  /// Sends a request; `done` runs on the data thread with the response.
  virtual absl::Status Call(NodeId to, MessageType type,
                            absl::Span<const uint8_t> payload,
                            ResponseCallback done) = 0;
  /// Sends a request and waits for the response, copied into `response`.
  /// Returns the response length; OutOfRange if it did not fit.
  virtual absl::StatusOr<size_t> CallSync(NodeId to, MessageType type,
                                          absl::Span<const uint8_t> payload,
                                          absl::Span<uint8_t> response) = 0;
  /// Answers a request. Never waits: a response always has room (a request
  /// in flight reserves it), so this fails only when the peer is gone.
  virtual absl::Status Reply(const ReplyToken& to, MessageType type,
                             absl::Span<const uint8_t> payload) = 0;
  /// Answers a request with an error the caller receives as its status.
  virtual absl::Status ReplyError(const ReplyToken& to,
                                  const absl::Status& error) = 0;

  /// Copies `dst.size()` bytes at `offset` of region `region` of `peer`
  /// into `dst`, blocking the calling thread (see FETCH above). There is
  /// no asynchronous fetch: its one user, a remote image's fault thread,
  /// waits for the page on its own lane (docs/TRANSPORT.md).
  virtual absl::Status Fetch(NodeId peer, RegionId region, uint64_t offset,
                             absl::Span<uint8_t> dst) = 0;

  /// A request served by the peer's LaneHandler over an idle lane of this
  /// node's to `to` (TCP: one sendmsg, one blocking recvmsg on both sides;
  /// RDMA: a RECV and a SEND on the lane's QP, each side waiting on its
  /// lane's own CQ; no data thread either way; TransportOptions::
  /// fetch_lanes bounds the lanes). The
  /// response is copied into `response`; returns its length. Unordered
  /// with everything else sent to `to`. Errors: ResourceExhausted when
  /// nothing was sent (no lane idle now: one is set up in the background;
  /// the backend has none: loopback), so the caller can take the
  /// main connection instead; Unavailable when the lane failed after the
  /// request left (the peer may have served it); DeadlineExceeded after
  /// op_timeout (the lane is closed); OutOfRange when the response did not
  /// fit. Blocks: not from a callback.
  virtual absl::StatusOr<size_t> CallOnLane(NodeId to, MessageType type,
                                            absl::Span<const uint8_t> payload,
                                            absl::Span<uint8_t> response) = 0;

  /// TransportOptions::max_message_bytes: the largest payload of a message
  /// this transport sends or accepts.
  virtual uint32_t max_message_bytes() const = 0;
  virtual TransportStats stats() const = 0;
  /// Indexed by node id (this node's own entry stays zero).
  virtual std::vector<PeerTransportStats> peer_stats() const = 0;

 protected:
  explicit Transport(NodeId self) : self_(self) {}

 private:
  NodeId self_;
};

/// Reads the cluster secret: refuses a missing file, one readable or
/// writable by group or others (like ssh's private keys), and a secret
/// shorter than 16 bytes. One trailing newline is not part of the secret.
absl::StatusOr<std::string> LoadClusterSecret(const std::string& path);

/// Creates the transport the config asks for (`transport`: "tcp", "rdma" or
/// "auto" = RDMA when a device with an active port exists, else TCP; the
/// choice is logged and shown by Describe()). `self` is this node's id; the
/// nodes' `address` fields are the listen/dial addresses (on RDMA, of the
/// authenticated control connection). When options.secret is empty it is
/// loaded from config.secret_file; options.rdma_device defaults to
/// config.rdma_device. The transport is not started.
absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(
    const cluster::ClusterConfig& config, NodeId self,
    TransportOptions options = {});

/// Backend-specific factories (CreateTransport picks one).
absl::StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(
    const cluster::ClusterConfig& config, NodeId self,
    TransportOptions options);
absl::StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(
    const cluster::ClusterConfig& config, NodeId self,
    TransportOptions options);

/// OK when RDMA is usable: the named device (or any) exists with an ACTIVE
/// port. The message says why not.
absl::Status ProbeRdmaDevice(const std::string& device_name, uint8_t port);

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TRANSPORT_H_
