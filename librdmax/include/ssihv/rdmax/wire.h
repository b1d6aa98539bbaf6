// The wire format shared by the TCP backend (every frame) and the RDMA
// backend (control connection frames; each RDMA SEND carries one frame).
// A public interface: nodes of one cluster must agree on it, so changes bump
// kWireVersion. All integers are little-endian. docs/TRANSPORT.md has the
// table of frame kinds.
//
// Every decoder here validates before it trusts: a frame from the network
// is either accepted whole or rejected with an InvalidArgument status naming
// the field, never read out of bounds.
#ifndef SSIHV_RDMAX_WIRE_H_
#define SSIHV_RDMAX_WIRE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ssihv::rdmax {

inline constexpr uint32_t kWireMagic = 0x56485353;  // "SSHV"
// 2: RDMA fetch lanes (kRdmaLaneRequest/kRdmaLaneAccept); TCP fetch lanes
// (hello backend 3). 3: lane calls (kRequest/kResponse on a TCP lane).
inline constexpr uint16_t kWireVersion = 3;
inline constexpr size_t kFrameHeaderSize = 16;
inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kMacSize = 32;  // HMAC-SHA256
inline constexpr size_t kRegionEntrySize = 24;
inline constexpr size_t kMaxRegions = 1024;
inline constexpr size_t kMaxErrorMessage = 1024;

enum class FrameKind : uint8_t {
  // Handshake (before authentication completes).
  kHello = 1,      // dialer -> acceptor: HelloPayload
  kChallenge = 2,  // acceptor -> dialer: ChallengePayload
  kProof = 3,      // dialer -> acceptor: 32-byte MAC
  kWelcome = 4,    // acceptor -> dialer: empty; both sides authenticated
  // Established connection.
  kRegionTable = 5,      // n x RegionEntry: every exported region
  kRegionAdd = 6,        // one RegionEntry
  kRegionRemove = 7,     // u32 region id, u32 zero
  kRegionRemoveAck = 8,  // u32 region id, u32 zero (RDMA)
  kMessage = 9,          // user payload; `type` is the user's
  kRequest = 10,         // user payload; `id` correlates the response
  kResponse = 11,        // user payload, or ErrorPayload with kFlagError
  kFetchRequest = 12,    // FetchRequestPayload; `id` correlates
  kFetchResponse = 13,   // the bytes, or ErrorPayload with kFlagError
  kRdmaParams = 14,      // RdmaParamsPayload (control connection)
  kRdmaReady = 15,       // empty: my QP is RTS (control connection)
  kCredit = 16,          // RDMA: `id` = receive credits returned
  // RDMA fetch lanes (control connection; `id` = the fetcher's lane number).
  kRdmaLaneRequest = 17,  // fetcher -> server: RdmaParamsPayload of its QP
  kRdmaLaneAccept = 18,   // server -> fetcher: its QP's RdmaParamsPayload,
                          // or ErrorPayload with kFlagError (refused)
};
inline constexpr uint8_t kMaxFrameKind = 18;

/// Flag bit of kResponse / kFetchResponse / kRdmaLaneAccept: the payload is
/// an ErrorPayload.
inline constexpr uint8_t kFlagError = 0x01;

struct FrameHeader {
  uint32_t length = 0;  // payload bytes after the header
  FrameKind kind = FrameKind::kMessage;
  uint8_t flags = 0;
  uint16_t type = 0;  // user MessageType (kMessage/kRequest/kResponse)
  uint64_t id = 0;    // request/fetch id (kCredit: credits)
};

/// Which frames a connection accepts now.
enum class WirePhase {
  kAcceptorHandshake,  // expects kHello or kProof
  kDialerHandshake,    // expects kChallenge or kWelcome
  kEstablished,        // everything after kWelcome
};

struct FrameLimits {
  uint32_t max_message_bytes = 16 * 1024;
  uint32_t max_fetch_bytes = 2 * 1024 * 1024;
};

void EncodeFrameHeader(const FrameHeader& header, uint8_t* out);
/// Parses and validates a header against the phase and limits: known kind,
/// allowed in this phase, flags and type only where defined, id present
/// exactly where it must be, and a length that fits the kind.
absl::StatusOr<FrameHeader> DecodeFrameHeader(absl::Span<const uint8_t> bytes,
                                              WirePhase phase,
                                              const FrameLimits& limits);

struct HelloPayload {
  uint32_t magic = kWireMagic;
  uint16_t version = kWireVersion;
  uint16_t backend = 0;    // 1 = tcp, 2 = rdma (both ends must agree),
                           // 3 = tcp fetch lane (to a tcp node)
  uint32_t node_id = 0;    // who the dialer claims to be
  uint32_t target_id = 0;  // whom the dialer believes it dialed
  std::array<uint8_t, kNonceSize> nonce{};
};
inline constexpr size_t kHelloSize = 4 + 2 + 2 + 4 + 4 + kNonceSize;

struct ChallengePayload {
  uint32_t node_id = 0;  // the acceptor
  std::array<uint8_t, kNonceSize> nonce{};
  std::array<uint8_t, kMacSize> mac{};
};
inline constexpr size_t kChallengeSize = 4 + kNonceSize + kMacSize;

struct RegionEntry {
  uint32_t id = 0;
  uint32_t rkey = 0;  // RDMA remote key; 0 on TCP
  uint64_t base = 0;  // RDMA: remote virtual address; TCP: 0 (not shared)
  uint64_t length = 0;
};

struct FetchRequestPayload {
  uint32_t region = 0;
  uint32_t length = 0;
  uint64_t offset = 0;
};
inline constexpr size_t kFetchRequestSize = 16;

struct ErrorPayload {
  uint32_t code = 0;  // absl::StatusCode
  std::string message;
};

struct RdmaParamsPayload {
  uint32_t qpn = 0;
  uint32_t psn = 0;
  std::array<uint8_t, 16> gid{};
  uint16_t lid = 0;
  uint8_t mtu = 0;          // enum ibv_mtu
  uint8_t link_layer = 0;   // IBV_LINK_LAYER_*
  uint32_t recv_depth = 0;  // receive buffers posted for the peer = credits
  uint32_t recv_bytes = 0;  // size of each receive buffer
  uint32_t max_rd_atomic = 0;
};
inline constexpr size_t kRdmaParamsSize = 4 + 4 + 16 + 2 + 1 + 1 + 4 + 4 + 4;

std::vector<uint8_t> EncodeHello(const HelloPayload& hello);
absl::StatusOr<HelloPayload> DecodeHello(absl::Span<const uint8_t> payload);
std::vector<uint8_t> EncodeChallenge(const ChallengePayload& challenge);
absl::StatusOr<ChallengePayload> DecodeChallenge(
    absl::Span<const uint8_t> payload);

void EncodeRegionEntry(const RegionEntry& entry, uint8_t* out);
/// kRegionTable / kRegionAdd payloads: whole entries, no duplicate ids, no
/// base + length overflow.
absl::StatusOr<std::vector<RegionEntry>> DecodeRegionEntries(
    absl::Span<const uint8_t> payload);
absl::StatusOr<uint32_t> DecodeRegionId(absl::Span<const uint8_t> payload);
void EncodeRegionId(uint32_t id, uint8_t* out);

void EncodeFetchRequest(const FetchRequestPayload& request, uint8_t* out);
absl::StatusOr<FetchRequestPayload> DecodeFetchRequest(
    absl::Span<const uint8_t> payload, const FrameLimits& limits);

std::vector<uint8_t> EncodeError(const absl::Status& status);
/// Decodes the status carried by an error payload into `*carried`. An OK or
/// unknown code is malformed (an error frame always carries an error).
absl::Status DecodeError(absl::Span<const uint8_t> payload,
                         absl::Status* carried);

std::vector<uint8_t> EncodeRdmaParams(const RdmaParamsPayload& params);
absl::StatusOr<RdmaParamsPayload> DecodeRdmaParams(
    absl::Span<const uint8_t> payload);

absl::string_view FrameKindName(FrameKind kind);

// Little-endian helpers (x86 is little-endian; these keep the code honest
// on any host and are compiled to plain loads/stores).
inline void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint16_t GetU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_WIRE_H_
