// Opening the RDMA device: by name or the first with an ACTIVE port, and
// choosing the GID this node uses (docs/TRANSPORT.md, "GID selection").
#ifndef SSIHV_RDMAX_RDMA_DEVICE_H_
#define SSIHV_RDMAX_RDMA_DEVICE_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "sys/verbs.h"

namespace ssihv::rdmax {

struct OpenedDevice {
  sys::Context context;
  std::string name;
  uint8_t port = 1;
  ibv_port_attr port_attr{};
  ibv_device_attr device_attr{};
};

/// Opens `name` (empty: the first device whose `port` is ACTIVE).
absl::StatusOr<OpenedDevice> OpenRdmaDevice(const std::string& name,
                                            uint8_t port);

struct ChosenGid {
  int index = 0;
  std::array<uint8_t, 16> gid{};
  std::string description;  // "fe80::... RoCE v2" for logs and Describe()
};

/// The GID table entry to use: `forced_index` when >= 0, else on RoCE the
/// best of the first entries: a routable RoCE v2 GID, then a link-local
/// RoCE v2 one (SoftRoCE on a link with only an IPv6 link-local address,
/// as in the lab VM), then RoCE v1; on InfiniBand index 0.
absl::StatusOr<ChosenGid> ChooseGid(const OpenedDevice& device,
                                    int forced_index);

std::string FormatGid(const std::array<uint8_t, 16>& gid);

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_DEVICE_H_
