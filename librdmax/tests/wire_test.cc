#include "ssihv/rdmax/wire.h"

#include <catch2/catch.hpp>

namespace ssihv::rdmax {
namespace {

std::array<uint8_t, kFrameHeaderSize> Encode(const FrameHeader& h) {
  std::array<uint8_t, kFrameHeaderSize> out{};
  EncodeFrameHeader(h, out.data());
  return out;
}

absl::StatusOr<FrameHeader> Decode(const FrameHeader& h,
                                   WirePhase phase = WirePhase::kEstablished) {
  auto bytes = Encode(h);
  return DecodeFrameHeader(bytes, phase, FrameLimits{});
}

FrameHeader Make(FrameKind kind, uint32_t length, uint64_t id = 0,
                 uint16_t type = 0, uint8_t flags = 0) {
  FrameHeader h;
  h.kind = kind;
  h.length = length;
  h.id = id;
  h.type = type;
  h.flags = flags;
  return h;
}

TEST_CASE("frame header round-trips every field, little-endian") {
  FrameHeader h = Make(FrameKind::kRequest, 300, 0x0102030405060708, 0xBEEF);
  auto bytes = Encode(h);
  CHECK(bytes[0] == 0x2C);  // 300 = 0x012C
  CHECK(bytes[1] == 0x01);
  CHECK(bytes[4] == static_cast<uint8_t>(FrameKind::kRequest));
  CHECK(bytes[6] == 0xEF);
  CHECK(bytes[8] == 0x08);
  CHECK(bytes[15] == 0x01);
  auto d = Decode(h);
  REQUIRE(d.ok());
  CHECK(d->length == 300);
  CHECK(d->kind == FrameKind::kRequest);
  CHECK(d->type == 0xBEEF);
  CHECK(d->id == 0x0102030405060708);
}

TEST_CASE("frame header rejects what the protocol does not allow") {
  FrameLimits limits;
  SECTION("unknown kinds") {
    std::array<uint8_t, kFrameHeaderSize> bytes{};
    for (int kind : {0, kMaxFrameKind + 1, 255}) {
      bytes[4] = static_cast<uint8_t>(kind);
      CHECK(!DecodeFrameHeader(bytes, WirePhase::kEstablished, limits).ok());
    }
  }
  SECTION("short input") {
    std::array<uint8_t, 8> bytes{};
    CHECK(!DecodeFrameHeader(bytes, WirePhase::kEstablished, limits).ok());
  }
  SECTION("phase") {
    CHECK(!Decode(Make(FrameKind::kMessage, 1), WirePhase::kAcceptorHandshake)
               .ok());
    CHECK(!Decode(Make(FrameKind::kHello, kHelloSize)).ok());
    CHECK(Decode(Make(FrameKind::kHello, kHelloSize),
                 WirePhase::kAcceptorHandshake)
              .ok());
    CHECK(!Decode(Make(FrameKind::kHello, kHelloSize),
                  WirePhase::kDialerHandshake)
               .ok());
  }
  SECTION("lengths") {
    CHECK(Decode(Make(FrameKind::kMessage, limits.max_message_bytes)).ok());
    CHECK(
        !Decode(Make(FrameKind::kMessage, limits.max_message_bytes + 1)).ok());
    CHECK(!Decode(Make(FrameKind::kMessage, 0xFFFFFFFF)).ok());
    CHECK(!Decode(Make(FrameKind::kFetchRequest, 15, 1)).ok());
    CHECK(!Decode(Make(FrameKind::kFetchResponse, 0, 1)).ok());
    CHECK(Decode(Make(FrameKind::kFetchResponse, limits.max_fetch_bytes, 1))
              .ok());
    CHECK(
        !Decode(Make(FrameKind::kFetchResponse, limits.max_fetch_bytes + 1, 1))
             .ok());
    CHECK(!Decode(Make(FrameKind::kRegionTable, 25)).ok());
    CHECK(Decode(Make(FrameKind::kRegionTable, 48)).ok());
    CHECK(!Decode(Make(FrameKind::kCredit, 1, 4)).ok());
  }
  SECTION("ids") {
    CHECK(!Decode(Make(FrameKind::kRequest, 4, 0)).ok());
    CHECK(!Decode(Make(FrameKind::kMessage, 4, 9)).ok());
    CHECK(!Decode(Make(FrameKind::kFetchResponse, 4, 0)).ok());
    CHECK(!Decode(Make(FrameKind::kCredit, 0, 0x10000)).ok());
    CHECK(!Decode(Make(FrameKind::kRdmaLaneRequest, kRdmaParamsSize, 0)).ok());
    CHECK(Decode(Make(FrameKind::kRdmaLaneRequest, kRdmaParamsSize, 3)).ok());
    CHECK(!Decode(Make(FrameKind::kRdmaLaneAccept, kRdmaParamsSize, 0)).ok());
  }
  SECTION("rdma fetch lane frames") {
    CHECK(!Decode(Make(FrameKind::kRdmaLaneRequest, kRdmaParamsSize - 1, 1))
               .ok());
    CHECK(Decode(Make(FrameKind::kRdmaLaneAccept, kRdmaParamsSize, 1)).ok());
    // A refusal carries an error; a request cannot.
    CHECK(Decode(Make(FrameKind::kRdmaLaneAccept, 20, 1, 0, kFlagError)).ok());
    CHECK(
        !Decode(Make(FrameKind::kRdmaLaneRequest, 20, 1, 0, kFlagError)).ok());
    CHECK(FrameKindName(FrameKind::kRdmaLaneAccept) == "rdma-lane-accept");
  }
  SECTION("flags and type") {
    CHECK(Decode(Make(FrameKind::kResponse, 4, 1, 0, kFlagError)).ok());
    CHECK(!Decode(Make(FrameKind::kResponse, 3, 1, 0, kFlagError)).ok());
    CHECK(!Decode(Make(FrameKind::kMessage, 4, 0, 0, kFlagError)).ok());
    CHECK(!Decode(Make(FrameKind::kResponse, 4, 1, 0, 0x80)).ok());
    CHECK(!Decode(Make(FrameKind::kFetchRequest, 16, 1, 7)).ok());
  }
}

TEST_CASE("payload codecs round-trip and reject bad payloads") {
  SECTION("hello") {
    HelloPayload hello;
    hello.backend = 1;
    hello.node_id = 3;
    hello.target_id = 1;
    hello.nonce[5] = 42;
    auto bytes = EncodeHello(hello);
    auto d = DecodeHello(bytes);
    REQUIRE(d.ok());
    CHECK(d->node_id == 3);
    CHECK(d->target_id == 1);
    CHECK(d->nonce[5] == 42);
    bytes[0] ^= 1;
    CHECK(!DecodeHello(bytes).ok());  // magic
    hello.version = kWireVersion + 1;
    CHECK(!DecodeHello(EncodeHello(hello)).ok());
    hello.version = kWireVersion;
    hello.backend = 3;  // a TCP fetch lane
    CHECK(DecodeHello(EncodeHello(hello)).ok());
    hello.backend = 4;
    CHECK(!DecodeHello(EncodeHello(hello)).ok());
    hello.backend = 9;
    CHECK(!DecodeHello(EncodeHello(hello)).ok());
  }
  SECTION("region entries") {
    std::vector<uint8_t> bytes(2 * kRegionEntrySize);
    EncodeRegionEntry({1, 0x77, 0x1000, 0x2000}, bytes.data());
    EncodeRegionEntry({2, 0, 0, 4096}, bytes.data() + kRegionEntrySize);
    auto d = DecodeRegionEntries(bytes);
    REQUIRE(d.ok());
    REQUIRE(d->size() == 2);
    CHECK((*d)[0].rkey == 0x77);
    CHECK((*d)[0].base == 0x1000);
    CHECK((*d)[1].length == 4096);
    EncodeRegionEntry({1, 0, 0, 4096}, bytes.data() + kRegionEntrySize);
    CHECK(!DecodeRegionEntries(bytes).ok());  // duplicate id
    EncodeRegionEntry({2, 0, ~uint64_t{0} - 10, 4096},
                      bytes.data() + kRegionEntrySize);
    CHECK(!DecodeRegionEntries(bytes).ok());  // wraps
    EncodeRegionEntry({2, 0, 0, 0}, bytes.data() + kRegionEntrySize);
    CHECK(!DecodeRegionEntries(bytes).ok());  // empty
    CHECK(!DecodeRegionEntries(absl::MakeConstSpan(bytes.data(), 30)).ok());
  }
  SECTION("fetch request") {
    uint8_t bytes[kFetchRequestSize];
    EncodeFetchRequest({7, 4096, 0x123456789}, bytes);
    auto d = DecodeFetchRequest(bytes, FrameLimits{});
    REQUIRE(d.ok());
    CHECK(d->region == 7);
    CHECK(d->length == 4096);
    CHECK(d->offset == 0x123456789);
    EncodeFetchRequest({7, 0, 0}, bytes);
    CHECK(!DecodeFetchRequest(bytes, FrameLimits{}).ok());
    EncodeFetchRequest({7, FrameLimits{}.max_fetch_bytes + 1, 0}, bytes);
    CHECK(!DecodeFetchRequest(bytes, FrameLimits{}).ok());
  }
  SECTION("error") {
    auto bytes = EncodeError(absl::OutOfRangeError("past the end"));
    absl::Status carried;
    REQUIRE(DecodeError(bytes, &carried).ok());
    CHECK(carried.code() == absl::StatusCode::kOutOfRange);
    CHECK(carried.message() == "past the end");
    bytes[0] = 0;  // code OK is not an error
    CHECK(!DecodeError(bytes, &carried).ok());
    bytes[0] = 200;
    CHECK(!DecodeError(bytes, &carried).ok());
  }
  SECTION("rdma params") {
    RdmaParamsPayload p;
    p.qpn = 0x1234;
    p.psn = 0xABCDEF;
    p.gid[0] = 0xfe;
    p.mtu = 3;
    p.recv_depth = 64;
    p.recv_bytes = 16400;
    p.max_rd_atomic = 16;
    auto d = DecodeRdmaParams(EncodeRdmaParams(p));
    REQUIRE(d.ok());
    CHECK(d->qpn == 0x1234);
    CHECK(d->psn == 0xABCDEF);
    CHECK(d->gid[0] == 0xfe);
    p.qpn = 0x1000000;
    CHECK(!DecodeRdmaParams(EncodeRdmaParams(p)).ok());
    p.qpn = 1;
    p.mtu = 9;
    CHECK(!DecodeRdmaParams(EncodeRdmaParams(p)).ok());
  }
}

}  // namespace
}  // namespace ssihv::rdmax
