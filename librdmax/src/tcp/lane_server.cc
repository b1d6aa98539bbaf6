#include "tcp/lane_server.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/thread_name.h"
#include "ssihv/base/thread_priority.h"
#include "sys/posix.h"
#include "tcp/tcp_transport.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

}  // namespace

ServedLane::ServedLane(TcpTransport* transport, NodeId peer, base::UniqueFd fd)
    : transport_(transport),
      peer_(peer),
      fd_(std::move(fd)),
      request_(kFrameHeaderSize +
               std::max<size_t>(kFetchRequestSize,
                                transport->limits().max_message_bytes)) {}

ServedLane::~ServedLane() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void ServedLane::Start() {
  Bump(transport_->atomic_stats().lanes_serving);
  thread_ = std::thread([this] { Run(); });
  base::NameThread(thread_, "rdmax-lane");
}

void ServedLane::Stop() {
  stopping_.store(true, std::memory_order_release);
  sys::ShutdownBoth(fd_.get());
}

void ServedLane::Run() {
  base::ApplyServiceNice(transport_->service_nice());
  while (ServeOne()) {
  }
  transport_->atomic_stats().lanes_serving.fetch_sub(1,
                                                     std::memory_order_relaxed);
  finished_.store(true, std::memory_order_release);
}

bool ServedLane::End(absl::string_view why, bool malformed) {
  if (malformed) Bump(transport_->atomic_stats().malformed_frames);
  bool quiet = !malformed && stopping_.load(std::memory_order_acquire);
  Log(malformed ? LogLevel::kWarning
                : (quiet ? LogLevel::kDebug : LogLevel::kInfo),
      "rdmax node ", transport_->self(), ": ",
      malformed ? "malformed frame from node " : "fetch lane from node ", peer_,
      malformed ? " (fetch lane): " : ": ", why, "; closing the lane");
  sys::ShutdownBoth(fd_.get());
  return false;
}

bool ServedLane::ReadRequest(FrameHeader* header) {
  // Usually the whole request arrives at once (the caller sends it with
  // one sendmsg and waits for the answer: nothing follows it). A header is
  // checked as soon as it is complete, so a bad one is refused without
  // waiting for bytes that may never come.
  size_t got = 0;
  size_t need = kFrameHeaderSize;
  bool checked = false;
  while (got < need) {
    struct iovec iov = {request_.data() + got,
                        (checked ? need : request_.size()) - got};
    sys::IoResult r = sys::RecvMsgBlocking(fd_.get(), &iov, 1);
    if (r.bytes == 0) {
      return End(got == 0 ? "the peer closed the lane"
                          : "the peer closed the lane mid-request");
    }
    if (r.bytes < 0) {
      if (r.err == EINTR) continue;
      return End(absl::StrCat("receive: ", std::strerror(r.err)));
    }
    got += static_cast<size_t>(r.bytes);
    if (!checked && got >= kFrameHeaderSize) {
      absl::StatusOr<FrameHeader> h = DecodeFrameHeader(
          absl::MakeConstSpan(request_.data(), kFrameHeaderSize),
          WirePhase::kEstablished, transport_->limits());
      if (!h.ok()) return End(h.status().message(), true);
      if (h->kind != FrameKind::kFetchRequest &&
          h->kind != FrameKind::kRequest) {
        return End(
            absl::StrCat(FrameKindName(h->kind), " is not allowed on a lane"),
            true);
      }
      *header = *h;
      need = kFrameHeaderSize + h->length;
      checked = true;
    }
    if (checked && got > need) {
      return End("bytes after a request (one at a time on a lane)", true);
    }
  }
  return true;
}

bool ServedLane::Respond(const FrameHeader& h, const uint8_t* payload,
                         size_t length) {
  uint8_t hdr[kFrameHeaderSize];
  EncodeFrameHeader(h, hdr);
  struct iovec iov[2] = {{hdr, kFrameHeaderSize},
                         {const_cast<uint8_t*>(payload), length}};
  const size_t total = kFrameHeaderSize + length;
  sys::IoResult r = sys::SendMsgNoWait(fd_.get(), iov, 2);
  if (r.bytes < 0 && r.err != EAGAIN && r.err != EWOULDBLOCK) {
    return End(absl::StrCat("send: ", std::strerror(r.err)));
  }
  size_t sent = r.bytes > 0 ? static_cast<size_t>(r.bytes) : 0;
  if (sent == total) return true;
  // The kernel took part of it (a large fetch): copy the rest now, while
  // region memory is still locked, and send it after the lock is released.
  spill_.resize(total - sent);
  uint8_t* out = spill_.data();
  if (sent < kFrameHeaderSize) {
    std::memcpy(out, hdr + sent, kFrameHeaderSize - sent);
    out += kFrameHeaderSize - sent;
    sent = kFrameHeaderSize;
  }
  std::memcpy(out, payload + (sent - kFrameHeaderSize),
              length - (sent - kFrameHeaderSize));
  return true;
}

bool ServedLane::ServeOne() {
  FrameHeader h;
  if (!ReadRequest(&h)) return false;
  spill_.clear();
  bool ok = h.kind == FrameKind::kRequest ? ServeCall(h) : ServeFetch(h);
  return ok && SendSpill();
}

bool ServedLane::ServeCall(const FrameHeader& h) {
  FrameHeader rh;
  std::vector<uint8_t> error;
  absl::StatusOr<absl::Span<const uint8_t>> answer = transport_->ServeLaneCall(
      peer_, h,
      absl::MakeConstSpan(request_.data() + kFrameHeaderSize, h.length), &rh,
      &error);
  if (!answer.ok()) return End(answer.status().message());
  return Respond(rh, answer->data(), answer->size());
}

bool ServedLane::ServeFetch(const FrameHeader& h) {
  if (h.length != kFetchRequestSize) {
    return End("a fetch request of the wrong size", true);
  }
  absl::StatusOr<FetchRequestPayload> req =
      DecodeFetchRequest(absl::MakeConstSpan(request_.data() + kFrameHeaderSize,
                                             kFetchRequestSize),
                         transport_->limits());
  if (!req.ok()) return End(req.status().message(), true);
  FrameHeader rh;
  rh.kind = FrameKind::kFetchResponse;
  rh.id = h.id;
  std::vector<uint8_t> error;
  {
    LocalRegions::ReadLock lock(transport_->regions());
    absl::StatusOr<const uint8_t*> p = transport_->regions().ResolveForServing(
        transport_->self(), req->region, req->offset, req->length);
    if (p.ok()) {
      rh.length = req->length;
      // Counted first: the fetcher may look before this thread runs again.
      transport_->CountServed(peer_, req->length);
      if (!Respond(rh, *p, req->length)) return false;
    } else {
      Bump(transport_->atomic_stats().fetches_refused);
      error = EncodeError(p.status());
    }
  }
  if (!error.empty()) {
    rh.flags = kFlagError;
    rh.length = static_cast<uint32_t>(error.size());
    if (!Respond(rh, error.data(), error.size())) return false;
  }
  return true;
}

bool ServedLane::SendSpill() {
  for (size_t off = 0; off < spill_.size();) {
    // Blocking, up to SO_SNDTIMEO (op_timeout): a peer that does not read
    // its response loses the lane.
    struct iovec iov = {spill_.data() + off, spill_.size() - off};
    sys::IoResult r = sys::SendMsgBlocking(fd_.get(), &iov, 1);
    if (r.bytes <= 0) {
      return End(absl::StrCat("send: ", r.bytes < 0 && r.err == EAGAIN
                                            ? "the peer does not read"
                                            : std::strerror(r.err)));
    }
    off += static_cast<size_t>(r.bytes);
  }
  return true;
}

}  // namespace ssihv::rdmax
