// The RDMA transport's fetch lanes (rdma_lane.h; docs/TRANSPORT.md, "Fetch
// lanes"): fetching over them, setting them up over the control connection,
// and serving them.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/rdma_transport.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::rdmax {

using base::Log;
using base::LogLevel;

std::optional<absl::Status> RdmaTransport::FetchOverLane(
    const std::shared_ptr<RdmaPeer>& peer, RegionId region, uint64_t offset,
    absl::Span<uint8_t> dst, absl::Time deadline) {
  if (dst.empty() || dst.size() > options_.max_fetch_bytes) {
    return std::nullopt;  // the main path reports it
  }
  bool setup = false;
  std::shared_ptr<RdmaLane> lane = peer->lanes().Acquire(&setup);
  if (setup) RequestLane(peer);
  if (lane == nullptr) return std::nullopt;
  peer->lane_users().fetch_add(1, std::memory_order_acq_rel);
  // Every exit gives the lane back before the peer may be let go.
  auto finish = [&](bool healthy) {
    peer->lanes().Release(std::move(lane), healthy);
    peer->lane_users().fetch_sub(1, std::memory_order_acq_rel);
  };
  absl::StatusOr<ReadTarget> target = TargetFor(peer->id(), dst, deadline);
  if (!target.ok()) {
    finish(true);
    return target.status();
  }
  absl::StatusOr<RegionEntry> entry;
  {
    // Checked and counted under the peer's region lock: a withdrawal of the
    // region either comes first (the check fails) or waits for this READ
    // before it is acknowledged.
    std::shared_lock<std::shared_mutex> rlock(peer->regions_mu());
    entry = peer->regions().Check(peer->id(), region, offset, dst.size());
    if (entry.ok()) peer->LaneReadStarted(region);
  }
  if (!entry.ok()) {
    Bump(stats_.fetches_refused);
    if (target->bounce >= 0) ReleaseBounce(target->bounce);
    finish(true);
    return entry.status();
  }
  absl::Status result;
  RdmaLane::Outcome outcome = lane->Read(
      target->addr, target->lkey, static_cast<uint32_t>(dst.size()),
      entry->base + offset, entry->rkey, options_.busy_poll, deadline, &result);
  peer->LaneReadDone(region);
  if (target->bounce >= 0) {
    if (outcome == RdmaLane::Outcome::kDone) {
      std::memcpy(dst.data(),
                  bounce_mem_.data() + target->bounce * kBounceBytes,
                  dst.size());
    }
    ReleaseBounce(target->bounce);
  }
  finish(outcome == RdmaLane::Outcome::kDone);
  if (outcome == RdmaLane::Outcome::kBroken) return std::nullopt;
  if (result.ok()) {
    Bump(stats_.fetches);
    Bump(stats_.fetch_bytes, dst.size());
    Bump(stats_.lane_fetches);
  }
  return result;
}

absl::StatusOr<size_t> RdmaTransport::CallOnLane(
    NodeId to, MessageType type, absl::Span<const uint8_t> payload,
    absl::Span<uint8_t> response) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("CallOnLane"));
  SSIHV_ASSIGN_OR_RETURN(std::shared_ptr<RdmaPeer> peer,
                         Peer(to, "CallOnLane"));
  if (payload.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CallOnLane node=", to, ": payload of ", payload.size(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }
  bool setup = false;
  std::shared_ptr<RdmaLane> lane =
      options_.fetch_lanes > 0 ? peer->lanes().Acquire(&setup) : nullptr;
  if (setup) RequestLane(peer);
  if (lane == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("CallOnLane node=", to, ": no lane idle"));
  }
  peer->lane_users().fetch_add(1, std::memory_order_acq_rel);
  absl::Status result;
  size_t length = 0;
  const RdmaLane::Outcome outcome =
      lane->Call(type, payload, response, options_.busy_poll,
                 absl::Now() + options_.op_timeout, &length, &result);
  const std::string why =
      outcome == RdmaLane::Outcome::kDone ? "" : lane->broken_why();
  peer->lanes().Release(std::move(lane), outcome == RdmaLane::Outcome::kDone);
  peer->lane_users().fetch_sub(1, std::memory_order_acq_rel);
  switch (outcome) {
    case RdmaLane::Outcome::kDone:
      if (!result.ok()) return result;
      Bump(stats_.lane_calls);
      CountSent(to, payload.size());
      CountReplyBytes(to, length, /*sent=*/false);
      return length;
    case RdmaLane::Outcome::kNotSent:
      return absl::ResourceExhaustedError(absl::StrCat(
          "CallOnLane node=", to, ": the lane failed before the request left (",
          why, ")"));
    case RdmaLane::Outcome::kTimedOut:
      return result;
    case RdmaLane::Outcome::kBroken:
      break;
  }
  return absl::UnavailableError(
      absl::StrCat("CallOnLane node=", to,
                   ": the lane failed after the request left (", why, ")"));
}

void RdmaTransport::RetireLaneServers(
    std::vector<std::unique_ptr<RdmaLaneServer>> lanes) {
  for (auto& lane : lanes) {
    lane->Shutdown();
    retired_lanes_.push_back(std::move(lane));
  }
}

void RdmaTransport::RequestLane(const std::shared_ptr<RdmaPeer>& peer) {
  loop_.Post([this, peer] { SetUpLane(peer); });
}

void RdmaTransport::SetUpLane(const std::shared_ptr<RdmaPeer>& peer) {
  if (peer->dead() || closing_) {
    peer->lanes().SetupFailed();
    return;
  }
  absl::StatusOr<std::shared_ptr<RdmaLane>> lane = RdmaLane::Create(
      device_, pd_.get(), peer->id(), options_.max_message_bytes);
  const uint64_t number = ++peer->next_lane_number;
  absl::Status st = lane.status();
  if (st.ok()) {
    st = peer->control().Send(
        FrameKind::kRdmaLaneRequest,
        EncodeRdmaParams((*lane)->LocalParams(device_, gid_)), number);
  }
  if (!st.ok()) {
    Log(LogLevel::kWarning, "rdmax node ", self(), ": fetch lane to node ",
        peer->id(), ": ", st.message());
    peer->lanes().SetupFailed();
    return;
  }
  UpdateControlArm(peer.get());
  peer->lanes_asked[number] = std::move(*lane);
}

absl::Status RdmaTransport::OnLaneRequest(RdmaPeer* peer, const Frame& f) {
  SSIHV_ASSIGN_OR_RETURN(RdmaParamsPayload fetcher,
                         DecodeRdmaParams(f.payload));
  absl::StatusOr<std::unique_ptr<RdmaLaneServer>> responder;
  if (peer->served_lanes.size() >= options_.fetch_lanes) {
    responder = absl::ResourceExhaustedError(absl::StrCat(
        "node ", peer->id(), " has ", peer->served_lanes.size(),
        " lanes already (fetch_lanes = ", options_.fetch_lanes, ")"));
  } else {
    responder = RdmaLaneServer::Create(this, fetcher, peer->id());
    if (responder.ok()) {
      absl::Status started = (*responder)->Start();
      if (!started.ok()) responder = started;
    }
  }
  absl::Status st;
  if (!responder.ok()) {
    // Refused: the peer fetches over its main QP instead.
    Bump(stats_.lanes_refused);
    Log(LogLevel::kWarning, "rdmax node ", self(),
        ": refused a fetch lane from node ", peer->id(), ": ",
        responder.status().message());
    st = peer->control().Send(FrameKind::kRdmaLaneAccept,
                              EncodeError(responder.status()), f.header.id,
                              kFlagError);
  } else {
    // Counted before the accept leaves: the fetcher may read over the lane
    // (one-sided, no work here) and look at these counters before this
    // thread runs again.
    const std::vector<uint8_t> params =
        EncodeRdmaParams((*responder)->params());
    peer->served_lanes.push_back(*std::move(responder));
    Bump(stats_.lanes_accepted);
    Bump(stats_.lanes_serving);
    st = peer->control().Send(FrameKind::kRdmaLaneAccept, params, f.header.id);
  }
  UpdateControlArm(peer);
  return st;
}

absl::Status RdmaTransport::OnLaneAccept(RdmaPeer* peer, const Frame& f) {
  auto it = peer->lanes_asked.find(f.header.id);
  if (it == peer->lanes_asked.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rdma-lane-accept for lane ", f.header.id,
                     ", which was not asked for"));
  }
  std::shared_ptr<RdmaLane> lane = std::move(it->second);
  peer->lanes_asked.erase(it);
  absl::Status st;
  if (f.header.flags & kFlagError) {
    SSIHV_RETURN_IF_ERROR(DecodeError(f.payload, &st));
  } else {
    absl::StatusOr<RdmaParamsPayload> responder = DecodeRdmaParams(f.payload);
    if (!responder.ok()) {
      peer->lanes().SetupFailed();
      return responder.status();
    }
    st = lane->Connect(device_, gid_, *responder);
  }
  if (!st.ok()) {
    Log(LogLevel::kWarning, "rdmax node ", self(), ": fetch lane to node ",
        peer->id(), ": ", st.message());
    peer->lanes().SetupFailed();
    return absl::OkStatus();
  }
  peer->lanes().Adopt(std::move(lane));
  return absl::OkStatus();
}

}  // namespace ssihv::rdmax
