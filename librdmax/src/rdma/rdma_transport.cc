// The RDMA backend (being written: this commit only lands the TCP backend).
#include "ssihv/rdmax/transport.h"

namespace ssihv::rdmax {

absl::StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(
    const cluster::ClusterConfig&, NodeId, TransportOptions) {
  return absl::UnimplementedError(
      "rdma transport: not implemented yet in this build");
}

}  // namespace ssihv::rdmax
