// The TCP backend: the Asio control plane authenticates connections, the
// data thread (EventLoop) owns them (TcpConnection). One connection per peer
// pair: the higher id dials, a newer authenticated connection from the same
// peer replaces the old one (a restarted peer). A connection is up as soon
// as the data thread adopts it.
#ifndef SSIHV_RDMAX_TCP_TCP_TRANSPORT_H_
#define SSIHV_RDMAX_TCP_TCP_TRANSPORT_H_

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "control_plane.h"
#include "event_loop.h"
#include "framed_transport.h"
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

  // ---- for TcpConnection ----
  EventLoop& loop() override { return loop_; }
  const TransportOptions& options() const { return options_; }
  const FrameLimits& limits() const { return limits_; }
  AtomicStats& atomic_stats() { return stats_; }
  void PostTeardown(std::shared_ptr<TcpConnection> conn);
  void PostService(std::shared_ptr<TcpConnection> conn);
  /// Has the data thread watch `conn`'s socket again after tcp_rearm_delay.
  void RestoreInLater(std::shared_ptr<TcpConnection> conn);

 private:
  void RunDataThread();
  void OnRestoreTimer();
  void Adopt(ControlPlane::Authenticated a);
  /// Data thread: `conn` (just adopted) is the peer's connection now.
  void OnConnectionUp(const std::shared_ptr<TcpConnection>& conn);
  /// The up connection to `peer`, or Unavailable / InvalidArgument.
  absl::StatusOr<std::shared_ptr<TcpConnection>> Connection(
      NodeId peer, absl::string_view op);
  absl::StatusOr<std::shared_ptr<FrameChannel>> Channel(
      NodeId peer, absl::string_view op) override;

  std::unique_ptr<ControlPlane> control_;
  EventLoop loop_;
  std::thread data_thread_;
  std::mutex state_mu_;  // started_/stopped_
  bool started_ = false;
  bool stopped_ = false;

  std::mutex conns_mu_;
  std::vector<std::shared_ptr<TcpConnection>> current_;  // up, per peer
  // Data thread only.
  absl::flat_hash_map<uint64_t, std::shared_ptr<TcpConnection>> by_token_;
  uint64_t next_token_ = 16;  // below: the loop's own fds

  // Sockets switched off by callers, switched back on by the timer.
  base::UniqueFd restore_timer_;
  std::mutex restore_mu_;
  std::vector<std::shared_ptr<TcpConnection>> restore_;
  bool restore_armed_ = false;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TCP_TCP_TRANSPORT_H_
