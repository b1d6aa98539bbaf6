// libFuzzer target for the TCP frame decoder: the exact FrameReader the
// connections run, fed in fuzzer-chosen chunks (including the speculative
// single-recv path), with every payload handed to its decoder and the
// handshake state machines. Any crash, sanitizer report or out-of-bounds
// read is a bug; rejected input must only produce a Status.
//
// Input: byte 0 picks the phase (acceptor handshake / dialer handshake /
// established), byte 1 the chunking; the rest is the byte stream.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "auth.h"
#include "frame_reader.h"
#include "ssihv/rdmax/wire.h"

namespace {

using namespace ssihv::rdmax;

// Pending fetches 1 (64 bytes) and 2 (4096 bytes), as a connection would
// have after issuing them.
class FuzzSink : public FrameSink {
 public:
  bool MayConsume(const FrameHeader& h) override {
    // Yield on requests now and then, like a paused connection.
    return !(h.kind == FrameKind::kRequest && (h.id & 7) == 7);
  }
  absl::StatusOr<uint8_t*> FetchTarget(uint64_t id, uint32_t length) override {
    if (id == 1 && length == small_.size()) return small_.data();
    if (id == 2 && length == page_.size()) return page_.data();
    return absl::InvalidArgumentError("unknown fetch");
  }
  std::vector<uint8_t> small_ = std::vector<uint8_t>(64);
  std::vector<uint8_t> page_ = std::vector<uint8_t>(4096);
};

void DecodePayload(const Frame& f, const FrameLimits& limits,
                   AcceptorHandshake& acceptor, DialerHandshake& dialer) {
  absl::Status carried;
  switch (f.header.kind) {
    case FrameKind::kHello:
      (void)acceptor.OnHello(f.payload);
      (void)DecodeHello(f.payload);
      break;
    case FrameKind::kProof:
      (void)acceptor.OnProof(f.payload);
      break;
    case FrameKind::kChallenge:
      (void)dialer.OnChallenge(f.payload);
      break;
    case FrameKind::kRegionTable:
    case FrameKind::kRegionAdd:
      (void)DecodeRegionEntries(f.payload);
      break;
    case FrameKind::kRegionRemove:
    case FrameKind::kRegionRemoveAck:
      (void)DecodeRegionId(f.payload);
      break;
    case FrameKind::kFetchRequest:
      (void)DecodeFetchRequest(f.payload, limits);
      break;
    case FrameKind::kResponse:
    case FrameKind::kFetchResponse:
      if (f.header.flags & kFlagError) (void)DecodeError(f.payload, &carried);
      break;
    case FrameKind::kRdmaParams:
    case FrameKind::kRdmaLaneRequest:
      (void)DecodeRdmaParams(f.payload);
      break;
    case FrameKind::kRdmaLaneAccept:  // fetch lane set-up (or its refusal)
      if (f.header.flags & kFlagError) {
        (void)DecodeError(f.payload, &carried);
      } else {
        (void)DecodeRdmaParams(f.payload);
      }
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const WirePhase phases[] = {WirePhase::kAcceptorHandshake,
                              WirePhase::kDialerHandshake,
                              WirePhase::kEstablished};
  WirePhase phase = phases[data[0] % 3];
  size_t chunk = 1 + data[1] * 37;
  data += 2;
  size -= 2;
  FrameLimits limits{1024, 8192};
  FrameReader reader(limits, 16 + 24 * 1024 + 4096, phase);
  FuzzSink sink;
  const std::string secret = "fuzzing-cluster-secret-0123456789";
  AcceptorHandshake acceptor(secret, 0, 4, WireBackend::kTcp);
  DialerHandshake dialer(secret, 3, 0, WireBackend::kTcp);
  (void)dialer.Hello();
  size_t pos = 0;
  bool speculate = (chunk & 1) != 0;
  for (int steps = 0; steps < 10000; ++steps) {
    Frame f;
    FrameReader::Result r = reader.Next(sink, &f);
    if (r == FrameReader::Result::kError) break;
    if (r == FrameReader::Result::kFrame) {
      DecodePayload(f, limits, acceptor, dialer);
      continue;
    }
    if (r == FrameReader::Result::kYield) {
      // What a connection does when room comes back: consume anyway.
      FuzzSink open;
      open.small_.swap(sink.small_);
      open.page_.swap(sink.page_);
      FrameReader::Result again = reader.Next(open, &f);
      open.small_.swap(sink.small_);
      open.page_.swap(sink.page_);
      if (again == FrameReader::Result::kError) break;
      if (again == FrameReader::Result::kFrame) {
        DecodePayload(f, limits, acceptor, dialer);
      }
      continue;
    }
    if (pos == size) break;
    struct iovec iov[3];
    int n = speculate
                ? reader.PrepareSpeculativeRead(iov, 2, sink.page_.data(), 4096)
                : 0;
    if (n == 0) n = reader.PrepareRead(iov);
    if (n == 0) break;
    size_t want = std::min(chunk, size - pos);
    size_t done = 0;
    for (int i = 0; i < n && done < want; ++i) {
      size_t take = std::min(iov[i].iov_len, want - done);
      std::memcpy(iov[i].iov_base, data + pos + done, take);
      done += take;
    }
    reader.Commit(done);
    pos += done;
    speculate = !speculate;
  }
  return 0;
}
