// CreateTransport: the backend the cluster config asks for.
#include "ssihv/rdmax/transport.h"

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::rdmax {

absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(
    const cluster::ClusterConfig& config, NodeId self,
    TransportOptions options) {
  if (options.secret.empty()) {
    SSIHV_ASSIGN_OR_RETURN(options.secret,
                           LoadClusterSecret(config.secret_file));
  }
  if (options.rdma_device.empty()) options.rdma_device = config.rdma_device;
  switch (config.transport) {
    case cluster::TransportKind::kTcp:
      return CreateTcpTransport(config, self, std::move(options));
    case cluster::TransportKind::kRdma:
      return CreateRdmaTransport(config, self, std::move(options));
    case cluster::TransportKind::kAuto: {
      absl::Status probe =
          ProbeRdmaDevice(options.rdma_device, options.rdma_port);
      if (probe.ok()) {
        base::Log(
            base::LogLevel::kInfo, "rdmax node ", self,
            ": transport auto: chose rdma (",
            options.rdma_device.empty() ? "first device" : options.rdma_device,
            ")");
        return CreateRdmaTransport(config, self, std::move(options));
      }
      base::Log(base::LogLevel::kInfo, "rdmax node ", self,
                ": transport auto: chose tcp (no usable RDMA device: ",
                probe.message(), ")");
      return CreateTcpTransport(config, self, std::move(options));
    }
  }
  return absl::InvalidArgumentError("transport: unknown kind");
}

}  // namespace ssihv::rdmax
