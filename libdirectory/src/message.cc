#include "ssihv/directory/message.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ssihv::directory {
namespace {

// Per-type wire rules.
struct TypeRule {
  uint8_t allowed_flags;
  bool needs_node;  // else node must be kNoNode
  bool has_page;    // else page must be 0
};

constexpr TypeRule kRules[kNumMsgTypes] = {
    {},                                                   // 0: unused
    {0, false, true},                                     // kReadReq
    {kFlagUpgrade, false, true},                          // kWriteReq
    {0, true, true},                                      // kFwdRead
    {0, true, true},                                      // kTransfer
    {0, false, true},                                     // kInv
    {0, false, true},                                     // kInvAck
    {kFlagWrite | kFlagZero | kFlagNoDone, false, true},  // kData
    {kFlagNoDone, false, true},                           // kGrant
    {0, true, true},                                      // kPullGrant
    {kFlagFailed, false, true},                           // kDone
    {0, false, true},                                     // kLost
    {0, false, true},                                     // kProbe
    {0xff, false, true},        // kProbeAck: flags = local state
    {0, true, true},            // kStalled
    {0, true, false},           // kFlush
    {kFlagLast, true, false},   // kReport
    {kFlagWrite, false, true},  // kReadRun
    {kFlagWrite | kFlagZero | kFlagRefused | kFlagNoDone, false,
     true},            // kDataRun
    {0, false, true},  // kDoneRun
};

constexpr const char* kNames[kNumMsgTypes] = {
    "?",     "ReadReq", "WriteReq", "FwdRead",  "Transfer",
    "Inv",   "InvAck",  "Data",     "Grant",    "PullGrant",
    "Done",  "Lost",    "Probe",    "ProbeAck", "Stalled",
    "Flush", "Report",  "ReadRun",  "DataRun",  "DoneRun",
};

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

absl::Status Bad(MsgType type, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("directory message ", MsgTypeName(type), ": ", what));
}

// A run lies in one static range: one home serves all of it, and the
// receiver's per-page work stays within pages it can index.
absl::Status ValidateRun(const Message& m, const PageSpace& space) {
  if (m.version == 0 || m.version > kMaxRunPages) {
    return Bad(m.type, absl::StrCat("run of ", m.version, " pages (1..",
                                    kMaxRunPages, ")"));
  }
  if (m.type == MsgType::kDataRun && (m.flags & kFlagWrite)) {
    // A write run's answer grants pristine pages (zeros, no bytes) or
    // refuses them: exactly one of the two.
    const uint8_t how = m.flags & (kFlagZero | kFlagRefused);
    if (how != kFlagZero && how != kFlagRefused) {
      return Bad(m.type,
                 absl::StrCat("write run with flags 0x", absl::Hex(m.flags),
                              " (want Zero or Refused)"));
    }
  } else if (m.flags & kFlagRefused) {
    return Bad(m.type, "Refused without Write");
  }
  if ((m.flags & kFlagRefused) && (m.flags & kFlagNoDone)) {
    return Bad(m.type, "NoDone on refused pages");
  }
  const NodeId range = space.StaticHomeOf(m.page);
  const PageId end = space.FirstPageOf(range) + space.PageCountOf(range);
  if (m.version > end - m.page) {
    return Bad(m.type, absl::StrCat("run of ", m.version, " pages at page ",
                                    m.page, " leaves range ", range,
                                    " (ends at page ", end, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

bool local_state::Valid(uint8_t b) {
  if (b & ~(kStateMask | kPendingMask | kPulling)) return false;
  uint8_t pending = b & kPendingMask;
  if (pending == kPendingMask) return false;
  // A fetch in progress is a pending read of an Invalid page.
  if ((b & kPulling) && (pending != kPendingRead || (b & kStateMask) != 0)) {
    return false;
  }
  return true;
}

const char* MsgTypeName(MsgType type) {
  auto i = static_cast<size_t>(type);
  return i > 0 && i < kNumMsgTypes ? kNames[i] : "?";
}

void EncodeHeader(const Message& msg, uint8_t* out) {
  out[0] = static_cast<uint8_t>(msg.type);
  out[1] = msg.flags;
  out[2] = msg.node;
  out[3] = 0;
  Put32(out + 4, msg.version);
  Put64(out + 8, msg.page);
}

std::vector<uint8_t> Encode(const Message& msg,
                            absl::Span<const uint8_t> page_bytes) {
  std::vector<uint8_t> out(kHeaderSize + page_bytes.size());
  EncodeHeader(msg, out.data());
  if (!page_bytes.empty()) {
    std::memcpy(out.data() + kHeaderSize, page_bytes.data(), page_bytes.size());
  }
  return out;
}

std::vector<uint8_t> EncodeReport(const ReportChunk& chunk) {
  Message header;
  header.type = MsgType::kReport;
  header.flags = chunk.last ? kFlagLast : 0;
  header.node = static_cast<uint8_t>(chunk.range);
  header.version = static_cast<uint32_t>(chunk.entries.size());
  std::vector<uint8_t> out(kHeaderSize +
                           chunk.entries.size() * kReportEntrySize);
  EncodeHeader(header, out.data());
  uint8_t* p = out.data() + kHeaderSize;
  for (const ReportEntry& e : chunk.entries) {
    Put32(p, e.offset);
    p[4] = e.state;
    p += kReportEntrySize;
  }
  return out;
}

absl::Status Validate(const Message& m, const PageSpace& space) {
  auto t = static_cast<uint8_t>(m.type);
  if (t == 0 || t >= kNumMsgTypes) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory message: unknown type ", t));
  }
  const TypeRule& rule = kRules[t];
  if (m.flags & ~rule.allowed_flags) {
    return Bad(m.type, absl::StrCat("unknown flags 0x", absl::Hex(m.flags)));
  }
  if (m.type == MsgType::kProbeAck && !local_state::Valid(m.flags)) {
    return Bad(m.type, absl::StrCat("bad local state 0x", absl::Hex(m.flags)));
  }
  if (rule.needs_node ? m.node >= space.num_nodes() : m.node != kNoNode) {
    return Bad(m.type, absl::StrCat("bad node ", m.node));
  }
  if (rule.has_page ? !space.Contains(m.page) : m.page != 0) {
    return Bad(m.type, absl::StrCat("page ", m.page, " out of range (",
                                    space.num_pages(), " pages)"));
  }
  if (m.is_run()) return ValidateRun(m, space);
  return absl::OkStatus();
}

absl::StatusOr<DecodedFrame> Decode(absl::Span<const uint8_t> frame,
                                    const PageSpace& space) {
  if (frame.size() < kHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory message: frame of ", frame.size(),
                     " bytes is shorter "
                     "than the ",
                     kHeaderSize, "-byte header"));
  }
  const uint8_t* p = frame.data();
  if (p[0] == 0 || p[0] >= kNumMsgTypes) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory message: unknown type ", p[0]));
  }
  DecodedFrame out;
  Message& m = out.msg;
  m.type = static_cast<MsgType>(p[0]);
  m.flags = p[1];
  m.node = p[2];
  m.version = Get32(p + 4);
  m.page = Get64(p + 8);
  if (p[3] != 0) return Bad(m.type, "reserved byte is not 0");
  if (absl::Status s = Validate(m, space); !s.ok()) return s;
  size_t payload = frame.size() - kHeaderSize;
  if (m.type == MsgType::kReport) {
    if (m.version > kMaxReportEntries ||
        payload != size_t{m.version} * kReportEntrySize) {
      return Bad(m.type, absl::StrCat("bad length ", frame.size(), " for ",
                                      m.version, " entries"));
    }
    ReportChunk& r = out.report;
    r.range = m.node;
    r.last = (m.flags & kFlagLast) != 0;
    r.entries.resize(m.version);
    const uint8_t* q = p + kHeaderSize;
    PageId count = space.PageCountOf(r.range);
    for (ReportEntry& e : r.entries) {
      e.offset = Get32(q);
      e.state = q[4];
      q += kReportEntrySize;
      if (e.offset >= count) {
        return Bad(m.type, absl::StrCat("entry offset ", e.offset,
                                        " beyond range ", r.range));
      }
      if (!local_state::Valid(e.state)) {
        return Bad(m.type, absl::StrCat("entry state 0x", absl::Hex(e.state)));
      }
    }
    return out;
  }
  // Validate() bounded the run length, so `want` is at most 256 KiB.
  const size_t want = m.payload_bytes();
  if (payload != want) {
    return Bad(m.type, absl::StrCat("bad length ", frame.size(), ", want ",
                                    kHeaderSize + want));
  }
  if (want != 0) out.page_bytes = frame.subspan(kHeaderSize, want);
  return out;
}

}  // namespace ssihv::directory
