// The RDMA backend (libibverbs RC). Resources are members in rdma-core
// rc_pingpong's acquisition order (device, PD, completion channel, CQs,
// MRs, QPs), so RAII tears them down in reverse.
//
// Per peer (RdmaPeer): one RC QP, receive buffers posted up front (SEND/RECV
// for messages, with credit-based flow control so a receiver never runs out
// of posted buffers), registered send slots, the peer's advertised regions
// (base, length, rkey) and the operations in flight. The authenticated TCP
// control connection carries the QP parameters and stays open: its end of
// file is the peer's death. Region tables and updates travel as SENDs, in
// FIFO order with the messages.
//
// Completions: one send CQ (SENDs, READs) and one receive CQ, shared by all
// peers. The receive CQ is event-driven on the data thread. The send CQ is
// event-driven too by default; with busy_poll, a thread blocked in Fetch
// polls it itself (whoever holds send_cq_mu_ processes every completion it
// finds), and the data thread polls it only while asynchronous work is in
// flight.
//
// Teardown of a peer: its QP goes to the error state, which flushes every
// posted work request; fetch operations complete only through their (flush)
// completion, so no READ can write into a buffer after its Fetch returned.
// The peer's memory is released once all its work requests have completed.
#ifndef SSIHV_RDMAX_RDMA_RDMA_TRANSPORT_H_
#define SSIHV_RDMAX_RDMA_RDMA_TRANSPORT_H_

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "control_plane.h"
#include "event_loop.h"
#include "framed_transport.h"
#include "pending.h"
#include "rdma/control_stream.h"
#include "rdma/device.h"
#include "rdma/rdma_lane.h"
#include "rdma/rdma_lane_server.h"
#include "rdma/send_signals.h"
#include "regions.h"
#include "ssihv/base/mapped_region.h"
#include "sys/verbs.h"
#include "tcp/byte_ring.h"

namespace ssihv::rdmax {

class RdmaTransport;
class RdmaPeer;

/// What a work request's wr_id points at.
struct WrTag {
  enum class Kind : uint8_t { kRecv, kSend, kRead };
  Kind kind = Kind::kRecv;
  RdmaPeer* peer = nullptr;
  uint32_t index = 0;       // receive buffer or send slot
  PendingOp* op = nullptr;  // kRead
};

class RdmaPeer final : public FrameChannel {
 public:
  RdmaPeer(RdmaTransport* t, NodeId id, base::UniqueFd control_fd,
           uint64_t token);
  ~RdmaPeer();

  /// Creates the QP (INIT) and the buffers and posts every receive.
  absl::Status Init();
  /// RTR and RTS with the peer's parameters.
  absl::Status Connect(const RdmaParamsPayload& remote);
  RdmaParamsPayload LocalParams() const;

  NodeId id() const { return id_; }
  NodeId peer() const override { return id_; }
  uint64_t token() const { return token_; }
  ControlStream& control() { return control_; }
  PendingTable& pending() override { return pending_; }
  bool dead() const { return dead_.load(std::memory_order_acquire); }
  bool up() const override { return up_.load(std::memory_order_acquire); }
  ibv_qp* qp() const { return qp_.get(); }

  /// Sends a frame as one SEND (or queues it, in order, until credits and a
  /// slot are free). Modes as on TCP.
  absl::Status SendFrame(const FrameHeader& h,
                         absl::Span<const uint8_t> payload, SendMode mode,
                         absl::Time deadline) override;
  /// Waits for the completion the data thread delivers (FrameChannel).
  void AwaitSync(PendingOp* op, absl::Time deadline) override;
  /// Posts queued frames while credits and slots allow. Any thread.
  void DrainQueue();

  // Completion handlers.
  void OnSendDone(const WrTag& tag, const ibv_wc& wc);
  void OnRecv(const WrTag& tag, const ibv_wc& wc);  // data thread

  /// Any thread: marks dead (once) and has the data thread tear down.
  void Close(absl::string_view reason) override;
  /// Registers a received request id (reserves room for its reply).
  bool TakeRequest(uint64_t id) override;
  /// Data thread: QP to error (flushes), fails calls, wakes senders.
  void Teardown();
  /// Work requests not yet completed (0: the peer's memory can go).
  bool Drained() const {
    return outstanding_.load(std::memory_order_acquire) == 0 &&
           posted_recvs_ == 0;
  }

  // Fetch support.
  std::shared_mutex& regions_mu() { return regions_mu_; }
  PeerRegions& regions() { return regions_; }
  WrTag* ReadTag(PendingOp* op);
  /// Posts `wr` on the QP counted as outstanding (and, if `async`, as
  /// asynchronous work for busy-poll mode); undoes both if the post fails.
  /// Returns ibv_post_send's error (0: posted).
  int PostCounted(ibv_send_wr* wr, bool async);
  void NoteWrPosted() { outstanding_.fetch_add(1, std::memory_order_relaxed); }
  void NoteWrDone() { NoteWrsDone(1); }
  void NoteWrsDone(int64_t n) {
    outstanding_.fetch_sub(n, std::memory_order_acq_rel);
  }

  // Connection state machine (data thread).
  bool remote_ready = false;
  bool connected = false;  // our QP is RTS
  /// Both QPs ready: SENDs may go out (queued frames drain then).
  void SetLinkUp();

  // Fetch lanes (rdma_lane.h; rdma_lanes.cc).
  RdmaLanes& lanes() { return lanes_; }
  /// Fetches over a lane hold the peer: counted so Shutdown waits for them.
  std::atomic<int>& lane_users() { return lane_users_; }
  /// A lane READ of `region` starts (called under the shared regions_mu_
  /// lock, with the region checked) / finished. A region's removal is
  /// acknowledged only once its lane READs have finished.
  void LaneReadStarted(uint32_t region);
  void LaneReadDone(uint32_t region);
  // Data thread: lanes asked of the peer until accepted, by number; the
  // responders of the lanes the peer set up to this node.
  absl::flat_hash_map<uint64_t, std::shared_ptr<RdmaLane>> lanes_asked;
  uint64_t next_lane_number = 0;
  std::vector<std::unique_ptr<RdmaLaneServer>> served_lanes;

 private:
  friend class RdmaTransport;
  bool CanPostLocked() const {
    return link_up_ && credits_ > 0 && !free_slots_.empty();
  }
  /// Posts the frame already copied into send slot `slot` (send_mu_ held).
  bool PostSlotLocked(uint32_t slot, size_t length, bool credit_frame);
  void ReturnCreditsLocked();
  /// Teardown, QP in error, send_mu_ held: a signaled SEND behind the
  /// unsignaled ones, so their slots are accounted for (send_signals.h).
  void PostDrainLocked();
  /// The backend's own SEND frames (region adverts, credits): called for
  /// what FramedTransport::ReceiveFrame did not take.
  void Dispatch(const FrameHeader& h, absl::Span<const uint8_t> payload);
  /// The fenced acknowledgement of a withdrawn region.
  void SendRemoveAck(uint32_t region);
  absl::Status Repost(uint32_t index);

  RdmaTransport* const t_;
  const NodeId id_;
  const uint64_t token_;
  const uint32_t depth_;     // receive buffers = send slots
  const size_t slot_bytes_;  // header + max message
  ControlStream control_;
  std::atomic<bool> dead_{false};
  std::atomic<bool> up_{false};
  uint32_t psn_ = 0;
  RdmaParamsPayload remote_{};

  // Memory first, QP last: the QP is destroyed before the buffers.
  base::MappedRegion recv_mem_;
  sys::Mr recv_mr_;
  base::MappedRegion send_mem_;
  sys::Mr send_mr_;
  sys::Qp qp_;
  std::vector<WrTag> recv_tags_;
  std::vector<WrTag> send_tags_;
  std::vector<WrTag> read_tags_;
  uint32_t posted_recvs_ = 0;  // data thread
  std::atomic<int64_t> outstanding_{0};

  // Send side.
  std::mutex send_mu_;
  std::condition_variable send_cv_;
  std::vector<uint32_t> free_slots_;
  // Which SENDs ask for a completion, and the slots of those not yet known
  // complete (send_signals.h).
  SendSignals signals_;
  bool link_up_ = false;
  int64_t credits_ = 0;
  ByteRing queue_;
  size_t capacity_;
  size_t reserved_ = 0;
  size_t reply_cost_;
  absl::flat_hash_set<uint64_t> open_requests_;
  uint32_t credits_to_return_ = 0;

  std::shared_mutex regions_mu_;
  PeerRegions regions_;
  PendingTable pending_;

  RdmaLanes lanes_;
  std::atomic<int> lane_users_{0};
  std::mutex lane_reads_mu_;
  absl::flat_hash_map<uint32_t, uint32_t> lane_reads_;  // region -> READs
  std::vector<uint32_t> acks_waiting_;  // regions removed mid-READ
};

class RdmaTransport final : public FramedTransport {
 public:
  RdmaTransport(const cluster::ClusterConfig& config, NodeId self,
                TransportOptions options, OpenedDevice device, ChosenGid gid);
  ~RdmaTransport() override;

  BackendKind kind() const override { return BackendKind::kRdma; }
  std::string Describe() const override;
  absl::Status Start() override;
  void Shutdown() override;

  absl::Status RegisterRegion(RegionId id, void* base, size_t length,
                              RegionAccess access) override;
  absl::Status UnregisterRegion(RegionId id) override;
  absl::Status Fetch(NodeId peer, RegionId region, uint64_t offset,
                     absl::Span<uint8_t> dst) override;
  absl::StatusOr<size_t> CallOnLane(NodeId to, MessageType type,
                                    absl::Span<const uint8_t> payload,
                                    absl::Span<uint8_t> response) override;

  // ---- for RdmaPeer ----
  const TransportOptions& options() const { return options_; }
  const FrameLimits& limits() const { return limits_; }
  const OpenedDevice& device() const { return device_; }
  const ChosenGid& gid() const { return gid_; }
  ibv_pd* pd() const { return pd_.get(); }
  ibv_cq* send_cq() const { return send_cq_.get(); }
  ibv_cq* recv_cq() const { return recv_cq_.get(); }
  EventLoop& loop() override { return loop_; }
  AtomicStats& atomic_stats() { return stats_; }
  LocalRegions& regions() { return regions_; }
  void OnPeerTable(RdmaPeer* peer);
  void PostTeardown(RdmaPeer* peer);
  void NoteAsync(int delta);
  void OnRegionRemoveAck(NodeId peer, uint32_t region);
  /// A closed peer's lane servers, shut down: joined once their threads
  /// end (OnTick) or at Shutdown, never waited for on the data thread.
  void RetireLaneServers(std::vector<std::unique_ptr<RdmaLaneServer>> lanes);
  bool on_data_thread() const { return OnDataThread(); }
  /// Device resources (PD, completion channel, CQs, bounce buffers); called
  /// by the factory so that memory can be registered before Start().
  absl::Status CreateResources();

 private:
  // Bounce buffers for fetches into unregistered memory.
  static constexpr int kBounceSlots = 16;
  static constexpr size_t kBounceBytes = 64 * 1024;
  struct Bounce {
    uint8_t* data;
    uint32_t lkey;
    int index;
  };
  void RunDataThread();
  void Adopt(ControlPlane::Authenticated a);
  absl::Status OnControlFrame(RdmaPeer* peer, const Frame& f);
  void OnControlEvents(RdmaPeer* peer, uint32_t events);
  void OnCqEvents();
  /// Processes send-CQ completions (caller holds send_cq_mu_).
  int PollSendCq();
  int PollRecvCq();
  void ReapDrained();
  void FinishRead(PendingOp* op, RdmaPeer* peer, const ibv_wc& wc);
  void OnTick();
  absl::StatusOr<std::shared_ptr<RdmaPeer>> Peer(NodeId id,
                                                 absl::string_view op);
  absl::StatusOr<std::shared_ptr<FrameChannel>> Channel(
      NodeId peer, absl::string_view op) override;
  // ---- fetch lanes (rdma_lanes.cc) ----
  std::optional<absl::Status> FetchOverLane(
      const std::shared_ptr<RdmaPeer>& peer, RegionId region, uint64_t offset,
      absl::Span<uint8_t> dst, absl::Time deadline);
  /// Has the data thread set up one more lane to `peer`.
  void RequestLane(const std::shared_ptr<RdmaPeer>& peer);
  void SetUpLane(const std::shared_ptr<RdmaPeer>& peer);
  /// Control frames: a peer asks for a lane / answers this node's request.
  absl::Status OnLaneRequest(RdmaPeer* peer, const Frame& f);
  absl::Status OnLaneAccept(RdmaPeer* peer, const Frame& f);

  /// Where a READ into `dst` lands: `dst` itself when it lies in a
  /// registered region, else a bounce buffer (waited for until
  /// `wait_until`).
  struct ReadTarget {
    uint64_t addr = 0;
    uint32_t lkey = 0;
    int bounce = -1;
  };
  absl::StatusOr<ReadTarget> TargetFor(NodeId peer, absl::Span<uint8_t> dst,
                                       absl::Time wait_until);
  absl::StatusOr<PendingOp*> PostRead(RdmaPeer& peer, RegionId region,
                                      uint64_t offset, absl::Span<uint8_t> dst,
                                      absl::Time deadline);
  /// Busy-poll wait: polls the send CQ until `op` is done or `deadline`.
  bool PollUntil(PendingOp* op, absl::Time deadline);
  bool AcquireBounce(size_t length, absl::Time deadline, Bounce* out);
  void ReleaseBounce(int index);
  void AdvertiseTo(RdmaPeer& peer);  // regions_ exclusive lock held
  std::vector<std::shared_ptr<FrameChannel>> Advertised() override;
  void UpdateControlArm(RdmaPeer* peer);

  // Acquisition order (RAII releases in reverse).
  OpenedDevice device_;
  ChosenGid gid_;
  sys::Pd pd_;
  sys::CompChannel channel_;
  sys::Cq send_cq_;
  sys::Cq recv_cq_;
  base::MappedRegion bounce_mem_;
  sys::Mr bounce_mr_;
  std::map<RegionId, sys::Mr> region_mrs_;  // guarded by regions_.mutex()

  std::mutex bounce_mu_;
  std::condition_variable bounce_cv_;
  std::vector<int> free_bounce_;

  std::mutex send_cq_mu_;  // the send-CQ poller role
  std::atomic<int> async_outstanding_{0};
  // Data thread: CQ events not yet acknowledged (acked in batches, and all
  // before the CQs are destroyed), and the shutdown drain.
  uint32_t unacked_send_events_ = 0;
  uint32_t unacked_recv_events_ = 0;
  bool closing_ = false;
  absl::Time shutdown_limit_;

  std::mutex peers_mu_;
  std::vector<std::shared_ptr<RdmaPeer>> current_;  // per node id
  std::vector<std::shared_ptr<RdmaPeer>> advertised_;
  // Data thread only: every live or draining peer by control token.
  absl::flat_hash_map<uint64_t, std::shared_ptr<RdmaPeer>> by_token_;
  std::vector<std::shared_ptr<RdmaPeer>> draining_;
  // Data thread, then Shutdown after it ends: closed peers' lane servers.
  std::vector<std::unique_ptr<RdmaLaneServer>> retired_lanes_;
  uint64_t next_token_ = 16;  // below: reserved tokens

  // UnregisterRegion waits for every peer's acknowledgement.
  std::mutex acks_mu_;
  std::condition_variable acks_cv_;
  std::map<std::pair<uint32_t, NodeId>, bool> acks_;

  std::unique_ptr<ControlPlane> control_;
  EventLoop loop_;
  std::thread data_thread_;
  std::mutex state_mu_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_RDMA_TRANSPORT_H_
