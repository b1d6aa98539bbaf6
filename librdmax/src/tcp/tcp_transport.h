// The TCP backend: the Asio control plane authenticates connections, the
// data thread (EventLoop) owns them (TcpConnection). One connection per peer
// pair: the higher id dials, a newer authenticated connection from the same
// peer replaces the old one (a restarted peer). Blocking fetches go over
// fetch lanes where they can (fetch_lane.h, lane_server.h; tcp_lanes.cc).
#ifndef SSIHV_RDMAX_TCP_TCP_TRANSPORT_H_
#define SSIHV_RDMAX_TCP_TCP_TRANSPORT_H_

#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "control_plane.h"
#include "event_loop.h"
#include "framed_transport.h"
#include "tcp/lane_server.h"
#include "tcp/tcp_connection.h"

namespace ssihv::rdmax {

class TcpTransport final : public FramedTransport {
 public:
  TcpTransport(const cluster::ClusterConfig& config, NodeId self,
               TransportOptions options);
  ~TcpTransport() override;

  BackendKind kind() const override { return BackendKind::kTcp; }
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

  // ---- for TcpConnection ----
  EventLoop& loop() override { return loop_; }
  const TransportOptions& options() const { return options_; }
  const FrameLimits& limits() const { return limits_; }
  LocalRegions& regions() { return regions_; }
  AtomicStats& atomic_stats() { return stats_; }
  void OnConnectionUp(std::shared_ptr<TcpConnection> conn);
  void PostTeardown(std::shared_ptr<TcpConnection> conn);
  void PostService(std::shared_ptr<TcpConnection> conn);
  /// Has the data thread watch `conn`'s socket again after tcp_rearm_delay.
  void RestoreInLater(std::shared_ptr<TcpConnection> conn);

 private:
  void RunDataThread();
  void OnRestoreTimer();
  void Adopt(ControlPlane::Authenticated a);
  // ---- fetch lanes (tcp_lanes.cc) ----
  /// Asks the control plane for one more fetch lane of `conn`.
  void RequestLane(const std::shared_ptr<TcpConnection>& conn);
  /// Data thread: `peer` dialed a fetch lane to this node.
  void AdoptLane(NodeId peer, base::UniqueFd fd);
  /// Data thread: closes the lanes accepted while `conn` was the peer's
  /// main connection (it went down, or was replaced).
  void StopServedLanes(const TcpConnection& conn);
  /// After the data thread stopped: closes and joins every served lane.
  void JoinServedLanes();
  /// A blocking fetch over an idle lane of `conn`. nullopt: no lane was
  /// idle, or it broke before an answer (use the main connection).
  std::optional<absl::Status> FetchOverLane(
      const std::shared_ptr<TcpConnection>& conn, RegionId region,
      uint64_t offset, absl::Span<uint8_t> dst, absl::Time deadline);
  /// Length and bounds of a fetch against the peer's advertised regions.
  absl::Status CheckFetch(TcpConnection& conn, RegionId region, uint64_t offset,
                          absl::Span<uint8_t> dst);
  /// The up connection to `peer`, or Unavailable / InvalidArgument.
  absl::StatusOr<std::shared_ptr<TcpConnection>> Connection(
      NodeId peer, absl::string_view op);
  absl::StatusOr<std::shared_ptr<FrameChannel>> Channel(
      NodeId peer, absl::string_view op) override;
  /// Sends the request frame of the fetch `op` (claimed by StartFetch).
  absl::Status SendFetchRequest(TcpConnection& conn, const PendingOp& op,
                                RegionId region, uint64_t offset, SendMode mode,
                                absl::Time deadline);
  /// Claims a pending slot for a Fetch that passed CheckFetch.
  absl::StatusOr<PendingOp*> StartFetch(TcpConnection& conn, RegionId region,
                                        absl::Span<uint8_t> dst,
                                        absl::Time deadline);
  std::vector<std::shared_ptr<FrameChannel>> Advertised() override;

  std::unique_ptr<ControlPlane> control_;
  EventLoop loop_;
  std::thread data_thread_;
  std::mutex state_mu_;  // started_/stopped_
  bool started_ = false;
  bool stopped_ = false;

  std::mutex conns_mu_;
  std::vector<std::shared_ptr<TcpConnection>> current_;  // up, per peer
  // Connections that have been sent this node's region table; updated with
  // regions_.mutex() held exclusively so each region is advertised once.
  std::vector<std::shared_ptr<TcpConnection>> advertised_;
  // Data thread only.
  absl::flat_hash_map<uint64_t, std::shared_ptr<TcpConnection>> by_token_;
  uint64_t next_token_ = 16;  // below: the loop's own fds

  // Fetch lanes peers dialed to this node, each with its thread, and the
  // token of the main connection that was up when it was accepted.
  std::mutex served_mu_;
  std::vector<std::pair<uint64_t, std::unique_ptr<ServedLane>>> served_;

  // Sockets switched off by callers, switched back on by the timer.
  base::UniqueFd restore_timer_;
  std::mutex restore_mu_;
  std::vector<std::shared_ptr<TcpConnection>> restore_;
  bool restore_armed_ = false;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TCP_TCP_TRANSPORT_H_
