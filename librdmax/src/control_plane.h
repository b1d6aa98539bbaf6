// The control plane of the TCP and RDMA backends, on Boost.Asio: listens on
// this node's address, dials every lower-id node (with exponential backoff
// and jitter, again after a lost connection), and authenticates each
// connection (auth.h) under a deadline. An authenticated socket is handed
// to the backend; a failed one is closed with a logged reason, before the
// backend ever sees it.
//
// Runs its own thread (the io_context); the backend's callbacks run there.
//
// TCP fetch lanes (docs/TRANSPORT.md, "Fetch lanes") are dialed here too,
// one at a time on the backend's request, with the same handshake under
// backend kTcpLane; accepted lanes reach the backend flagged `lane`.
#ifndef SSIHV_RDMAX_CONTROL_PLANE_H_
#define SSIHV_RDMAX_CONTROL_PLANE_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "auth.h"
#include "ssihv/cluster/config.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::rdmax {

class ControlPlaneImpl;

class ControlPlane {
 public:
  /// An authenticated connection: the socket is the backend's now (asio
  /// object for backends that keep using Asio on it).
  struct Authenticated {
    NodeId peer;
    bool dialer;        // this node dialed
    int fd;             // released from Asio: the backend owns (and closes) it
    bool lane = false;  // an accepted TCP fetch lane (the peer dialed it)
  };
  /// The outcome of DialLane: the authenticated socket (the backend owns
  /// it) or why not. Runs on the control plane's thread, exactly once.
  using LaneDone = std::function<void(absl::StatusOr<int> fd)>;
  using OnAuthenticated = std::function<void(Authenticated)>;
  using OnAuthFailure = std::function<void(const absl::Status&)>;

  ControlPlane(const cluster::ClusterConfig& config, NodeId self,
               const TransportOptions& options, WireBackend backend,
               OnAuthenticated on_authenticated, OnAuthFailure on_failure);
  ~ControlPlane();

  /// Binds the listener (errors name the address) and starts dialing.
  absl::Status Start();
  /// Stops listening and dialing; joins the thread. Idempotent.
  void Stop();
  /// The connection to `peer` was lost: if this node dials it, redial after
  /// the backoff. Thread-safe.
  void ConnectionLost(NodeId peer);
  /// Dials one TCP fetch lane to `peer` (any other node) and authenticates
  /// it; no retry (the backend decides). Thread-safe.
  void DialLane(NodeId peer, LaneDone done);

 private:
  std::shared_ptr<ControlPlaneImpl> impl_;
  std::thread thread_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_CONTROL_PLANE_H_
