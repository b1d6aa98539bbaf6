// The in-process loopback backend: several transports in one process,
// attached to one fabric, behave like nodes of a cluster (same contract,
// same authentication, same bounds checks, the same message layer as TCP
// and RDMA) without sockets or devices.
// Protocol tests (libdirectory, libpager) use it to run many nodes in one
// process; the transport conformance suite runs against it too.
#ifndef SSIHV_RDMAX_LOOPBACK_H_
#define SSIHV_RDMAX_LOOPBACK_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/cluster/config.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::rdmax {

class LoopbackFabricImpl;

/// The "network" of the loopback backend. Transports created from it find
/// each other on Start() and lose each other on Shutdown()/destruction,
/// which peers observe as PeerState::kDown (a restart is a new transport
/// with the same id). Outlives nothing: each transport keeps it alive.
class LoopbackFabric {
 public:
  static std::shared_ptr<LoopbackFabric> Create(
      const cluster::ClusterConfig& config);

  /// A transport for node `self` (not started). options.secret must be set;
  /// nodes whose secrets differ fail authentication and never connect.
  absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(
      NodeId self, TransportOptions options);

  /// Test hook: runs the authentication handshake against the started
  /// transport of `target` as an impostor claiming node id `claimed` with
  /// `secret`. OK only when the target accepted it (a real node would then
  /// be connected); the impostor never sends messages.
  absl::Status TryAuthenticateAs(NodeId target, NodeId claimed,
                                 const std::string& secret);

  explicit LoopbackFabric(std::shared_ptr<LoopbackFabricImpl> impl);

 private:
  std::shared_ptr<LoopbackFabricImpl> impl_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_LOOPBACK_H_
