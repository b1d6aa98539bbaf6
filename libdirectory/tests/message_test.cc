// The wire format: round trips of every type, and the decoder's rejection
// of every kind of malformed frame.
#include "ssihv/directory/message.h"

#include <catch2/catch.hpp>

#include "agent_fixture.h"

namespace ssihv::directory {
namespace {

using testing::Space;

PageSpace Three() { return Space({4, 0, 8}); }  // 3 nodes, 12 pages

absl::Status DecodeStatus(const std::vector<uint8_t>& frame) {
  return Decode(frame, Three()).status();
}

TEST_CASE("every message type round-trips through the 16-byte header") {
  PageSpace space = Three();
  std::vector<Message> all = {
      MakeMessage(MsgType::kReadReq, 11),
      MakeMessage(MsgType::kWriteReq, 3, kFlagUpgrade),
      MakeMessage(MsgType::kFwdRead, 5, 0, 2, 0xfffffffe),
      MakeMessage(MsgType::kTransfer, 0, 0, 0, 7),
      MakeMessage(MsgType::kInv, 1),
      MakeMessage(MsgType::kInvAck, 1),
      MakeMessage(MsgType::kData, 4, kFlagWrite | kFlagZero, kNoNode, 9),
      MakeMessage(MsgType::kGrant, 4, 0, kNoNode, 10),
      MakeMessage(MsgType::kPullGrant, 4, 0, 1, 10),
      MakeMessage(MsgType::kDone, 4, kFlagFailed),
      MakeMessage(MsgType::kLost, 4),
      MakeMessage(MsgType::kProbe, 4),
      MakeMessage(MsgType::kProbeAck, 4, local_state::kPendingWrite | 1),
      MakeMessage(MsgType::kStalled, 4, 0, 2),
      MakeMessage(MsgType::kFlush, 0, 0, 1),
  };
  for (const Message& m : all) {
    INFO(MsgTypeName(m.type));
    std::vector<uint8_t> frame = Encode(m);
    REQUIRE(frame.size() == kHeaderSize);
    absl::StatusOr<DecodedFrame> d = Decode(frame, space);
    REQUIRE(d.ok());
    CHECK(d->msg == m);
    CHECK(d->page_bytes.empty());
  }
}

TEST_CASE("the header layout is little-endian and fixed") {
  std::vector<uint8_t> f = Encode(
      MakeMessage(MsgType::kFwdRead, 0x0102030405060708ull, 0, 2, 0xa1b2c3d4));
  CHECK(f == std::vector<uint8_t>{3, 0, 2, 0, 0xd4, 0xc3, 0xb2, 0xa1, 8, 7, 6,
                                  5, 4, 3, 2, 1});
}

TEST_CASE("page data travels after the header") {
  std::vector<uint8_t> page(kPageSize);
  for (size_t i = 0; i < page.size(); ++i)
    page[i] = static_cast<uint8_t>(i * 7);
  Message m = MakeMessage(MsgType::kData, 9, kFlagWrite, kNoNode, 3);
  REQUIRE(m.carries_page());
  std::vector<uint8_t> frame = Encode(m, page);
  REQUIRE(frame.size() == kMaxPageFrameSize);
  absl::StatusOr<DecodedFrame> d = Decode(frame, Three());
  REQUIRE(d.ok());
  CHECK(d->msg == m);
  REQUIRE(d->page_bytes.size() == kPageSize);
  CHECK(std::equal(page.begin(), page.end(), d->page_bytes.begin()));
  CHECK(d->page_bytes.data() == frame.data() + kHeaderSize);  // no copy
}

TEST_CASE("runs carry their length and, in kDataRun, every page's bytes") {
  PageSpace space = Space({4, 0, 80});  // node 2's range: pages 4..83
  std::vector<uint8_t> pages(3 * kPageSize);
  for (size_t i = 0; i < pages.size(); ++i) {
    pages[i] = static_cast<uint8_t>(i / kPageSize + 1);
  }
  Message data = MakeMessage(MsgType::kDataRun, 5, 0, kNoNode, 3);
  REQUIRE(data.carries_page());
  REQUIRE(data.payload_bytes() == 3 * kPageSize);
  std::vector<uint8_t> frame = Encode(data, pages);
  absl::StatusOr<DecodedFrame> d = Decode(frame, space);
  REQUIRE(d.ok());
  CHECK(d->msg == data);
  REQUIRE(d->page_bytes.size() == 3 * kPageSize);
  CHECK(d->page_bytes[2 * kPageSize] == 3);
  for (MsgType t : {MsgType::kReadRun, MsgType::kDoneRun}) {
    Message m = MakeMessage(t, 4, 0, kNoNode, kMaxRunPages);
    absl::StatusOr<DecodedFrame> r = Decode(Encode(m), space);
    REQUIRE(r.ok());
    CHECK(r->msg.pages() == kMaxRunPages);
  }
  Message zero = MakeMessage(MsgType::kDataRun, 5, kFlagZero, kNoNode, 3);
  CHECK(Decode(Encode(zero), space).ok());
  // The largest frame: a full run of bytes.
  Message full = MakeMessage(MsgType::kDataRun, 4, 0, kNoNode, kMaxRunPages);
  std::vector<uint8_t> big(kMaxRunPages * kPageSize);
  CHECK(Encode(full, big).size() == kMaxFrameSize);
  CHECK(Decode(Encode(full, big), space).ok());
}

TEST_CASE("the decoder bounds runs: length, range, bytes") {
  PageSpace space = Space({4, 0, 80});
  auto status = [&](Message m, size_t bytes = 0) {
    return Decode(Encode(m, std::vector<uint8_t>(bytes)), space).status();
  };
  // Empty and overlong runs.
  CHECK(status(MakeMessage(MsgType::kReadRun, 4)).message().find("run of 0") !=
        absl::string_view::npos);
  CHECK(!status(MakeMessage(MsgType::kReadRun, 4, 0, kNoNode, kMaxRunPages + 1))
             .ok());
  CHECK(
      !status(MakeMessage(MsgType::kDoneRun, 4, 0, kNoNode, 0xffffffff)).ok());
  // Across the end of a static range, and past the last page.
  CHECK(status(MakeMessage(MsgType::kReadRun, 2, 0, kNoNode, 3))
            .message()
            .find("leaves range 0") != absl::string_view::npos);
  CHECK(!status(MakeMessage(MsgType::kReadRun, 80, 0, kNoNode, 5)).ok());
  CHECK(status(MakeMessage(MsgType::kReadRun, 80, 0, kNoNode, 4)).ok());
  // kDataRun with one page of bytes too few or too many, or bytes with
  // kFlagZero.
  Message data = MakeMessage(MsgType::kDataRun, 10, 0, kNoNode, 2);
  CHECK(status(data, 2 * kPageSize).ok());
  CHECK(!status(data, kPageSize).ok());
  CHECK(!status(data, 3 * kPageSize).ok());
  data.flags = kFlagZero;
  CHECK(!status(data, 2 * kPageSize).ok());
  // No node, no other flag.
  CHECK(!status(MakeMessage(MsgType::kReadRun, 10, 0, 1, 2)).ok());
  CHECK(
      !status(MakeMessage(MsgType::kDoneRun, 10, kFlagZero, kNoNode, 2)).ok());
}

TEST_CASE("reports round-trip") {
  ReportChunk r;
  r.range = 2;
  r.last = true;
  r.entries = {{0, 1},
               {7, local_state::kPendingRead | local_state::kPulling},
               {3, 2 | local_state::kPendingWrite}};
  std::vector<uint8_t> frame = EncodeReport(r);
  CHECK(frame.size() == kHeaderSize + 3 * kReportEntrySize);
  absl::StatusOr<DecodedFrame> d = Decode(frame, Three());
  REQUIRE(d.ok());
  CHECK(d->msg.type == MsgType::kReport);
  CHECK(d->report.range == 2);
  CHECK(d->report.last);
  CHECK(d->report.entries == r.entries);
}

TEST_CASE("the decoder rejects malformed frames with a reason") {
  std::vector<uint8_t> good = Encode(MakeMessage(MsgType::kReadReq, 3));
  REQUIRE(DecodeStatus(good).ok());
  auto with = [&](size_t at, uint8_t v) {
    std::vector<uint8_t> f = good;
    f[at] = v;
    return f;
  };
  CHECK(DecodeStatus({}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(DecodeStatus(std::vector<uint8_t>(good.begin(), good.end() - 1))
            .message()
            .find("shorter") != absl::string_view::npos);
  CHECK(DecodeStatus(with(0, 0)).message().find("unknown type") !=
        absl::string_view::npos);
  CHECK(DecodeStatus(with(0, kNumMsgTypes)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(DecodeStatus(with(1, 0x80)).message().find("flags") !=
        absl::string_view::npos);
  CHECK(DecodeStatus(with(2, 1)).message().find("node") !=
        absl::string_view::npos);  // ReadReq names no node
  // kFlagNoDone travels on kData and kGrant; kFlagBySource never travels.
  CHECK(
      DecodeStatus(Encode(MakeMessage(MsgType::kGrant, 3, kFlagNoDone))).ok());
  CHECK(DecodeStatus(
            Encode(MakeMessage(MsgType::kData, 3, kFlagNoDone | kFlagZero)))
            .ok());
  CHECK(DecodeStatus(Encode(MakeMessage(MsgType::kDone, 3, kFlagBySource)))
            .message()
            .find("flags") != absl::string_view::npos);
  CHECK(DecodeStatus(with(3, 1)).message().find("reserved") !=
        absl::string_view::npos);
  CHECK(DecodeStatus(with(8, 12)).message().find("out of range") !=
        absl::string_view::npos);  // page 12 of 12
  CHECK(DecodeStatus(with(15, 1)).code() == absl::StatusCode::kInvalidArgument);
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  CHECK(DecodeStatus(longer).message().find("length") !=
        absl::string_view::npos);
  // A node field beyond the cluster.
  CHECK(DecodeStatus(Encode(MakeMessage(MsgType::kFwdRead, 0, 0, 3))).code() ==
        absl::StatusCode::kInvalidArgument);
  // Data without its bytes, and a zero page with bytes.
  CHECK_FALSE(DecodeStatus(Encode(MakeMessage(MsgType::kData, 0))).ok());
  std::vector<uint8_t> zero_with_bytes =
      Encode(MakeMessage(MsgType::kData, 0, kFlagZero));
  zero_with_bytes.resize(kMaxPageFrameSize);
  CHECK_FALSE(DecodeStatus(zero_with_bytes).ok());
  // ProbeAck with an impossible local state.
  CHECK_FALSE(
      DecodeStatus(Encode(MakeMessage(MsgType::kProbeAck, 0, 0x0c))).ok());
  CHECK_FALSE(
      DecodeStatus(Encode(MakeMessage(MsgType::kProbeAck, 0, 0x11))).ok());
  // Flush carries no page.
  CHECK_FALSE(DecodeStatus(Encode(MakeMessage(MsgType::kFlush, 1, 0, 1))).ok());
}

TEST_CASE("the decoder rejects malformed reports") {
  ReportChunk r;
  r.range = 0;
  r.entries = {{3, 1}};
  std::vector<uint8_t> good = EncodeReport(r);
  REQUIRE(DecodeStatus(good).ok());
  std::vector<uint8_t> f = good;
  f[16] = 4;  // offset 4 of a 4-page range
  CHECK(DecodeStatus(f).message().find("offset") != absl::string_view::npos);
  f = good;
  f[20] = 0x3f;
  CHECK(DecodeStatus(f).message().find("state") != absl::string_view::npos);
  f = good;
  f[4] = 2;  // claims two entries
  CHECK(DecodeStatus(f).message().find("length") != absl::string_view::npos);
  f = good;
  f[4] = 0xff;
  f[5] = 0xff;  // far more than kMaxReportEntries
  CHECK_FALSE(DecodeStatus(f).ok());
  r.range = 1;  // the empty range: any offset is out of it
  CHECK_FALSE(DecodeStatus(EncodeReport(r)).ok());
  r.entries.clear();
  CHECK(DecodeStatus(EncodeReport(r)).ok());
}

TEST_CASE("local state bytes") {
  CHECK(local_state::Valid(0));
  CHECK(local_state::Valid(3));
  CHECK(local_state::Valid(local_state::kPendingWrite | 1));
  CHECK(local_state::Valid(local_state::kPendingRead | local_state::kPulling));
  CHECK_FALSE(local_state::Valid(local_state::kPulling));
  CHECK_FALSE(
      local_state::Valid(local_state::kPendingWrite | local_state::kPulling));
  CHECK_FALSE(local_state::Valid(1 | local_state::kPendingRead |
                                 local_state::kPulling));
  CHECK_FALSE(local_state::Valid(0x20));
}

}  // namespace
}  // namespace ssihv::directory
