// libFuzzer target for the messages ssihv-vmm nodes exchange (node_wire.h):
// every decoder on arbitrary bytes from a peer. Besides ASan/UBSan's
// checks, each message a decoder accepts must keep the limits the receiver
// relies on, and must survive a round trip: its encoding decodes again and
// encodes to the same bytes (a field the decoder let through but the
// encoder cannot carry would show here).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "node_wire.h"

namespace ssihv::vmm {
namespace {

constexpr uint32_t kVcpus = 300;  // a cluster of 300 vCPUs (x2APIC range)

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// `decode` accepted `first`: its encoding must decode, to the same bytes.
template <typename Msg, typename Decode>
void RoundTrip(const Msg& first, Decode decode) {
  const std::vector<uint8_t> bytes = Encode(first);
  absl::StatusOr<Msg> again = decode(absl::MakeConstSpan(bytes));
  Check(again.ok());
  Check(Encode(*again) == bytes);
}

void FuzzOne(uint8_t which, absl::Span<const uint8_t> p) {
  switch (which % 11) {
    case 0: {
      auto d = [](absl::Span<const uint8_t> b) {
        return DecodeDeliver(b, kVcpus);
      };
      if (auto m = d(p); m.ok()) {
        for (uint32_t v : m->vcpus) Check(v < kVcpus);
        RoundTrip(*m, d);
      }
      break;
    }
    case 1:
      if (auto m = DecodeEoi(p); m.ok()) RoundTrip(*m, DecodeEoi);
      break;
    case 2: {
      auto d = [](absl::Span<const uint8_t> b) {
        return DecodeRouting(b, kVcpus);
      };
      if (auto m = d(p); m.ok()) {
        Check(m->vcpu < kVcpus);
        RoundTrip(*m, d);
      }
      break;
    }
    case 3:
      if (auto m = DecodeIo(p); m.ok()) {
        Check(m->size == 1 || m->size == 2 || m->size == 4 || m->size == 8);
        RoundTrip(*m, DecodeIo);
      }
      break;
    case 4: {
      // The answer to a read or a write of 1, 2, 4 or 8 bytes.
      if (p.empty()) return;
      IoMsg request;
      request.is_write = (p[0] & 4) != 0;
      request.size = static_cast<uint8_t>(1u << (p[0] & 3));
      auto r = DecodeIoResult(p.subspan(1), request);
      if (r.ok()) Check(r->size() == (request.is_write ? 0 : request.size));
      break;
    }
    case 5:
      if (auto m = DecodeStop(p); m.ok()) {
        Check(m->text.size() <= kMaxStopText);
        (void)StopKindName(m->kind);
        RoundTrip(*m, DecodeStop);
      }
      break;
    case 6:
      if (auto m = DecodeAction(p); m.ok()) {
        (void)ActionKindName(m->action);
        RoundTrip(*m, DecodeAction);
      }
      break;
    case 7:
      if (auto m = DecodeActionResult(p); m.ok()) {
        Check(m->message.size() <= kMaxActionText);
        (void)FromActionResult(*m);
        RoundTrip(*m, DecodeActionResult);
      }
      break;
    case 8:
      if (auto m = DecodeClock(p); m.ok()) RoundTrip(*m, DecodeClock);
      break;
    case 9:
      if (auto m = DecodeHeartbeat(p); m.ok()) RoundTrip(*m, DecodeHeartbeat);
      break;
    case 10:
      if (auto m = DecodeHello(p); m.ok()) {
        Check(m->host.size() <= 255);
        RoundTrip(*m, DecodeHello);
      }
      break;
  }
}

}  // namespace
}  // namespace ssihv::vmm

// The first byte picks the decoder, the rest is the message's payload.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ssihv::vmm::FuzzOne(data[0], absl::MakeConstSpan(data + 1, size - 1));
  return 0;
}
