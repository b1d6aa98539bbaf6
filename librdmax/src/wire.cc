#include "ssihv/rdmax/wire.h"

#include <cstring>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace ssihv::rdmax {
namespace {

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed frame: ", what));
}

bool AllowedInPhase(FrameKind kind, WirePhase phase) {
  switch (phase) {
    case WirePhase::kAcceptorHandshake:
      return kind == FrameKind::kHello || kind == FrameKind::kProof;
    case WirePhase::kDialerHandshake:
      return kind == FrameKind::kChallenge || kind == FrameKind::kWelcome;
    case WirePhase::kEstablished:
      return static_cast<uint8_t>(kind) >=
             static_cast<uint8_t>(FrameKind::kRegionTable);
  }
  return false;
}

bool CarriesUserType(FrameKind kind) {
  return kind == FrameKind::kMessage || kind == FrameKind::kRequest ||
         kind == FrameKind::kResponse;
}

bool NeedsId(FrameKind kind) {
  return kind == FrameKind::kRequest || kind == FrameKind::kResponse ||
         kind == FrameKind::kFetchRequest ||
         kind == FrameKind::kFetchResponse || kind == FrameKind::kCredit ||
         kind == FrameKind::kRdmaLaneRequest ||
         kind == FrameKind::kRdmaLaneAccept;
}

bool MayCarryError(FrameKind kind) {
  return kind == FrameKind::kResponse || kind == FrameKind::kFetchResponse ||
         kind == FrameKind::kRdmaLaneAccept;
}

// The payload length rule of each kind: [min, max].
struct LengthRule {
  uint64_t min;
  uint64_t max;
};

LengthRule LengthRuleFor(const FrameHeader& h, const FrameLimits& limits) {
  if (h.flags & kFlagError) return {4, 4 + kMaxErrorMessage};
  switch (h.kind) {
    case FrameKind::kHello:
      return {kHelloSize, kHelloSize};
    case FrameKind::kChallenge:
      return {kChallengeSize, kChallengeSize};
    case FrameKind::kProof:
      return {kMacSize, kMacSize};
    case FrameKind::kWelcome:
    case FrameKind::kRdmaReady:
    case FrameKind::kCredit:
      return {0, 0};
    case FrameKind::kRegionTable:
      return {0, kRegionEntrySize * kMaxRegions};
    case FrameKind::kRegionAdd:
      return {kRegionEntrySize, kRegionEntrySize};
    case FrameKind::kRegionRemove:
    case FrameKind::kRegionRemoveAck:
      return {8, 8};
    case FrameKind::kMessage:
    case FrameKind::kRequest:
    case FrameKind::kResponse:
      return {0, limits.max_message_bytes};
    case FrameKind::kFetchRequest:
      return {kFetchRequestSize, kFetchRequestSize};
    case FrameKind::kFetchResponse:
      return {1, limits.max_fetch_bytes};
    case FrameKind::kRdmaParams:
    case FrameKind::kRdmaLaneRequest:
    case FrameKind::kRdmaLaneAccept:
      return {kRdmaParamsSize, kRdmaParamsSize};
  }
  return {1, 0};  // unreachable: the kind was checked first
}

}  // namespace

absl::string_view FrameKindName(FrameKind kind) {
  switch (kind) {
    case FrameKind::kHello:
      return "hello";
    case FrameKind::kChallenge:
      return "challenge";
    case FrameKind::kProof:
      return "proof";
    case FrameKind::kWelcome:
      return "welcome";
    case FrameKind::kRegionTable:
      return "region-table";
    case FrameKind::kRegionAdd:
      return "region-add";
    case FrameKind::kRegionRemove:
      return "region-remove";
    case FrameKind::kRegionRemoveAck:
      return "region-remove-ack";
    case FrameKind::kMessage:
      return "message";
    case FrameKind::kRequest:
      return "request";
    case FrameKind::kResponse:
      return "response";
    case FrameKind::kFetchRequest:
      return "fetch-request";
    case FrameKind::kFetchResponse:
      return "fetch-response";
    case FrameKind::kRdmaParams:
      return "rdma-params";
    case FrameKind::kRdmaReady:
      return "rdma-ready";
    case FrameKind::kCredit:
      return "credit";
    case FrameKind::kRdmaLaneRequest:
      return "rdma-lane-request";
    case FrameKind::kRdmaLaneAccept:
      return "rdma-lane-accept";
  }
  return "unknown";
}

void EncodeFrameHeader(const FrameHeader& h, uint8_t* out) {
  PutU32(out, h.length);
  out[4] = static_cast<uint8_t>(h.kind);
  out[5] = h.flags;
  PutU16(out + 6, h.type);
  PutU64(out + 8, h.id);
}

absl::StatusOr<FrameHeader> DecodeFrameHeader(absl::Span<const uint8_t> bytes,
                                              WirePhase phase,
                                              const FrameLimits& limits) {
  if (bytes.size() < kFrameHeaderSize) return Malformed("short header");
  const uint8_t* p = bytes.data();
  FrameHeader h;
  h.length = GetU32(p);
  uint8_t kind = p[4];
  h.flags = p[5];
  h.type = GetU16(p + 6);
  h.id = GetU64(p + 8);
  if (kind == 0 || kind > kMaxFrameKind) {
    return Malformed(absl::StrCat("unknown kind ", kind));
  }
  h.kind = static_cast<FrameKind>(kind);
  // Named only on the error paths: every frame received passes here.
  auto name = [&h] { return FrameKindName(h.kind); };
  if (!AllowedInPhase(h.kind, phase)) {
    return Malformed(absl::StrCat(name(), " not allowed in this phase"));
  }
  if ((h.flags & ~kFlagError) != 0 ||
      ((h.flags & kFlagError) != 0 && !MayCarryError(h.kind))) {
    return Malformed(absl::StrCat(name(), ": flags 0x", absl::Hex(h.flags)));
  }
  if (h.type != 0 && !CarriesUserType(h.kind)) {
    return Malformed(absl::StrCat(name(), ": type ", h.type, " must be 0"));
  }
  if (NeedsId(h.kind) != (h.id != 0)) {
    return Malformed(
        absl::StrCat(name(), h.id == 0 ? ": id missing" : ": unexpected id"));
  }
  if (h.kind == FrameKind::kCredit && h.id > 0xFFFF) {
    return Malformed(absl::StrCat("credit: count ", h.id, " out of range"));
  }
  LengthRule rule = LengthRuleFor(h, limits);
  if (h.length < rule.min || h.length > rule.max) {
    return Malformed(absl::StrCat(name(), ": length ", h.length, " not in ",
                                  rule.min, "..", rule.max));
  }
  if (h.kind == FrameKind::kRegionTable && h.length % kRegionEntrySize != 0) {
    return Malformed(
        absl::StrCat(name(), ": length ", h.length, " is not whole entries"));
  }
  return h;
}

std::vector<uint8_t> EncodeHello(const HelloPayload& hello) {
  std::vector<uint8_t> out(kHelloSize);
  PutU32(out.data(), hello.magic);
  PutU16(out.data() + 4, hello.version);
  PutU16(out.data() + 6, hello.backend);
  PutU32(out.data() + 8, hello.node_id);
  PutU32(out.data() + 12, hello.target_id);
  std::memcpy(out.data() + 16, hello.nonce.data(), kNonceSize);
  return out;
}

absl::StatusOr<HelloPayload> DecodeHello(absl::Span<const uint8_t> payload) {
  if (payload.size() != kHelloSize) return Malformed("hello: size");
  const uint8_t* p = payload.data();
  HelloPayload hello;
  hello.magic = GetU32(p);
  hello.version = GetU16(p + 4);
  hello.backend = GetU16(p + 6);
  hello.node_id = GetU32(p + 8);
  hello.target_id = GetU32(p + 12);
  std::memcpy(hello.nonce.data(), p + 16, kNonceSize);
  if (hello.magic != kWireMagic) return Malformed("hello: bad magic");
  if (hello.version != kWireVersion) {
    return Malformed(absl::StrCat("hello: wire version ", hello.version,
                                  ", this node speaks ", kWireVersion));
  }
  if (hello.backend < 1 || hello.backend > 3) {
    return Malformed(absl::StrCat("hello: backend ", hello.backend));
  }
  return hello;
}

std::vector<uint8_t> EncodeChallenge(const ChallengePayload& c) {
  std::vector<uint8_t> out(kChallengeSize);
  PutU32(out.data(), c.node_id);
  std::memcpy(out.data() + 4, c.nonce.data(), kNonceSize);
  std::memcpy(out.data() + 4 + kNonceSize, c.mac.data(), kMacSize);
  return out;
}

absl::StatusOr<ChallengePayload> DecodeChallenge(
    absl::Span<const uint8_t> payload) {
  if (payload.size() != kChallengeSize) return Malformed("challenge: size");
  ChallengePayload c;
  c.node_id = GetU32(payload.data());
  std::memcpy(c.nonce.data(), payload.data() + 4, kNonceSize);
  std::memcpy(c.mac.data(), payload.data() + 4 + kNonceSize, kMacSize);
  return c;
}

void EncodeRegionEntry(const RegionEntry& e, uint8_t* out) {
  PutU32(out, e.id);
  PutU32(out + 4, e.rkey);
  PutU64(out + 8, e.base);
  PutU64(out + 16, e.length);
}

absl::StatusOr<std::vector<RegionEntry>> DecodeRegionEntries(
    absl::Span<const uint8_t> payload) {
  if (payload.size() % kRegionEntrySize != 0 ||
      payload.size() / kRegionEntrySize > kMaxRegions) {
    return Malformed(absl::StrCat("region entries: size ", payload.size()));
  }
  std::vector<RegionEntry> entries(payload.size() / kRegionEntrySize);
  std::unordered_set<uint32_t> ids;
  for (size_t i = 0; i < entries.size(); ++i) {
    const uint8_t* p = payload.data() + i * kRegionEntrySize;
    RegionEntry& e = entries[i];
    e.id = GetU32(p);
    e.rkey = GetU32(p + 4);
    e.base = GetU64(p + 8);
    e.length = GetU64(p + 16);
    if (e.length == 0 || e.base + e.length < e.base) {
      return Malformed(absl::StrCat("region ", e.id, ": bad extent"));
    }
    if (!ids.insert(e.id).second) {
      return Malformed(absl::StrCat("region ", e.id, ": duplicate id"));
    }
  }
  return entries;
}

void EncodeRegionId(uint32_t id, uint8_t* out) {
  PutU32(out, id);
  PutU32(out + 4, 0);
}

absl::StatusOr<uint32_t> DecodeRegionId(absl::Span<const uint8_t> payload) {
  if (payload.size() != 8 || GetU32(payload.data() + 4) != 0) {
    return Malformed("region id payload");
  }
  return GetU32(payload.data());
}

void EncodeFetchRequest(const FetchRequestPayload& r, uint8_t* out) {
  PutU32(out, r.region);
  PutU32(out + 4, r.length);
  PutU64(out + 8, r.offset);
}

absl::StatusOr<FetchRequestPayload> DecodeFetchRequest(
    absl::Span<const uint8_t> payload, const FrameLimits& limits) {
  if (payload.size() != kFetchRequestSize) return Malformed("fetch: size");
  FetchRequestPayload r;
  r.region = GetU32(payload.data());
  r.length = GetU32(payload.data() + 4);
  r.offset = GetU64(payload.data() + 8);
  if (r.length == 0 || r.length > limits.max_fetch_bytes) {
    return Malformed(absl::StrCat("fetch: length ", r.length, " not in 1..",
                                  limits.max_fetch_bytes));
  }
  return r;
}

std::vector<uint8_t> EncodeError(const absl::Status& status) {
  absl::string_view msg = status.message();
  if (msg.size() > kMaxErrorMessage) msg = msg.substr(0, kMaxErrorMessage);
  std::vector<uint8_t> out(4 + msg.size());
  uint32_t code = status.ok()
                      ? static_cast<uint32_t>(absl::StatusCode::kUnknown)
                      : static_cast<uint32_t>(status.code());
  PutU32(out.data(), code);
  if (!msg.empty()) std::memcpy(out.data() + 4, msg.data(), msg.size());
  return out;
}

absl::Status DecodeError(absl::Span<const uint8_t> payload,
                         absl::Status* carried) {
  if (payload.size() < 4 || payload.size() > 4 + kMaxErrorMessage) {
    return Malformed("error payload: size");
  }
  uint32_t code = GetU32(payload.data());
  if (code == 0 ||
      code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)) {
    return Malformed(absl::StrCat("error payload: code ", code));
  }
  *carried = absl::Status(
      static_cast<absl::StatusCode>(code),
      absl::string_view(reinterpret_cast<const char*>(payload.data() + 4),
                        payload.size() - 4));
  return absl::OkStatus();
}

std::vector<uint8_t> EncodeRdmaParams(const RdmaParamsPayload& r) {
  std::vector<uint8_t> out(kRdmaParamsSize);
  uint8_t* p = out.data();
  PutU32(p, r.qpn);
  PutU32(p + 4, r.psn);
  std::memcpy(p + 8, r.gid.data(), 16);
  PutU16(p + 24, r.lid);
  p[26] = r.mtu;
  p[27] = r.link_layer;
  PutU32(p + 28, r.recv_depth);
  PutU32(p + 32, r.recv_bytes);
  PutU32(p + 36, r.max_rd_atomic);
  return out;
}

absl::StatusOr<RdmaParamsPayload> DecodeRdmaParams(
    absl::Span<const uint8_t> payload) {
  if (payload.size() != kRdmaParamsSize) return Malformed("rdma params: size");
  const uint8_t* p = payload.data();
  RdmaParamsPayload r;
  r.qpn = GetU32(p);
  r.psn = GetU32(p + 4);
  std::memcpy(r.gid.data(), p + 8, 16);
  r.lid = GetU16(p + 24);
  r.mtu = p[26];
  r.link_layer = p[27];
  r.recv_depth = GetU32(p + 28);
  r.recv_bytes = GetU32(p + 32);
  r.max_rd_atomic = GetU32(p + 36);
  if (r.qpn == 0 || r.qpn > 0xFFFFFF || r.psn > 0xFFFFFF) {
    return Malformed("rdma params: qpn/psn out of 24-bit range");
  }
  if (r.mtu < 1 || r.mtu > 5) return Malformed("rdma params: mtu");
  if (r.recv_depth == 0 || r.recv_depth > 65536 || r.recv_bytes < 64 ||
      r.max_rd_atomic == 0 || r.max_rd_atomic > 255) {
    return Malformed("rdma params: queue sizes");
  }
  return r;
}

}  // namespace ssihv::rdmax
