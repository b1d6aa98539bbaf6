// Protocol messages and their compact binary encoding.
//
// Every message is a 16-byte little-endian header, optionally followed by a
// payload: the 4096 page bytes (kData without kFlagZero) or report entries
// (kReport). The sender is not encoded: the transport knows (and has
// authenticated) the peer a frame came from. See docs/PROTOCOL.md for the
// message table and the flows.
//
//   offset size field
//   0      1    type      MsgType
//   1      1    flags     per type, unknown bits rejected
//   2      1    node      third party (requester, source, dead node, range)
//                         or 0xFF when the type has none
//   3      1    reserved  must be 0
//   4      4    version   page version (kReport: entry count; kReadRun,
//                         kDataRun, kDoneRun: run length in pages)
//   8      8    page      PageId (kFlush, kReport: must be 0; runs: the
//                         first page)
//   16     ...  payload
#ifndef SSIHV_DIRECTORY_MESSAGE_H_
#define SSIHV_DIRECTORY_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ssihv/directory/page_space.h"
#include "ssihv/directory/types.h"

namespace ssihv::directory {

enum class MsgType : uint8_t {
  kReadReq = 1,    // requester -> home: read miss
  kWriteReq = 2,   // requester -> home: write miss or upgrade (kFlagUpgrade)
  kFwdRead = 3,    // home -> holder: send a read-only copy to `node`
                   // (a Modified holder downgrades to Shared first)
  kTransfer = 4,   // home -> holder: send the page to `node` as its new
                   // owner and drop your copy (ownership transfer)
  kInv = 5,        // home -> sharer: drop your copy, then kInvAck
  kInvAck = 6,     // sharer -> home
  kData = 7,       // holder -> requester: the page (bytes, or kFlagZero) and
                   // the grant: Shared, or Modified with kFlagWrite
  kGrant = 8,      // home -> requester: upgrade granted, no bytes
  kPullGrant = 9,  // home -> requester: read granted; fetch the bytes from
                   // `node`'s memory (one-sided), then kDone
  kDone = 10,      // requester -> home: transaction complete (kFlagFailed:
                   // the fetch of a kPullGrant failed); none after a
                   // kData/kGrant with kFlagNoDone
  kLost = 11,      // home -> requester: no valid copy exists any more
  kProbe = 12,     // home -> holder (after a death): report your state
  kProbeAck = 13,  // holder -> home: flags = LocalStateByte
  kStalled = 14,   // requester -> home: still waiting when I cut off the
                   // dead `node` (so nothing from it will arrive)
  kFlush = 15,     // node -> node: I have processed the death of `node`
  kReport = 16,    // node -> new home (after a death): my local states for
                   // the pages of static range `node`
  // Run grants (docs/PROTOCOL.md, "Run grants"): `page` is the first page,
  // `version` the number of consecutive pages, all of one static range.
  kReadRun = 17,  // requester -> home: read misses of every page of the run
                  // (kFlagWrite: write misses, grant the pristine ones)
  kDataRun = 18,  // home -> requester: Shared grants of every page of the
                  // run, their bytes in page order (or kFlagZero: all zero;
                  // kFlagWrite|kFlagZero: Modified grants of pristine pages;
                  // kFlagWrite|kFlagRefused: not granted, requests over)
  kDoneRun = 19,  // requester -> home: the kDataRun's transactions are over
                  // (none after a kDataRun with kFlagNoDone)
};
inline constexpr int kNumMsgTypes = 20;  // index 0 unused

/// Flag bits (meaning depends on the type).
inline constexpr uint8_t kFlagWrite = 1;     // kData, kDataRun: Modified
                                             // grant; kReadRun: write misses
inline constexpr uint8_t kFlagZero = 2;      // kData, kDataRun: all-zero
                                             // page(s), no bytes
inline constexpr uint8_t kFlagRefused = 4;   // kDataRun (with kFlagWrite):
                                             // the pages are not granted
inline constexpr uint8_t kFlagNoDone = 8;    // kData, kGrant, kDataRun:
                                             // sent by the home, which ended
                                             // the transaction(s) with it:
                                             // no kDone / kDoneRun
inline constexpr uint8_t kFlagUpgrade = 1;   // kWriteReq: sender holds Shared
inline constexpr uint8_t kFlagFailed = 1;    // kDone: the fetch failed
inline constexpr uint8_t kFlagBySource = 2;  // kDone, local only: the home's
                                             // own agent sent the kData
inline constexpr uint8_t kFlagLast = 1;      // kReport: last chunk of a range

/// A node's local state of one page as one byte: in kProbeAck flags and
/// report entries. Bits 0-1 PageState, bits 2-3 pending request (0 none,
/// 1 read, 2 write), bit 4 a pulled copy is being fetched (pending read).
namespace local_state {
inline constexpr uint8_t kStateMask = 0x03;
inline constexpr uint8_t kPendingShift = 2;
inline constexpr uint8_t kPendingMask = 0x0c;
inline constexpr uint8_t kPendingRead = 1 << 2;
inline constexpr uint8_t kPendingWrite = 2 << 2;
inline constexpr uint8_t kPulling = 0x10;
/// True if `b` is a well-formed local state byte.
bool Valid(uint8_t b);
}  // namespace local_state

/// A decoded protocol message without its payload (page bytes travel next
/// to it). Trivially copyable; 16 bytes.
struct Message {
  MsgType type = MsgType::kReadReq;
  uint8_t flags = 0;
  uint8_t node = kNoNode;
  uint32_t version = 0;
  PageId page = 0;

  /// kData or kDataRun that carries page bytes (4096 per page): not all
  /// zero, not refused (Decode() allows kFlagRefused on kDataRun only).
  bool carries_page() const {
    return (type == MsgType::kData || type == MsgType::kDataRun) &&
           (flags & (kFlagZero | kFlagRefused)) == 0;
  }
  /// kReadRun, kDataRun, kDoneRun.
  bool is_run() const {
    return type == MsgType::kReadRun || type == MsgType::kDataRun ||
           type == MsgType::kDoneRun;
  }
  /// The pages the message is about: the run length, else 1.
  uint32_t pages() const { return is_run() ? version : 1; }
  /// The page bytes that follow the header on the wire.
  size_t payload_bytes() const {
    return carries_page() ? size_t{pages()} * kPageSize : 0;
  }
  friend bool operator==(const Message&, const Message&) = default;
};

/// A message with the fields a transition sets (`node` is the requester,
/// new owner or dead node the type names; see the message table).
inline Message MakeMessage(MsgType type, PageId page, uint8_t flags = 0,
                           NodeId node = kNoNode, uint32_t version = 0) {
  Message m;
  m.type = type;
  m.page = page;
  m.flags = flags;
  m.node = static_cast<uint8_t>(node);
  m.version = version;
  return m;
}

/// One page of a recovery report: offset within the range, local state.
struct ReportEntry {
  uint32_t offset = 0;
  uint8_t state = 0;
  friend bool operator==(const ReportEntry&, const ReportEntry&) = default;
};

/// A chunk of a node's report for one static range (kReport).
struct ReportChunk {
  NodeId range = 0;
  bool last = false;
  std::vector<ReportEntry> entries;
};

inline constexpr size_t kHeaderSize = 16;
/// The longest run of a kReadRun / kDataRun / kDoneRun (256 KiB of bytes).
inline constexpr uint32_t kMaxRunPages = 64;
inline constexpr size_t kReportEntrySize = 5;
inline constexpr size_t kMaxReportEntries = 800;  // frames stay < 4 KiB + 16
/// The largest frame of one page (kData).
inline constexpr size_t kMaxPageFrameSize = kHeaderSize + kPageSize;
/// The largest frame this protocol produces (a kDataRun of kMaxRunPages).
inline constexpr size_t kMaxFrameSize = kHeaderSize + kMaxRunPages * kPageSize;

const char* MsgTypeName(MsgType type);

/// True for types that must be handled with exclusive access to the Node
/// (kFlush, kReport: they touch many pages; see node.h).
inline bool IsExclusive(MsgType type) {
  return type == MsgType::kFlush || type == MsgType::kReport;
}

/// A requester's miss to its home (kReadReq, kWriteReq, kReadRun): the only
/// messages that may travel out of order with the rest of their pair's
/// traffic, on a channel of their own, until the sender learns of a death
/// (docs/PROTOCOL.md, "Channels"; `dsm-sim --lanes` checks it).
inline bool IsRequest(MsgType type) {
  return type == MsgType::kReadReq || type == MsgType::kWriteReq ||
         type == MsgType::kReadRun;
}

/// A grant that answers the receiver's own request (kData, kGrant,
/// kDataRun, kPullGrant). From the page's home, before it learns of a
/// death, it may travel on a lane provided the receiver takes none of the
/// sender's later pair-channel messages before it (docs/PROTOCOL.md,
/// "Answers on lanes"; `dsm-sim --answer-lanes` checks it).
inline bool IsAnswer(MsgType type) {
  return type == MsgType::kData || type == MsgType::kGrant ||
         type == MsgType::kDataRun || type == MsgType::kPullGrant;
}

/// Writes the 16-byte header of `msg` to `out`. A message with
/// carries_page() must be followed on the wire by exactly payload_bytes().
void EncodeHeader(const Message& msg, uint8_t* out);
/// Header plus page bytes (`page_bytes` must be msg.payload_bytes() long).
std::vector<uint8_t> Encode(const Message& msg,
                            absl::Span<const uint8_t> page_bytes = {});
/// A kReport frame for `chunk` (at most kMaxReportEntries entries).
std::vector<uint8_t> EncodeReport(const ReportChunk& chunk);

/// Checks the header fields of `msg` as Decode() does (type, flags, node,
/// page; not the payload). Node::OnMessage applies it to every message.
absl::Status Validate(const Message& msg, const PageSpace& space);

/// A decoded frame: the message, the page bytes (kData or kDataRun without
/// kFlagZero; they point into the input buffer) or the report chunk
/// (kReport).
struct DecodedFrame {
  Message msg;
  absl::Span<const uint8_t> page_bytes;
  ReportChunk report;
};

/// Decodes and validates one frame against `space`: known type, exact length
/// for the type, known flag bits, node ids < num_nodes where a node is
/// required and 0xFF where none is, reserved byte 0, page < num_pages,
/// runs of 1..kMaxRunPages pages within one static range, report offsets
/// within the range and well-formed local states.
/// InvalidArgument names the offending field; never reads out of bounds.
absl::StatusOr<DecodedFrame> Decode(absl::Span<const uint8_t> frame,
                                    const PageSpace& space);

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_MESSAGE_H_
