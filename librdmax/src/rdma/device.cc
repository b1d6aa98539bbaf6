#include "rdma/device.h"

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::rdmax {
namespace {

// Reading the GID table is slow on SoftRoCE (sysfs-backed on some kernels):
// look at the first entries only, where every configured address is.
constexpr uint32_t kGidsToScan = 16;

bool IsZero(const std::array<uint8_t, 16>& gid) {
  for (uint8_t b : gid) {
    if (b != 0) return false;
  }
  return true;
}

bool IsLinkLocal(const std::array<uint8_t, 16>& gid) {
  return gid[0] == 0xfe && (gid[1] & 0xc0) == 0x80;
}

const char* GidTypeName(uint32_t type) {
  switch (type) {
    case IBV_GID_TYPE_IB:
      return "IB";
    case IBV_GID_TYPE_ROCE_V1:
      return "RoCE v1";
    case IBV_GID_TYPE_ROCE_V2:
      return "RoCE v2";
  }
  return "?";
}

}  // namespace

std::string FormatGid(const std::array<uint8_t, 16>& gid) {
  char buf[40];
  std::snprintf(
      buf, sizeof(buf),
      "%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:"
      "%02x%02x",
      gid[0], gid[1], gid[2], gid[3], gid[4], gid[5], gid[6], gid[7], gid[8],
      gid[9], gid[10], gid[11], gid[12], gid[13], gid[14], gid[15]);
  return buf;
}

absl::StatusOr<OpenedDevice> OpenRdmaDevice(const std::string& name,
                                            uint8_t port) {
  SSIHV_ASSIGN_OR_RETURN(auto list, sys::GetDeviceList());
  auto& [devices, count] = list;
  if (count == 0) {
    return absl::NotFoundError(
        "no RDMA device (ibv_get_device_list is empty; for SoftRoCE: "
        "modprobe rdma_rxe && rdma link add rxe0 type rxe netdev <if>)");
  }
  std::string tried;
  for (int i = 0; i < count; ++i) {
    ibv_device* dev = devices.get()[i];
    std::string dev_name = sys::DeviceName(dev);
    if (!name.empty() && dev_name != name) continue;
    absl::StatusOr<sys::Context> ctx = sys::OpenDevice(dev);
    if (!ctx.ok()) {
      absl::StrAppend(&tried, " ", ctx.status().message(), ";");
      continue;
    }
    absl::StatusOr<ibv_port_attr> pattr = sys::QueryPort(ctx->get(), port);
    if (!pattr.ok() || pattr->state != IBV_PORT_ACTIVE) {
      absl::StrAppend(&tried, " ", dev_name, " port ", port, " not ACTIVE;");
      continue;
    }
    SSIHV_ASSIGN_OR_RETURN(ibv_device_attr dattr, sys::QueryDevice(ctx->get()));
    OpenedDevice out;
    out.context = std::move(*ctx);
    out.name = dev_name;
    out.port = port;
    out.port_attr = *pattr;
    out.device_attr = dattr;
    return out;
  }
  if (!name.empty() && tried.empty()) {
    return absl::NotFoundError(
        absl::StrCat("rdma_device '", name, "': no such device"));
  }
  return absl::UnavailableError(absl::StrCat("no usable RDMA device:", tried));
}

absl::StatusOr<ChosenGid> ChooseGid(const OpenedDevice& device,
                                    int forced_index) {
  ibv_context* ctx = device.context.get();
  const bool roce = device.port_attr.link_layer == IBV_LINK_LAYER_ETHERNET;
  auto describe = [](const ibv_gid_entry& e, ChosenGid* out) {
    std::memcpy(out->gid.data(), e.gid.raw, 16);
    out->index = static_cast<int>(e.gid_index);
    out->description =
        absl::StrCat("gid[", e.gid_index, "] ", FormatGid(out->gid), " ",
                     GidTypeName(e.gid_type));
  };
  if (forced_index >= 0 || !roce) {
    uint32_t index =
        forced_index >= 0 ? static_cast<uint32_t>(forced_index) : 0;
    SSIHV_ASSIGN_OR_RETURN(ibv_gid_entry e,
                           sys::QueryGidEx(ctx, device.port, index));
    ChosenGid out;
    describe(e, &out);
    if (roce && IsZero(out.gid)) {
      return absl::FailedPreconditionError(
          absl::StrCat(device.name, " gid_index ", index, " is empty"));
    }
    return out;
  }
  // RoCE: rank the populated entries.
  int best_rank = -1;
  ChosenGid best;
  uint32_t n = std::min<uint32_t>(kGidsToScan, device.port_attr.gid_tbl_len);
  for (uint32_t i = 0; i < n; ++i) {
    absl::StatusOr<ibv_gid_entry> e = sys::QueryGidEx(ctx, device.port, i);
    if (!e.ok()) continue;  // an empty slot reads as an error
    ChosenGid candidate;
    describe(*e, &candidate);
    if (IsZero(candidate.gid)) continue;
    int rank = 0;
    if (e->gid_type == IBV_GID_TYPE_ROCE_V2) {
      rank = IsLinkLocal(candidate.gid) ? 2 : 3;
    } else if (e->gid_type == IBV_GID_TYPE_ROCE_V1) {
      rank = 1;
    }
    if (rank > best_rank) {
      best_rank = rank;
      best = candidate;
    }
  }
  if (best_rank < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        device.name, " port ", device.port,
        " has no GID: give its netdev an address (an IPv6 link-local one "
        "is enough)"));
  }
  return best;
}

absl::Status ProbeRdmaDevice(const std::string& device_name, uint8_t port) {
  return OpenRdmaDevice(device_name, port).status();
}

}  // namespace ssihv::rdmax
