// libFuzzer target for the TCP frame decoder: the exact FrameReader the
// connections run, fed in fuzzer-chosen chunks, with every payload handed
// to its decoder and the handshake state machines. Any crash, sanitizer
// report or out-of-bounds read is a bug; rejected input must only produce a
// Status.
//
// Input: byte 0 picks the phase (acceptor handshake / dialer handshake /
// established), byte 1 the chunking; the rest is the byte stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "auth.h"
#include "frame_reader.h"
#include "ssihv/rdmax/wire.h"

namespace {

using namespace ssihv::rdmax;

// Yields on requests now and then, like a paused connection; `open` never
// does (what a connection is when room comes back).
class FuzzSink : public FrameSink {
 public:
  explicit FuzzSink(bool open) : open_(open) {}
  bool MayConsume(const FrameHeader& h) override {
    return open_ || !(h.kind == FrameKind::kRequest && (h.id & 7) == 7);
  }

 private:
  bool open_;
};

void DecodePayload(const Frame& f, AcceptorHandshake& acceptor,
                   DialerHandshake& dialer) {
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
    case FrameKind::kResponse:
      if (f.header.flags & kFlagError) (void)DecodeError(f.payload, &carried);
      break;
    case FrameKind::kRdmaParams:
      (void)DecodeRdmaParams(f.payload);
      break;
    default:  // no payload to decode (welcome, rdma-ready, credit, rdma-up)
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
  FrameReader reader(FrameLimits{1024}, 16 + 1024 + 4096, phase);
  FuzzSink sink(false);
  FuzzSink open(true);
  const std::string secret = "fuzzing-cluster-secret-0123456789";
  AcceptorHandshake acceptor(secret, 0, 4, WireBackend::kTcp);
  DialerHandshake dialer(secret, 3, 0, WireBackend::kTcp);
  (void)dialer.Hello();
  size_t pos = 0;
  for (int steps = 0; steps < 10000; ++steps) {
    Frame f;
    FrameReader::Result r = reader.Next(sink, &f);
    if (r == FrameReader::Result::kError) break;
    if (r == FrameReader::Result::kFrame) {
      DecodePayload(f, acceptor, dialer);
      continue;
    }
    if (r == FrameReader::Result::kYield) {
      FrameReader::Result again = reader.Next(open, &f);
      if (again == FrameReader::Result::kError) break;
      if (again == FrameReader::Result::kFrame) {
        DecodePayload(f, acceptor, dialer);
      }
      continue;
    }
    if (pos == size) break;
    struct iovec iov[1];
    if (reader.PrepareRead(iov) == 0) break;
    size_t done = std::min({chunk, size - pos, iov[0].iov_len});
    std::memcpy(iov[0].iov_base, data + pos, done);
    reader.Commit(done);
    pos += done;
  }
  return 0;
}
