// Raw libibverbs calls of librdmax, one function per verb, and the RAII
// owners of verbs objects (unique_ptr with a deleter that calls the
// matching destroy verb). Nothing outside src/sys/ calls ibv_* directly.
//
// The data-path verbs (post_send, post_recv, poll_cq) are inline: in
// rdma-core they are themselves inline calls through the provider's ops
// table, and an extra out-of-line hop per fetch buys nothing.
#ifndef SSIHV_RDMAX_SYS_VERBS_H_
#define SSIHV_RDMAX_SYS_VERBS_H_

#include <infiniband/verbs.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ssihv::rdmax::sys {

struct DeviceListDeleter {
  void operator()(ibv_device** list) const { ibv_free_device_list(list); }
};
struct ContextDeleter {
  void operator()(ibv_context* c) const { ibv_close_device(c); }
};
struct PdDeleter {
  void operator()(ibv_pd* pd) const { ibv_dealloc_pd(pd); }
};
struct CompChannelDeleter {
  void operator()(ibv_comp_channel* ch) const { ibv_destroy_comp_channel(ch); }
};
struct CqDeleter {
  void operator()(ibv_cq* cq) const { ibv_destroy_cq(cq); }
};
struct MrDeleter {
  void operator()(ibv_mr* mr) const { ibv_dereg_mr(mr); }
};
struct QpDeleter {
  void operator()(ibv_qp* qp) const { ibv_destroy_qp(qp); }
};

using DeviceList = std::unique_ptr<ibv_device*, DeviceListDeleter>;
using Context = std::unique_ptr<ibv_context, ContextDeleter>;
using Pd = std::unique_ptr<ibv_pd, PdDeleter>;
using CompChannel = std::unique_ptr<ibv_comp_channel, CompChannelDeleter>;
using Cq = std::unique_ptr<ibv_cq, CqDeleter>;
using Mr = std::unique_ptr<ibv_mr, MrDeleter>;
using Qp = std::unique_ptr<ibv_qp, QpDeleter>;

/// ibv_get_device_list: the devices and their count.
absl::StatusOr<std::pair<DeviceList, int>> GetDeviceList();
std::string DeviceName(ibv_device* device);
/// ibv_open_device.
absl::StatusOr<Context> OpenDevice(ibv_device* device);
/// ibv_query_device.
absl::StatusOr<ibv_device_attr> QueryDevice(ibv_context* ctx);
/// ibv_query_port.
absl::StatusOr<ibv_port_attr> QueryPort(ibv_context* ctx, uint8_t port);
/// ibv_query_gid_ex (type and netdev of one GID table entry).
absl::StatusOr<ibv_gid_entry> QueryGidEx(ibv_context* ctx, uint8_t port,
                                         uint32_t index);
/// ibv_alloc_pd.
absl::StatusOr<Pd> AllocPd(ibv_context* ctx);
/// ibv_create_comp_channel; `nonblocking` for a channel waited for in epoll
/// (the data thread's), blocking for one a thread sleeps on (a fetch lane).
absl::StatusOr<CompChannel> CreateCompChannel(ibv_context* ctx,
                                              bool nonblocking = true);
/// ibv_create_cq.
absl::StatusOr<Cq> CreateCq(ibv_context* ctx, int entries,
                            ibv_comp_channel* channel);
/// ibv_reg_mr. Pins the pages (see transport.h, MEMORY REGIONS).
absl::StatusOr<Mr> RegMr(ibv_pd* pd, void* addr, size_t length, int access);
/// ibv_create_qp.
absl::StatusOr<Qp> CreateQp(ibv_pd* pd, ibv_qp_init_attr* attr);
/// ibv_modify_qp; `what` names the transition in the error.
absl::Status ModifyQp(ibv_qp* qp, ibv_qp_attr* attr, int mask,
                      const char* what);
/// ibv_req_notify_cq.
absl::Status ReqNotifyCq(ibv_cq* cq);
/// ibv_get_cq_event: the CQ with an event; nullptr when there is none now
/// (non-blocking channel) or on error. On a blocking channel it sleeps
/// until an armed CQ gets a completion.
ibv_cq* GetCqEvent(ibv_comp_channel* channel);
/// ibv_ack_cq_events.
void AckCqEvents(ibv_cq* cq, unsigned int n);
/// ibv_wc_status_str: the name of a completion status.
const char* WcStatusName(ibv_wc_status status);

/// ibv_post_send: 0 or an errno value.
inline int PostSend(ibv_qp* qp, ibv_send_wr* wr) {
  ibv_send_wr* bad = nullptr;
  return ibv_post_send(qp, wr, &bad);
}
/// ibv_post_recv: 0 or an errno value.
inline int PostRecv(ibv_qp* qp, ibv_recv_wr* wr) {
  ibv_recv_wr* bad = nullptr;
  return ibv_post_recv(qp, wr, &bad);
}
/// ibv_poll_cq: completions written to `wc` (< 0 on error).
inline int PollCq(ibv_cq* cq, int n, ibv_wc* wc) {
  return ibv_poll_cq(cq, n, wc);
}

}  // namespace ssihv::rdmax::sys

#endif  // SSIHV_RDMAX_SYS_VERBS_H_
