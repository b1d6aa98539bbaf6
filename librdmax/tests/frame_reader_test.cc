#include "frame_reader.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <vector>

namespace ssihv::rdmax {
namespace {

// A sink with a set of pending fetches (id -> buffer).
class TestSink : public FrameSink {
 public:
  bool MayConsume(const FrameHeader& h) override {
    return !refuse_kind || h.kind != *refuse_kind;
  }
  absl::StatusOr<uint8_t*> FetchTarget(uint64_t id, uint32_t length) override {
    auto it = fetches.find(id);
    if (it == fetches.end()) return absl::InvalidArgumentError("no fetch");
    if (it->second.size() != length) {
      return absl::InvalidArgumentError("length mismatch");
    }
    return it->second.data();
  }
  std::map<uint64_t, std::vector<uint8_t>> fetches;
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
    struct iovec iov[3];
    int n = reader.PrepareRead(iov);
    REQUIRE(n > 0);
    size_t want = std::min(chunk, stream.size() - pos);
    size_t done = 0;
    for (int i = 0; i < n && done < want; ++i) {
      size_t take = std::min(iov[i].iov_len, want - done);
      std::memcpy(iov[i].iov_base, stream.data() + pos + done, take);
      done += take;
    }
    pos += done;
    reader.Commit(done);
  }
  return out;
}

TEST_CASE("frame reader decodes a stream in any chunking") {
  std::vector<uint8_t> stream;
  AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(100, 1), 5);
  AppendFrame(&stream, FrameKind::kFetchResponse, 9, Pattern(4096, 2));
  AppendFrame(&stream, FrameKind::kRequest, 3, {}, 1);
  AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(16384, 3), 2);
  for (size_t chunk : {1, 7, 16, 17, 4000, 5000, 100000}) {
    CAPTURE(chunk);
    FrameReader reader(FrameLimits{}, 20000, WirePhase::kEstablished);
    TestSink sink;
    sink.fetches[9].assign(4096, 0);
    auto frames = Feed(reader, sink, stream, chunk);
    REQUIRE(frames.size() == 4);
    CHECK(frames[0].payload == Pattern(100, 1));
    CHECK(frames[1].kind == FrameKind::kFetchResponse);
    CHECK(frames[1].payload.empty());
    CHECK(sink.fetches[9] == Pattern(4096, 2));  // landed in the buffer
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
  SECTION("fetch response nobody asked for") {
    AppendFrame(&stream, FrameKind::kFetchResponse, 77, Pattern(64, 0));
  }
  SECTION("fetch response of the wrong length") {
    sink.fetches[77].resize(128);
    AppendFrame(&stream, FrameKind::kFetchResponse, 77, Pattern(64, 0));
  }
  struct iovec iov[3];
  int n = reader.PrepareRead(iov);
  REQUIRE(n >= 1);
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
  struct iovec iov[3];
  reader.PrepareRead(iov);
  std::memcpy(iov[0].iov_base, stream.data(), stream.size());
  reader.Commit(stream.size());
  Frame f;
  REQUIRE(reader.Next(sink, &f) == FrameReader::Result::kFrame);
  CHECK(reader.HasBuffered());  // the request behind the message
  CHECK(reader.Next(sink, &f) == FrameReader::Result::kYield);
  CHECK(reader.HasBuffered());
  sink.refuse_kind.reset();
  REQUIRE(reader.Next(sink, &f) == FrameReader::Result::kFrame);
  CHECK(f.header.id == 4);
  CHECK(std::vector<uint8_t>(f.payload.begin(), f.payload.end()) ==
        Pattern(10, 1));
  // The payload just handed out is not more to read: a caller that read
  // its own response must not wake the data thread for nothing.
  CHECK_FALSE(reader.HasBuffered());
  CHECK(reader.Next(sink, &f) == FrameReader::Result::kNeedMore);
  CHECK_FALSE(reader.HasBuffered());
}

// Simulates one recvmsg of `n` stream bytes into the speculative iovecs.
void ScatterInto(struct iovec* iov, int count, const std::vector<uint8_t>& src,
                 size_t n) {
  size_t done = 0;
  for (int i = 0; i < count && done < n; ++i) {
    size_t take = std::min(iov[i].iov_len, n - done);
    std::memcpy(iov[i].iov_base, src.data() + done, take);
    done += take;
  }
  REQUIRE(done == n);
}

TEST_CASE("speculative read lands the expected response with no copy") {
  FrameReader reader(FrameLimits{}, 20000, WirePhase::kEstablished);
  TestSink sink;
  std::vector<uint8_t>& dst = sink.fetches[5];
  dst.assign(4096, 0);
  std::vector<uint8_t> stream;
  AppendFrame(&stream, FrameKind::kFetchResponse, 5, Pattern(4096, 9));
  AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(30, 4));
  struct iovec iov[3];
  REQUIRE(reader.PrepareSpeculativeRead(iov, 5, dst.data(), 4096) == 3);
  CHECK(iov[1].iov_base == dst.data());
  ScatterInto(iov, 3, stream, stream.size());
  reader.Commit(stream.size());
  Frame f;
  REQUIRE(reader.Next(sink, &f) == FrameReader::Result::kFrame);
  CHECK(f.header.kind == FrameKind::kFetchResponse);
  CHECK(dst == Pattern(4096, 9));
  REQUIRE(reader.Next(sink, &f) == FrameReader::Result::kFrame);
  CHECK(std::vector<uint8_t>(f.payload.begin(), f.payload.end()) ==
        Pattern(30, 4));
}

TEST_CASE("speculative read that gets something else puts it back") {
  for (size_t split : {3, 16, 20, 100, 4112, 4200}) {
    CAPTURE(split);
    FrameReader reader(FrameLimits{}, 20000, WirePhase::kEstablished);
    TestSink sink;
    sink.fetches[5].assign(4096, 0);
    sink.fetches[6].assign(4096, 0);
    std::vector<uint8_t> stream;
    AppendFrame(&stream, FrameKind::kMessage, 0, Pattern(200, 1), 3);
    AppendFrame(&stream, FrameKind::kFetchResponse, 6, Pattern(4096, 2));
    AppendFrame(&stream, FrameKind::kFetchResponse, 5, Pattern(4096, 3));
    struct iovec iov[3];
    REQUIRE(reader.PrepareSpeculativeRead(iov, 5, sink.fetches[5].data(),
                                          4096) == 3);
    size_t first = std::min(split, stream.size());
    ScatterInto(iov, 3, stream, first);
    reader.Commit(first);
    std::vector<uint8_t> rest(stream.begin() + first, stream.end());
    auto frames = Feed(reader, sink, rest, 1000);
    REQUIRE(frames.size() == 3);
    CHECK(frames[0].payload == Pattern(200, 1));
    CHECK(frames[1].id == 6);
    CHECK(frames[2].id == 5);
    CHECK(sink.fetches[6] == Pattern(4096, 2));
    CHECK(sink.fetches[5] == Pattern(4096, 3));
  }
}

TEST_CASE(
    "frame reader survives random garbage without reading out of bounds") {
  std::mt19937 rng(1234);
  for (int round = 0; round < 200; ++round) {
    FrameReader reader(FrameLimits{1024, 8192}, 4096, WirePhase::kEstablished);
    TestSink sink;
    sink.fetches[1].resize(100);
    std::vector<uint8_t> stream(rng() % 3000);
    for (auto& b : stream) b = static_cast<uint8_t>(rng());
    size_t pos = 0;
    for (int steps = 0; steps < 100 && pos < stream.size(); ++steps) {
      Frame f;
      FrameReader::Result r = reader.Next(sink, &f);
      if (r == FrameReader::Result::kError) break;
      if (r == FrameReader::Result::kFrame) continue;
      struct iovec iov[3];
      int n = reader.PrepareRead(iov);
      if (n == 0) break;
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
