#include "frame_reader.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

namespace ssihv::rdmax {
namespace {

// A sink that may refuse one kind of frame (backpressure).
class TestSink : public FrameSink {
 public:
  bool MayConsume(const FrameHeader& h) override {
    return !refuse_kind || h.kind != *refuse_kind;
  }
  std::optional<FrameKind> refuse_kind;
};

void AppendFrame(std::vector<uint8_t>* stream, FrameKind kind, uint64_t id,
                 const std::vector<uint8_t>& payload, uint16_t type = 0) {
  FrameHeader h;
  h.kind = kind;
  h.id = id;
  h.type = type;
  h.length = static_cast<uint32_t>(payload.size());
  uint8_t hdr[kFrameHeaderSize];
  EncodeFrameHeader(h, hdr);
  stream->insert(stream->end(), hdr, hdr + kFrameHeaderSize);
  stream->insert(stream->end(), payload.begin(), payload.end());
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

// Feeds `stream` to the reader in chunks of at most `chunk` bytes and
// collects (kind, id, payload) of every frame.
struct Collected {
  FrameKind kind;
  uint64_t id;
  std::vector<uint8_t> payload;
};

std::vector<Collected> Feed(FrameReader& reader, TestSink& sink,
                            const std::vector<uint8_t>& stream, size_t chunk) {
  std::vector<Collected> out;
  size_t pos = 0;
  for (;;) {
    Frame f;
    FrameReader::Result r = reader.Next(sink, &f);
    if (r == FrameReader::Result::kFrame) {
      out.push_back({f.header.kind, f.header.id,
                     std::vector<uint8_t>(f.payload.begin(), f.payload.end())});
      continue;
    }
    REQUIRE(r == FrameReader::Result::kNeedMore);
    if (pos == stream.size()) break;
    struct iovec iov[1];
    REQUIRE(reader.PrepareRead(iov) == 1);
    size_t done = std::min({chunk, stream.size() - pos, iov[0].iov_len});
    std::memcpy(iov[0].iov_base, stream.data() + pos, done);
    pos += done;
    reader.Commit(done);
  }
  return out;
}

TEST_CASE("frame reader decodes a stream in any chunking") {
  std::vector<uint8_t> stream;
  AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(100, 1), 5);
  AppendFrame(&stream, FrameKind::kResponse, 9, Pattern(4096, 2));
  AppendFrame(&stream, FrameKind::kRequest, 3, {}, 1);
  AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(16384, 3), 2);
  for (size_t chunk : {1, 7, 16, 17, 4000, 5000, 100000}) {
    CAPTURE(chunk);
    FrameReader reader(FrameLimits{}, 20000, WirePhase::kEstablished);
    TestSink sink;
    auto frames = Feed(reader, sink, stream, chunk);
    REQUIRE(frames.size() == 4);
    CHECK(frames[0].payload == Pattern(100, 1));
    CHECK(frames[1].kind == FrameKind::kResponse);
    CHECK(frames[1].id == 9);
    CHECK(frames[1].payload == Pattern(4096, 2));
    CHECK(frames[2].kind == FrameKind::kRequest);
    CHECK(frames[2].id == 3);
    CHECK(frames[3].payload == Pattern(16384, 3));
  }
}

TEST_CASE("frame reader rejects malformed input and stays failed") {
  FrameReader reader(FrameLimits{}, 20000, WirePhase::kEstablished);
  TestSink sink;
  std::vector<uint8_t> stream;
  SECTION("oversized message") {
    FrameHeader h;
    h.kind = FrameKind::kMessage;
    h.length = 1 << 30;
    stream.resize(kFrameHeaderSize);
    EncodeFrameHeader(h, stream.data());
  }
  SECTION("a kind of the removed fetch surface") {
    AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(64, 0));
    stream[4] = 13;  // wire version 2's fetch response
  }
  SECTION("a request without an id") {
    AppendFrame(&stream, FrameKind::kRequest, 0, Pattern(64, 0));
  }
  struct iovec iov[1];
  REQUIRE(reader.PrepareRead(iov) == 1);
  std::memcpy(iov[0].iov_base, stream.data(), stream.size());
  reader.Commit(stream.size());
  Frame f;
  CHECK(reader.Next(sink, &f) == FrameReader::Result::kError);
  CHECK(absl::IsInvalidArgument(reader.error()));
  CHECK(reader.Next(sink, &f) == FrameReader::Result::kError);
}

TEST_CASE("frame reader yields frames the sink may not consume yet") {
  FrameReader reader(FrameLimits{}, 20000, WirePhase::kEstablished);
  TestSink sink;
  sink.refuse_kind = FrameKind::kRequest;
  std::vector<uint8_t> stream;
  AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(10, 0));
  AppendFrame(&stream, FrameKind::kRequest, 4, Pattern(10, 1));
  struct iovec iov[1];
  reader.PrepareRead(iov);
  std::memcpy(iov[0].iov_base, stream.data(), stream.size());
  reader.Commit(stream.size());
  Frame f;
  REQUIRE(reader.Next(sink, &f) == FrameReader::Result::kFrame);
  CHECK(reader.Next(sink, &f) == FrameReader::Result::kYield);
  CHECK(reader.HasBuffered());
  sink.refuse_kind.reset();
  REQUIRE(reader.Next(sink, &f) == FrameReader::Result::kFrame);
  CHECK(f.header.id == 4);
  CHECK(std::vector<uint8_t>(f.payload.begin(), f.payload.end()) ==
        Pattern(10, 1));
}

TEST_CASE(
    "frame reader survives random garbage without reading out of bounds") {
  std::mt19937 rng(1234);
  for (int round = 0; round < 200; ++round) {
    FrameReader reader(FrameLimits{1024}, 4096, WirePhase::kEstablished);
    TestSink sink;
    std::vector<uint8_t> stream(rng() % 3000);
    for (auto& b : stream) b = static_cast<uint8_t>(rng());
    size_t pos = 0;
    for (int steps = 0; steps < 100 && pos < stream.size(); ++steps) {
      Frame f;
      FrameReader::Result r = reader.Next(sink, &f);
      if (r == FrameReader::Result::kError) break;
      if (r == FrameReader::Result::kFrame) continue;
      struct iovec iov[1];
      if (reader.PrepareRead(iov) == 0) break;
      size_t take = std::min<size_t>(iov[0].iov_len, stream.size() - pos);
      take = std::min<size_t>(take, 1 + rng() % 500);
      std::memcpy(iov[0].iov_base, stream.data() + pos, take);
      pos += take;
      reader.Commit(take);
    }
  }
}

}  // namespace
}  // namespace ssihv::rdmax
