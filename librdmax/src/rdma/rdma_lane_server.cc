#include "rdma/rdma_lane_server.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/rc_qp.h"
#include "rdma/rdma_transport.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"
#include "ssihv/base/thread_priority.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

// One request in, one answer out at a time: a RECV, a SEND, and room for
// their flushes.
constexpr int kCqEntries = 4;
constexpr uint32_t kSendWr = 1;
constexpr uint32_t kRecvWr = 1;
constexpr uint64_t kRequestWrId = 1;
constexpr uint64_t kAnswerWrId = 2;

}  // namespace

RdmaLaneServer::RdmaLaneServer(RdmaTransport* transport, NodeId peer)
    : transport_(transport),
      peer_(peer),
      slot_bytes_(kFrameHeaderSize + transport->options().max_message_bytes) {}

absl::StatusOr<std::unique_ptr<RdmaLaneServer>> RdmaLaneServer::Create(
    RdmaTransport* transport, const RdmaParamsPayload& fetcher, NodeId peer) {
  std::unique_ptr<RdmaLaneServer> s(new RdmaLaneServer(transport, peer));
  const OpenedDevice& device = transport->device();
  ibv_context* ctx = device.context.get();
  SSIHV_ASSIGN_OR_RETURN(s->mem_,
                         base::MappedRegion::Anonymous(2 * s->slot_bytes_));
  SSIHV_ASSIGN_OR_RETURN(
      s->mr_, sys::RegMr(transport->pd(), s->mem_.data(), s->mem_.size(),
                         IBV_ACCESS_LOCAL_WRITE));
  SSIHV_RETURN_IF_ERROR(s->cq_.Create(ctx, kCqEntries));
  SSIHV_ASSIGN_OR_RETURN(s->qp_, CreateRcQp(transport->pd(), s->cq_.get(),
                                            s->cq_.get(), kSendWr, kRecvWr));
  SSIHV_RETURN_IF_ERROR(InitRcQp(s->qp_.get(), device, IBV_ACCESS_REMOTE_READ));
  // The RECV goes on before the QP can receive: the peer may call as soon
  // as it has our parameters.
  if (!s->PostRecv()) {
    return absl::InternalError(
        absl::StrCat("lane from node ", peer, ": ibv_post_recv failed"));
  }
  const uint32_t psn = RandomPsn();
  SSIHV_RETURN_IF_ERROR(
      ConnectRcQp(s->qp_.get(), device, transport->gid(), psn, fetcher, peer));
  s->params_ = RcQpParams(device, transport->gid(), s->qp_.get(), psn, kRecvWr,
                          static_cast<uint32_t>(s->slot_bytes_));
  return s;
}

RdmaLaneServer::~RdmaLaneServer() {
  Shutdown();
  if (thread_.joinable()) thread_.join();
}

absl::Status RdmaLaneServer::Start() {
  thread_ = std::thread([this] { Run(); });
  base::NameThread(thread_, "rdmax-lane");
  return absl::OkStatus();
}

void RdmaLaneServer::Shutdown() {
  if (!qp_) return;
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  sys::ModifyQp(qp_.get(), &attr, IBV_QP_STATE, "->ERR").IgnoreError();
}

bool RdmaLaneServer::PostRecv() {
  return PostOneRecv(qp_.get(), kRequestWrId, mem_.data(),
                     static_cast<uint32_t>(slot_bytes_), mr_->lkey) == 0;
}

bool RdmaLaneServer::End(absl::string_view why) {
  Log(LogLevel::kDebug, "rdmax node ", transport_->self(), ": lane from node ",
      peer_, ": ", why, "; closing the lane");
  Shutdown();
  return false;
}

bool RdmaLaneServer::Next(ibv_wc* wc) {
  if (cq_.Await(/*spin=*/false, /*bounded=*/false, absl::InfiniteFuture(),
                wc) == 1) {
    return true;
  }
  return End("waiting on the lane's CQ failed");
}

void RdmaLaneServer::Run() {
  base::ApplyServiceNice(transport_->service_nice());
  for (;;) {
    ibv_wc wc{};
    if (!Next(&wc)) break;
    if (wc.status != IBV_WC_SUCCESS) {
      // A flush after Shutdown, or the peer gone: the lane is over.
      End(absl::StrCat("completion: ", sys::WcStatusName(wc.status)));
      break;
    }
    if (wc.wr_id == kAnswerWrId) {
      send_pending_ = false;
      continue;
    }
    if (!Serve(wc.byte_len)) break;
  }
  finished_.store(true, std::memory_order_release);
}

bool RdmaLaneServer::Serve(uint32_t bytes) {
  const FrameLimits& limits = transport_->limits();
  absl::StatusOr<FrameHeader> h =
      bytes < kFrameHeaderSize
          ? absl::InvalidArgumentError("shorter than a frame header")
          : DecodeFrameHeader(absl::MakeConstSpan(mem_.data(), bytes),
                              WirePhase::kEstablished, limits);
  if (h.ok() && (h->kind != FrameKind::kRequest ||
                 kFrameHeaderSize + h->length != bytes)) {
    h = absl::InvalidArgumentError(absl::StrCat("a ", FrameKindName(h->kind),
                                                " frame of ", bytes, " bytes"));
  }
  if (!h.ok()) {
    Bump(transport_->atomic_stats().malformed_frames);
    Log(LogLevel::kWarning, "rdmax node ", transport_->self(),
        ": malformed frame from node ", peer_,
        " (lane): ", h.status().message(), "; closing the lane");
    Shutdown();
    return false;
  }
  // The request is copied out before the buffer takes the next one: the
  // handler's answer may be large, the request is small.
  request_.assign(mem_.data() + kFrameHeaderSize, mem_.data() + bytes);
  if (!PostRecv()) return End("ibv_post_recv failed");
  FrameHeader rh;
  std::vector<uint8_t> error;
  absl::StatusOr<absl::Span<const uint8_t>> answer =
      transport_->ServeLaneCall(peer_, *h, request_, &rh, &error);
  if (!answer.ok()) return End(answer.status().message());
  return Answer(rh, answer->data());
}

bool RdmaLaneServer::Answer(const FrameHeader& h, const uint8_t* payload) {
  // The send buffer is free once the previous answer's SEND completed
  // (the caller has it, but the buffer is ours only after the completion).
  while (send_pending_) {
    ibv_wc wc{};
    if (!Next(&wc)) return false;
    if (wc.status != IBV_WC_SUCCESS) {
      return End(absl::StrCat("completion: ", sys::WcStatusName(wc.status)));
    }
    if (wc.wr_id == kAnswerWrId) send_pending_ = false;
    // A RECV cannot complete here: the peer waits for this answer first.
  }
  uint8_t* out = mem_.data() + slot_bytes_;
  EncodeFrameHeader(h, out);
  if (h.length > 0) std::memcpy(out + kFrameHeaderSize, payload, h.length);
  if (int err = PostOneSend(qp_.get(), kAnswerWrId, out,
                            static_cast<uint32_t>(kFrameHeaderSize + h.length),
                            mr_->lkey);
      err != 0) {
    return End(absl::StrCat("ibv_post_send SEND: ", std::strerror(err)));
  }
  send_pending_ = true;
  return true;
}

}  // namespace ssihv::rdmax
