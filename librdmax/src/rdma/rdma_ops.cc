// The RDMA transport's operations: memory registration and withdrawal,
// fetches (RDMA READ), messages and calls (SEND), and the factory.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/rdma_transport.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::rdmax {

using base::Log;
using base::LogLevel;

absl::Status RdmaTransport::RegisterRegion(RegionId id, void* base,
                                           size_t length, RegionAccess access) {
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  SSIHV_RETURN_IF_ERROR(regions_.Validate(id, base, length));
  if (regions_.ExportedEntries().size() >= kMaxRegions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "RegisterRegion id=", id, ": at most ", kMaxRegions, " regions"));
  }
  const bool exported = access == RegionAccess::kRemoteRead;
  // LOCAL_WRITE lets the region also be a READ destination; read-only
  // memory cannot be pinned for writing, so exported regions fall back.
  absl::StatusOr<sys::Mr> mr = sys::RegMr(
      pd_.get(), base, length,
      IBV_ACCESS_LOCAL_WRITE | (exported ? IBV_ACCESS_REMOTE_READ : 0));
  if (!mr.ok() && exported) {
    mr = sys::RegMr(pd_.get(), base, length, IBV_ACCESS_REMOTE_READ);
  }
  if (!mr.ok()) {
    return absl::Status(
        mr.status().code(),
        absl::StrCat("RegisterRegion id=", id, ": ", mr.status().message()));
  }
  LocalRegion r;
  r.id = id;
  r.base = static_cast<uint8_t*>(base);
  r.length = length;
  r.access = access;
  r.mr = mr->get();
  r.lkey = (*mr)->lkey;
  r.rkey = (*mr)->rkey;
  regions_.Add(r);
  region_mrs_[id] = std::move(*mr);
  if (exported) {
    uint8_t entry[kRegionEntrySize];
    EncodeRegionEntry(LocalRegions::EntryOf(r), entry);
    Broadcast(FrameKind::kRegionAdd, entry);
  }
  return absl::OkStatus();
}

absl::Status RdmaTransport::UnregisterRegion(RegionId id) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("UnregisterRegion"));
  std::unique_lock<std::shared_mutex> lock(regions_.mutex());
  SSIHV_ASSIGN_OR_RETURN(LocalRegion r, regions_.Remove(id));
  if (r.access == RegionAccess::kRemoteRead) {
    std::vector<std::shared_ptr<RdmaPeer>> peers;
    {
      std::lock_guard<std::mutex> plock(peers_mu_);
      peers = advertised_;
    }
    {
      std::lock_guard<std::mutex> alock(acks_mu_);
      for (auto& p : peers) acks_[{id, p->id()}] = false;
    }
    uint8_t payload[8];
    EncodeRegionId(id, payload);
    Broadcast(FrameKind::kRegionRemove, payload);
    // Each peer answers after its READs of the region have finished (a
    // fenced SEND); a peer that dies meanwhile has its QP flushed.
    std::unique_lock<std::mutex> alock(acks_mu_);
    bool all = acks_cv_.wait_for(
        alock, absl::ToChronoNanoseconds(options_.op_timeout), [&] {
          for (auto& p : peers) {
            if (!acks_[{id, p->id()}] && !p->dead()) return false;
          }
          return true;
        });
    for (auto& p : peers) acks_.erase({id, p->id()});
    if (!all) {
      Log(LogLevel::kWarning, "rdmax node ", self(),
          ": UnregisterRegion id=", id,
          ": not every peer acknowledged in time; deregistering anyway");
    }
  }
  region_mrs_.erase(id);
  return absl::OkStatus();
}

void RdmaTransport::OnRegionRemoveAck(NodeId peer, uint32_t region) {
  std::lock_guard<std::mutex> lock(acks_mu_);
  auto it = acks_.find({region, peer});
  if (it != acks_.end()) it->second = true;
  acks_cv_.notify_all();
}

bool RdmaTransport::AcquireBounce(size_t length, absl::Time deadline,
                                  Bounce* out) {
  if (length > kBounceBytes) return false;
  std::unique_lock<std::mutex> lock(bounce_mu_);
  while (free_bounce_.empty()) {
    if (absl::Now() >= deadline) return false;
    bounce_cv_.wait_for(lock,
                        absl::ToChronoNanoseconds(deadline - absl::Now()));
  }
  int i = free_bounce_.back();
  free_bounce_.pop_back();
  *out = {bounce_mem_.data() + i * kBounceBytes, bounce_mr_->lkey, i};
  return true;
}

void RdmaTransport::ReleaseBounce(int index) {
  std::lock_guard<std::mutex> lock(bounce_mu_);
  free_bounce_.push_back(index);
  bounce_cv_.notify_one();
}

absl::StatusOr<RdmaTransport::ReadTarget> RdmaTransport::TargetFor(
    NodeId peer, absl::Span<uint8_t> dst, absl::Time wait_until) {
  if (std::optional<LocalRegion> local =
          regions_.Containing(dst.data(), dst.size());
      local && local->mr != nullptr) {
    return ReadTarget{reinterpret_cast<uint64_t>(dst.data()), local->lkey, -1};
  }
  Bounce b;
  if (!AcquireBounce(dst.size(), wait_until, &b)) {
    return dst.size() > kBounceBytes
               ? absl::InvalidArgumentError(
                     absl::StrCat("Fetch node=", peer, ": ", dst.size(),
                                  " bytes into unregistered memory (at most ",
                                  kBounceBytes, "): register the destination"))
               : absl::ResourceExhaustedError("Fetch: no bounce buffer free");
  }
  Bump(stats_.bounce_copies);
  return ReadTarget{reinterpret_cast<uint64_t>(b.data), b.lkey, b.index};
}

absl::StatusOr<PendingOp*> RdmaTransport::PostRead(RdmaPeer& peer,
                                                   RegionId region,
                                                   uint64_t offset,
                                                   absl::Span<uint8_t> dst,
                                                   absl::Time deadline) {
  if (dst.empty() || dst.size() > options_.max_fetch_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("Fetch node=", peer.id(), ": length ", dst.size(),
                     " not in 1..", options_.max_fetch_bytes));
  }
  // Straight into `dst` when it lies in registered memory, else a bounce.
  SSIHV_ASSIGN_OR_RETURN(ReadTarget target,
                         TargetFor(peer.id(), dst, deadline));
  const uint64_t addr = target.addr;
  const uint32_t lkey = target.lkey;
  const int bounce = target.bounce;
  PendingOp* op =
      peer.pending().Acquire(OpKind::kFetch, true, deadline, deadline);
  if (op == nullptr) {
    if (bounce >= 0) ReleaseBounce(bounce);
    return absl::DeadlineExceededError(
        absl::StrCat("Fetch node=", peer.id(), ": no request slot in time"));
  }
  op->dst = dst.data();
  op->length = static_cast<uint32_t>(dst.size());
  op->region = region;
  op->bounce = bounce;
  auto fail = [&](absl::Status st) -> absl::StatusOr<PendingOp*> {
    peer.pending().Release(op);
    if (bounce >= 0) ReleaseBounce(bounce);
    return st;
  };
  // Check and post under the peer's region lock: a withdrawal waits for it,
  // and its fenced acknowledgement follows this READ.
  std::shared_lock<std::shared_mutex> rlock(peer.regions_mu());
  absl::StatusOr<RegionEntry> entry =
      peer.regions().Check(peer.id(), region, offset, dst.size());
  if (!entry.ok()) {
    Bump(stats_.fetches_refused);
    return fail(entry.status());
  }
  ibv_sge sge{addr, op->length, lkey};
  ibv_send_wr wr{};
  wr.wr_id = reinterpret_cast<uint64_t>(peer.ReadTag(op));
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_READ;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = entry->base + offset;
  wr.wr.rdma.rkey = entry->rkey;
  if (int err = peer.PostCounted(&wr, /*async=*/false); err != 0) {
    return fail(absl::UnavailableError(absl::StrCat(
        "ibv_post_send READ node=", peer.id(), ": ", std::strerror(err))));
  }
  return op;
}

bool RdmaTransport::PollUntil(PendingOp* op, absl::Time deadline) {
  for (uint32_t spins = 0;; ++spins) {
    if (op->state.load(std::memory_order_acquire) == PendingOp::kDone) {
      return true;
    }
    if (send_cq_mu_.try_lock()) {
      PollSendCq();
      send_cq_mu_.unlock();
    } else {
      __builtin_ia32_pause();
    }
    if ((spins & 4095) == 4095 && absl::Now() >= deadline) return false;
  }
}

absl::Status RdmaTransport::Fetch(NodeId peer_id, RegionId region,
                                  uint64_t offset, absl::Span<uint8_t> dst) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("Fetch"));
  SSIHV_ASSIGN_OR_RETURN(auto peer, Peer(peer_id, "Fetch"));
  absl::Time deadline = absl::Now() + options_.op_timeout;
  if (options_.fetch_lanes > 0) {
    std::optional<absl::Status> over_lane =
        FetchOverLane(peer, region, offset, dst, deadline);
    if (over_lane.has_value()) return *over_lane;
  }
  SSIHV_ASSIGN_OR_RETURN(PendingOp * op,
                         PostRead(*peer, region, offset, dst, deadline));
  bool done = options_.busy_poll ? PollUntil(op, deadline)
                                 : PendingTable::WaitDone(op, deadline, false);
  if (!done) {
    // Flush the QP: the READ completes (with an error) before we return,
    // so it cannot land in `dst` later.
    peer->Close(absl::StrCat("fetch from node ", peer_id, " timed out"));
    if (options_.busy_poll) {
      PollUntil(op, absl::InfiniteFuture());
    } else {
      PendingTable::WaitDone(op, absl::InfiniteFuture(), false);
    }
    op->status = absl::DeadlineExceededError(
        absl::StrCat("Fetch node=", peer_id, ": no completion within ",
                     absl::FormatDuration(options_.op_timeout)));
  }
  absl::Status status = op->status;
  if (op->bounce >= 0) {
    if (status.ok()) {
      std::memcpy(dst.data(), bounce_mem_.data() + op->bounce * kBounceBytes,
                  dst.size());
    }
    ReleaseBounce(op->bounce);
  }
  if (status.ok()) CountFetched(peer_id, dst.size());
  peer->pending().Release(op);
  return status;
}

absl::StatusOr<std::unique_ptr<Transport>> CreateRdmaTransport(
    const cluster::ClusterConfig& config, NodeId self,
    TransportOptions options) {
  SSIHV_RETURN_IF_ERROR(ValidateOptions(config, self, options));
  SSIHV_ASSIGN_OR_RETURN(
      OpenedDevice device,
      OpenRdmaDevice(options.rdma_device, options.rdma_port));
  SSIHV_ASSIGN_OR_RETURN(ChosenGid gid, ChooseGid(device, options.gid_index));
  std::unique_ptr<RdmaTransport> t(new RdmaTransport(
      config, self, std::move(options), std::move(device), std::move(gid)));
  // PD, CQs and bounce buffers exist from here on: regions can be
  // registered before Start().
  SSIHV_RETURN_IF_ERROR(t->CreateResources());
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ssihv::rdmax
