#include "rdma/control_stream.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sys/posix.h"

namespace ssihv::rdmax {
namespace {

// Control frames are tens of bytes; a few KiB of queue is plenty, and a
// peer that lets it fill is not reading its control connection at all.
constexpr size_t kOutCapacity = 64 * 1024;
constexpr size_t kInCapacity = 16 * 1024;

}  // namespace

ControlStream::ControlStream(base::UniqueFd fd, const FrameLimits& limits)
    : fd_(std::move(fd)),
      reader_(FrameLimits{1024, limits.max_fetch_bytes}, kInCapacity,
              WirePhase::kEstablished),
      out_(kOutCapacity) {}

absl::Status ControlStream::Send(FrameKind kind,
                                 const std::vector<uint8_t>& payload,
                                 uint64_t id, uint8_t flags) {
  FrameHeader h;
  h.kind = kind;
  h.id = id;
  h.flags = flags;
  h.length = static_cast<uint32_t>(payload.size());
  uint8_t hdr[kFrameHeaderSize];
  EncodeFrameHeader(h, hdr);
  struct iovec iov[2] = {
      {hdr, sizeof(hdr)},
      {const_cast<uint8_t*>(payload.data()), payload.size()}};
  size_t total = sizeof(hdr) + payload.size();
  size_t sent = 0;
  if (out_.empty()) {
    sys::IoResult r = sys::SendMsgNoWait(fd_.get(), iov, 2);
    if (r.bytes > 0) {
      sent = static_cast<size_t>(r.bytes);
    } else if (r.err != EAGAIN && r.err != EWOULDBLOCK) {
      return absl::UnavailableError(
          absl::StrCat("control send: ", std::strerror(r.err)));
    }
  }
  if (sent < total) {
    if (out_.free() < total - sent) {
      return absl::ResourceExhaustedError("control connection backed up");
    }
    out_.Append(iov, 2, sent);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ControlStream::OnWritable() {
  while (!out_.empty()) {
    struct iovec iov[2];
    int n = out_.Segments(iov);
    sys::IoResult r = sys::SendMsgNoWait(fd_.get(), iov, n);
    if (r.bytes > 0) {
      out_.Consume(static_cast<size_t>(r.bytes));
      continue;
    }
    if (r.err == EAGAIN || r.err == EWOULDBLOCK) return true;
    return absl::UnavailableError(
        absl::StrCat("control send: ", std::strerror(r.err)));
  }
  return false;
}

absl::Status ControlStream::OnReadable(
    const std::function<absl::Status(const Frame&)>& on_frame) {
  for (;;) {
    Frame f;
    switch (reader_.Next(*this, &f)) {
      case FrameReader::Result::kFrame: {
        absl::Status st = on_frame(f);
        if (!st.ok()) return st;
        continue;
      }
      case FrameReader::Result::kError:
        return reader_.error();
      case FrameReader::Result::kYield:
      case FrameReader::Result::kNeedMore:
        break;
    }
    struct iovec iov[3];
    int n = reader_.PrepareRead(iov);
    if (n == 0) return absl::ResourceExhaustedError("control frame too big");
    sys::IoResult r = sys::RecvMsgNoWait(fd_.get(), iov, n);
    if (r.bytes > 0) {
      reader_.Commit(static_cast<size_t>(r.bytes));
      continue;
    }
    reader_.Commit(0);
    if (r.bytes == 0)
      return absl::UnavailableError("peer closed the control connection");
    if (r.err == EAGAIN || r.err == EWOULDBLOCK) return absl::OkStatus();
    return absl::UnavailableError(
        absl::StrCat("control receive: ", std::strerror(r.err)));
  }
}

void ControlStream::Shutdown() { sys::ShutdownBoth(fd_.get()); }

}  // namespace ssihv::rdmax
