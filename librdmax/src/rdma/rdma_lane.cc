#include "rdma/rdma_lane.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/rc_qp.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::rdmax {
namespace {

// A lane carries one READ or one call at a time; the CQ and queues are
// sized for it (a call: a SEND and its answer's RECV) and a flush.
constexpr int kLaneCqEntries = 4;
constexpr uint32_t kLaneSendWr = 2;
constexpr uint32_t kLaneRecvDepth = 1;
constexpr uint64_t kSendWrId = 1;  // a READ's or a call's SEND
constexpr uint64_t kRecvWrId = 2;  // a call's answer

}  // namespace

absl::StatusOr<std::shared_ptr<RdmaLane>> RdmaLane::Create(
    const OpenedDevice& device, ibv_pd* pd, NodeId peer,
    uint32_t max_message_bytes) {
  std::shared_ptr<RdmaLane> lane(new RdmaLane(peer, max_message_bytes));
  ibv_context* ctx = device.context.get();
  SSIHV_ASSIGN_OR_RETURN(lane->call_mem_,
                         base::MappedRegion::Anonymous(2 * lane->slot_bytes_));
  SSIHV_ASSIGN_OR_RETURN(lane->call_mr_, sys::RegMr(pd, lane->call_mem_.data(),
                                                    lane->call_mem_.size(),
                                                    IBV_ACCESS_LOCAL_WRITE));
  SSIHV_RETURN_IF_ERROR(lane->cq_.Create(ctx, kLaneCqEntries));
  SSIHV_ASSIGN_OR_RETURN(
      lane->qp_, CreateRcQp(pd, lane->cq_.get(), lane->cq_.get(), kLaneSendWr,
                            kLaneRecvDepth));
  SSIHV_RETURN_IF_ERROR(InitRcQp(lane->qp_.get(), device, 0));
  lane->psn_ = RandomPsn();
  return lane;
}

RdmaParamsPayload RdmaLane::LocalParams(const OpenedDevice& device,
                                        const ChosenGid& gid) const {
  return RcQpParams(device, gid, qp_.get(), psn_, kLaneRecvDepth,
                    static_cast<uint32_t>(slot_bytes_));
}

absl::Status RdmaLane::Connect(const OpenedDevice& device, const ChosenGid& gid,
                               const RdmaParamsPayload& responder) {
  return ConnectRcQp(qp_.get(), device, gid, psn_, responder, peer_);
}

void RdmaLane::Shutdown() {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  sys::ModifyQp(qp_.get(), &attr, IBV_QP_STATE, "->ERR").IgnoreError();
}

RdmaLane::Outcome RdmaLane::Failed(Outcome outcome, std::string why) {
  base::Log(base::LogLevel::kDebug, "rdmax: lane to node ", peer_, ": ", why);
  broken_why_ = std::move(why);
  return outcome;
}

namespace {

// A failed completion's reason: its status, and for a flush what it means.
std::string CompletionFailure(const ibv_wc& wc) {
  return wc.status == IBV_WC_WR_FLUSH_ERR
             ? absl::StrCat("completion: ", sys::WcStatusName(wc.status),
                            " (the lane's QP went to the error state)")
             : absl::StrCat("completion: ", sys::WcStatusName(wc.status));
}

}  // namespace

RdmaLane::Outcome RdmaLane::Read(uint64_t local_addr, uint32_t lkey,
                                 uint32_t length, uint64_t remote_addr,
                                 uint32_t rkey, bool spin, absl::Time deadline,
                                 absl::Status* result) {
  ibv_sge sge{local_addr, length, lkey};
  ibv_send_wr wr{};
  wr.wr_id = kSendWrId;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_READ;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = remote_addr;
  wr.wr.rdma.rkey = rkey;
  if (int err = sys::PostSend(qp_.get(), &wr); err != 0) {
    return Failed(Outcome::kBroken,
                  absl::StrCat("ibv_post_send READ: ", std::strerror(err)));
  }
  ibv_wc wc{};
  int got = cq_.Await(spin, /*bounded=*/false, deadline, &wc);
  if (got == 0) {
    // Flush the READ so that it cannot land in the buffer later.
    Shutdown();
    cq_.Await(true, false, absl::InfiniteFuture(), &wc);
    *result = absl::DeadlineExceededError(absl::StrCat(
        "Fetch node=", peer_, ": no completion on its fetch lane in time"));
    return Outcome::kTimedOut;
  }
  if (got < 0) {
    // A CQ we cannot poll or wait on: stop using the lane. The READ may
    // still be posted: flush it and wait for it before giving dst back.
    Shutdown();
    cq_.Await(true, false, absl::InfiniteFuture(), &wc);
    return Failed(Outcome::kBroken, "waiting on the lane's CQ failed");
  }
  if (wc.status != IBV_WC_SUCCESS) {
    if (wc.status != IBV_WC_WR_FLUSH_ERR) {
      base::Log(base::LogLevel::kWarning,
                "rdmax: RDMA READ on the lane to node ", peer_, ": ",
                sys::WcStatusName(wc.status));
    }
    return Failed(Outcome::kBroken, CompletionFailure(wc));
  }
  *result = absl::OkStatus();
  return Outcome::kDone;
}

RdmaLane::Outcome RdmaLane::Call(MessageType type,
                                 absl::Span<const uint8_t> payload,
                                 absl::Span<uint8_t> response, bool spin,
                                 absl::Time deadline, size_t* length,
                                 absl::Status* result) {
  FrameHeader h;
  h.kind = FrameKind::kRequest;
  h.type = type;
  h.id = ++next_call_;
  h.length = static_cast<uint32_t>(payload.size());
  EncodeFrameHeader(h, request_buffer());
  if (!payload.empty()) {
    std::memcpy(request_buffer() + kFrameHeaderSize, payload.data(),
                payload.size());
  }
  // The answer's buffer is posted before the request can be served.
  if (int err = PostOneRecv(qp_.get(), kRecvWrId, answer_buffer(),
                            static_cast<uint32_t>(slot_bytes_), call_mr_->lkey);
      err != 0) {
    return Failed(Outcome::kNotSent,
                  absl::StrCat("ibv_post_recv: ", std::strerror(err)));
  }
  if (int err =
          PostOneSend(qp_.get(), kSendWrId, request_buffer(),
                      static_cast<uint32_t>(kFrameHeaderSize + payload.size()),
                      call_mr_->lkey);
      err != 0) {
    Shutdown();  // the RECV stays posted: the lane is not reused
    return Failed(Outcome::kNotSent,
                  absl::StrCat("ibv_post_send SEND: ", std::strerror(err)));
  }
  // Both completions, in either order. On a failure the lane is shut down
  // and dropped (never reused): what is still posted lands only in the
  // lane's own buffers.
  bool sent = false;
  int64_t answer_bytes = -1;
  while (!sent || answer_bytes < 0) {
    ibv_wc wc{};
    const int got = cq_.Await(spin, /*bounded=*/true, deadline, &wc);
    if (got == 0) {
      Shutdown();
      *result = absl::DeadlineExceededError(absl::StrCat(
          "CallOnLane node=", peer_, ": no answer on its lane in time"));
      return Outcome::kTimedOut;
    }
    if (got < 0 || wc.status != IBV_WC_SUCCESS) {
      if (got > 0 && wc.status != IBV_WC_WR_FLUSH_ERR) {
        base::Log(base::LogLevel::kWarning, "rdmax: lane call to node ", peer_,
                  ": ", sys::WcStatusName(wc.status));
      }
      Shutdown();
      return Failed(Outcome::kBroken, got < 0
                                          ? "waiting on the lane's CQ failed"
                                          : CompletionFailure(wc));
    }
    if (wc.wr_id == kSendWrId) {
      sent = true;
    } else {
      answer_bytes = wc.byte_len;
    }
  }
  return TakeAnswer(h.id, static_cast<uint32_t>(answer_bytes), response, length,
                    result);
}

RdmaLane::Outcome RdmaLane::TakeAnswer(uint64_t id, uint32_t bytes,
                                       absl::Span<uint8_t> response,
                                       size_t* length, absl::Status* result) {
  FrameLimits limits;
  limits.max_message_bytes =
      static_cast<uint32_t>(slot_bytes_ - kFrameHeaderSize);
  absl::StatusOr<FrameHeader> h =
      bytes < kFrameHeaderSize
          ? absl::InvalidArgumentError("shorter than a frame header")
          : DecodeFrameHeader(absl::MakeConstSpan(answer_buffer(), bytes),
                              WirePhase::kEstablished, limits);
  if (h.ok() && (h->kind != FrameKind::kResponse || h->id != id ||
                 kFrameHeaderSize + h->length != bytes)) {
    h = absl::InvalidArgumentError(
        absl::StrCat("a ", FrameKindName(h->kind), " frame of ", bytes,
                     " bytes, id ", h->id, " (call ", id, ")"));
  }
  if (!h.ok()) {
    // Our own peer's lane (authenticated at set-up) broke its protocol.
    base::Log(base::LogLevel::kWarning, "rdmax: lane call to node ", peer_,
              ": malformed answer: ", h.status().message());
    Shutdown();
    return Failed(Outcome::kBroken,
                  absl::StrCat("malformed answer: ", h.status().message()));
  }
  const uint8_t* payload = answer_buffer() + kFrameHeaderSize;
  if (h->flags & kFlagError) {
    absl::Status carried;
    absl::Status st =
        DecodeError(absl::MakeConstSpan(payload, h->length), &carried);
    *result = st.ok() ? carried : st;
    return Outcome::kDone;
  }
  if (h->length > response.size()) {
    *result = absl::OutOfRangeError(
        absl::StrCat("CallOnLane node=", peer_, ": an answer of ", h->length,
                     " bytes for a buffer of ", response.size()));
    return Outcome::kDone;
  }
  if (h->length > 0) std::memcpy(response.data(), payload, h->length);
  *length = h->length;
  *result = absl::OkStatus();
  return Outcome::kDone;
}

}  // namespace ssihv::rdmax
