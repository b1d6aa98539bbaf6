#include "tcp/fetch_lane.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "sys/posix.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

bool Retryable(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

}  // namespace

FetchLane::FetchLane(base::UniqueFd fd, NodeId peer, const FrameLimits& limits,
                     AtomicStats* stats)
    : fd_(std::move(fd)), peer_(peer), limits_(limits), stats_(stats) {}

void FetchLane::Shutdown() { sys::ShutdownBoth(fd_.get()); }

FetchLane::Outcome FetchLane::Broken(absl::string_view why, bool malformed) {
  if (malformed) Bump(stats_->malformed_frames);
  broken_why_ = std::string(why);
  Log(malformed ? LogLevel::kWarning : LogLevel::kDebug, "rdmax: ",
      malformed ? "malformed frame from node " : "fetch lane to node ", peer_,
      malformed ? " (fetch lane): " : ": ", why, "; closing the lane");
  Shutdown();
  return Outcome::kBroken;
}

FetchLane::Outcome FetchLane::Fetch(RegionId region, uint64_t offset,
                                    absl::Span<uint8_t> dst,
                                    absl::Time deadline, absl::Status* result) {
  const uint64_t id = next_id_++;
  uint8_t request[kFrameHeaderSize + kFetchRequestSize];
  FrameHeader h;
  h.kind = FrameKind::kFetchRequest;
  h.id = id;
  h.length = kFetchRequestSize;
  EncodeFrameHeader(h, request);
  EncodeFetchRequest({region, static_cast<uint32_t>(dst.size()), offset},
                     request + kFrameHeaderSize);
  struct iovec out = {request, sizeof(request)};
  sys::IoResult w = sys::SendMsgBlocking(fd_.get(), &out, 1);
  if (w.bytes != static_cast<ssize_t>(sizeof(request))) {
    return Broken(w.bytes < 0 ? std::strerror(w.err) : "short send");
  }

  uint8_t hdr[kFrameHeaderSize];
  size_t length = 0;
  Outcome outcome = ReceiveResponse(FrameKind::kFetchResponse, id, hdr, dst,
                                    deadline, &length, result);
  if (outcome == Outcome::kDone && result->ok() && length != dst.size()) {
    return Broken(absl::StrCat("fetch response of ", length,
                               " bytes for a fetch of ", dst.size()),
                  true);
  }
  return outcome;
}

FetchLane::Outcome FetchLane::Call(MessageType type,
                                   absl::Span<const uint8_t> payload,
                                   absl::Span<uint8_t> response,
                                   absl::Time deadline, size_t* length,
                                   absl::Status* result) {
  const uint64_t id = next_id_++;
  uint8_t hdr[kFrameHeaderSize];
  FrameHeader h;
  h.kind = FrameKind::kRequest;
  h.type = type;
  h.id = id;
  h.length = static_cast<uint32_t>(payload.size());
  EncodeFrameHeader(h, hdr);
  struct iovec out[2] = {
      {hdr, kFrameHeaderSize},
      {const_cast<uint8_t*>(payload.data()), payload.size()}};
  sys::IoResult w = sys::SendMsgBlocking(fd_.get(), out, 2);
  if (w.bytes <= 0) {
    Broken(w.bytes < 0 ? std::strerror(w.err) : "nothing sent");
    return Outcome::kNotSent;
  }
  if (w.bytes != static_cast<ssize_t>(kFrameHeaderSize + payload.size())) {
    return Broken("short send");
  }
  return ReceiveResponse(FrameKind::kResponse, id, hdr, response, deadline,
                         length, result);
}

// [header | payload]: a success response usually lands whole in one call.
// Nothing follows a response on a lane, so receiving up to dst.size()
// never takes bytes of another frame.
FetchLane::Outcome FetchLane::ReceiveResponse(
    FrameKind kind, uint64_t id, uint8_t* hdr, absl::Span<uint8_t> dst,
    absl::Time deadline, size_t* length, absl::Status* result) {
  size_t got = 0;
  size_t total = kFrameHeaderSize + dst.size();
  bool have_header = false;
  for (;;) {
    struct iovec iov[2];
    int n = 0;
    if (got < kFrameHeaderSize) {
      iov[n++] = {hdr + got, kFrameHeaderSize - got};
      iov[n++] = {dst.data(), dst.size()};
    } else {
      size_t done = got - kFrameHeaderSize;
      iov[n++] = {dst.data() + done, total - got};
    }
    sys::IoResult r = sys::RecvMsgBlocking(fd_.get(), iov, n);
    if (r.bytes == 0) return Broken("the peer closed the lane");
    if (r.bytes < 0) {
      if (!Retryable(r.err)) return Broken(std::strerror(r.err));
      if (absl::Now() < deadline) continue;
      Shutdown();
      *result = absl::DeadlineExceededError(
          absl::StrCat("node ", peer_,
                       ": no response on its lane in time (the lane is "
                       "closed)"));
      return Outcome::kTimedOut;
    }
    got += static_cast<size_t>(r.bytes);
    if (!have_header && got >= kFrameHeaderSize) {
      absl::StatusOr<FrameHeader> rh =
          DecodeFrameHeader(absl::MakeConstSpan(hdr, kFrameHeaderSize),
                            WirePhase::kEstablished, limits_);
      if (!rh.ok()) return Broken(rh.status().message(), true);
      if (rh->kind != kind || rh->id != id) {
        return Broken(
            absl::StrCat(FrameKindName(rh->kind), " id ", rh->id, " where the ",
                         FrameKindName(kind), " to ", id, " was due"),
            true);
      }
      if (rh->flags & kFlagError) {
        return ReadError(*rh, dst, got - kFrameHeaderSize, deadline, result);
      }
      if (rh->length > dst.size()) {
        *result = absl::OutOfRangeError(
            absl::StrCat("node ", peer_, ": a response of ", rh->length,
                         " bytes does not fit in ", dst.size()));
        return Broken("a response larger than its buffer");
      }
      if (got > kFrameHeaderSize + rh->length) {
        return Broken("bytes after a response", true);
      }
      total = kFrameHeaderSize + rh->length;
      have_header = true;
    }
    if (have_header && got == total) {
      *length = total - kFrameHeaderSize;
      *result = absl::OkStatus();
      return Outcome::kDone;
    }
  }
}

FetchLane::Outcome FetchLane::ReadError(const FrameHeader& h,
                                        absl::Span<uint8_t> dst, size_t have,
                                        absl::Time deadline,
                                        absl::Status* result) {
  // Nothing follows a response on a lane: more bytes than the error payload
  // would be a second, unsolicited frame.
  if (have > h.length) {
    return Broken("bytes after an error response", true);
  }
  std::vector<uint8_t> payload(h.length);
  std::memcpy(payload.data(), dst.data(), have);
  while (have < payload.size()) {
    struct iovec iov = {payload.data() + have, payload.size() - have};
    sys::IoResult r = sys::RecvMsgBlocking(fd_.get(), &iov, 1);
    if (r.bytes == 0) return Broken("the peer closed the lane");
    if (r.bytes < 0) {
      if (!Retryable(r.err)) return Broken(std::strerror(r.err));
      if (absl::Now() >= deadline) return Broken("error response timed out");
      continue;
    }
    have += static_cast<size_t>(r.bytes);
  }
  absl::Status carried;
  absl::Status st = DecodeError(payload, &carried);
  if (!st.ok()) return Broken(st.message(), true);
  *result = carried;
  return Outcome::kDone;
}

}  // namespace ssihv::rdmax
