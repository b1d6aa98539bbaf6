#include "sys/verbs.h"

#include <fcntl.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::rdmax::sys {

using base::ErrnoStatus;
using base::LastErrnoStatus;

absl::StatusOr<std::pair<DeviceList, int>> GetDeviceList() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) return LastErrnoStatus("ibv_get_device_list");
  return std::make_pair(DeviceList(list), n);
}

std::string DeviceName(ibv_device* device) {
  const char* name = ibv_get_device_name(device);
  return name != nullptr ? name : "?";
}

absl::StatusOr<Context> OpenDevice(ibv_device* device) {
  ibv_context* ctx = ibv_open_device(device);
  if (ctx == nullptr) {
    return LastErrnoStatus(
        absl::StrCat("ibv_open_device ", DeviceName(device)));
  }
  return Context(ctx);
}

absl::StatusOr<ibv_device_attr> QueryDevice(ibv_context* ctx) {
  ibv_device_attr attr{};
  if (int err = ibv_query_device(ctx, &attr); err != 0) {
    return ErrnoStatus(err, "ibv_query_device");
  }
  return attr;
}

absl::StatusOr<ibv_port_attr> QueryPort(ibv_context* ctx, uint8_t port) {
  ibv_port_attr attr{};
  if (int err = ibv_query_port(ctx, port, &attr); err != 0) {
    return ErrnoStatus(err, absl::StrCat("ibv_query_port port=", port));
  }
  return attr;
}

absl::StatusOr<ibv_gid_entry> QueryGidEx(ibv_context* ctx, uint8_t port,
                                         uint32_t index) {
  ibv_gid_entry entry{};
  if (int err = ibv_query_gid_ex(ctx, port, index, &entry, 0); err != 0) {
    return ErrnoStatus(
        err, absl::StrCat("ibv_query_gid_ex port=", port, " index=", index));
  }
  return entry;
}

absl::StatusOr<Pd> AllocPd(ibv_context* ctx) {
  ibv_pd* pd = ibv_alloc_pd(ctx);
  if (pd == nullptr) return LastErrnoStatus("ibv_alloc_pd");
  return Pd(pd);
}

absl::StatusOr<CompChannel> CreateCompChannel(ibv_context* ctx,
                                              bool nonblocking) {
  ibv_comp_channel* ch = ibv_create_comp_channel(ctx);
  if (ch == nullptr) return LastErrnoStatus("ibv_create_comp_channel");
  if (!nonblocking) return CompChannel(ch);
  int flags = ::fcntl(ch->fd, F_GETFL);
  if (flags < 0 || ::fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    absl::Status st = LastErrnoStatus("fcntl O_NONBLOCK comp channel");
    ibv_destroy_comp_channel(ch);
    return st;
  }
  return CompChannel(ch);
}

absl::StatusOr<Cq> CreateCq(ibv_context* ctx, int entries,
                            ibv_comp_channel* channel) {
  ibv_cq* cq = ibv_create_cq(ctx, entries, nullptr, channel, 0);
  if (cq == nullptr) {
    return LastErrnoStatus(absl::StrCat("ibv_create_cq entries=", entries));
  }
  return Cq(cq);
}

absl::StatusOr<Mr> RegMr(ibv_pd* pd, void* addr, size_t length, int access) {
  ibv_mr* mr = ibv_reg_mr(pd, addr, length, access);
  if (mr == nullptr) {
    return LastErrnoStatus(absl::StrCat(
        "ibv_reg_mr addr=0x", absl::Hex(reinterpret_cast<uintptr_t>(addr)),
        " length=", length));
  }
  return Mr(mr);
}

absl::StatusOr<Qp> CreateQp(ibv_pd* pd, ibv_qp_init_attr* attr) {
  ibv_qp* qp = ibv_create_qp(pd, attr);
  if (qp == nullptr) {
    return LastErrnoStatus(
        absl::StrCat("ibv_create_qp RC send_wr=", attr->cap.max_send_wr,
                     " recv_wr=", attr->cap.max_recv_wr));
  }
  return Qp(qp);
}

absl::Status ModifyQp(ibv_qp* qp, ibv_qp_attr* attr, int mask,
                      const char* what) {
  if (int err = ibv_modify_qp(qp, attr, mask); err != 0) {
    return ErrnoStatus(
        err, absl::StrCat("ibv_modify_qp ", what, " qpn=", qp->qp_num));
  }
  return absl::OkStatus();
}

absl::Status ReqNotifyCq(ibv_cq* cq) {
  if (int err = ibv_req_notify_cq(cq, 0); err != 0) {
    return ErrnoStatus(err, "ibv_req_notify_cq");
  }
  return absl::OkStatus();
}

ibv_cq* GetCqEvent(ibv_comp_channel* channel) {
  ibv_cq* cq = nullptr;
  void* context = nullptr;
  if (ibv_get_cq_event(channel, &cq, &context) != 0) return nullptr;
  return cq;
}

void AckCqEvents(ibv_cq* cq, unsigned int n) { ibv_ack_cq_events(cq, n); }

const char* WcStatusName(ibv_wc_status status) {
  return ibv_wc_status_str(status);
}

}  // namespace ssihv::rdmax::sys
