// Fuzzes directory::Decode (every input as one frame: a valid frame must
// re-encode to exactly its bytes) and the Node behind it: the input is also
// read as a script of frames from arbitrary peers, faults, fetch
// completions, deaths and resubmissions driven into one Node. Any input may
// be rejected with a Status; none may crash, hang or hit UB.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ssihv/directory/message.h"
#include "ssihv/directory/node.h"

namespace {

namespace dir = ssihv::directory;

const dir::PageSpace& Space() {
  // Uneven ranges, one empty: offsets and homes at the edges.
  static const dir::PageSpace space =
      *dir::PageSpace::FromPageCounts({3, 0, 5, 2});
  return space;
}

void CheckRoundTrip(const uint8_t* data, size_t size) {
  absl::StatusOr<dir::DecodedFrame> d =
      dir::Decode(absl::Span<const uint8_t>(data, size), Space());
  if (!d.ok()) return;
  std::vector<uint8_t> again = d->msg.type == dir::MsgType::kReport
                                   ? dir::EncodeReport(d->report)
                                   : dir::Encode(d->msg, d->page_bytes);
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) {
    std::abort();  // accepted bytes that do not mean what they say
  }
}

// Script records: op byte (low 3 bits: what; the rest: a node), then
// operands. Frames are length-prefixed (one byte); length 255 stands for a
// 16-byte header followed by a 4096-byte page of zeros.
void RunScript(const uint8_t* data, size_t size) {
  dir::Node node = *dir::Node::Create(Space(), 2);
  dir::Output out;
  std::vector<uint8_t> frame;
  size_t i = 0;
  auto next = [&]() -> uint8_t { return i < size ? data[i++] : 0; };
  while (i < size) {
    uint8_t op = next();
    dir::NodeId peer = (op >> 3) % 4;
    out.Clear();
    switch (op & 7) {
      case 0:
      case 1: {  // a frame from `peer`
        size_t len = next();
        size_t take = len == 255 ? dir::kHeaderSize : len;
        frame.assign(data + i, data + std::min(size, i + take));
        i += frame.size();
        if (len == 255) frame.resize(dir::kMaxFrameSize, 0);
        absl::StatusOr<dir::DecodedFrame> d = dir::Decode(frame, Space());
        if (!d.ok()) break;
        if (d->msg.type == dir::MsgType::kReport) {
          (void)node.OnReport(peer, d->report, &out);
        } else {
          (void)node.OnMessage(peer, d->msg, &out);
        }
        break;
      }
      case 2:
      case 3:  // a local fault
        (void)node.OnFault(next() % Space().num_pages(),
                           (op & 1) ? dir::Access::kWrite : dir::Access::kRead,
                           &out);
        break;
      case 4:  // a fetch completes
        (void)node.OnFetchDone(next() % Space().num_pages(), peer & 1, &out);
        break;
      case 5:  // the failure detector declares `peer` dead
        (void)node.OnNodeDead(peer, &out);
        break;
      default: {  // a deferred message comes back (any message, any sender)
        dir::Message m;
        m.type = static_cast<dir::MsgType>(next() % dir::kNumMsgTypes);
        m.page = next() % Space().num_pages();
        m.node = next() % 5;
        (void)node.Resubmit(peer, m, &out);
        break;
      }
    }
    // Whatever came out must be well-formed for the driver.
    for (const dir::Effect& e : out.effects) {
      if (!Space().Contains(e.page)) std::abort();
      if (e.type == dir::EffectType::kSend &&
          (e.node >= Space().num_nodes() || e.node == node.self() ||
           !dir::Validate(e.msg, Space()).ok())) {
        std::abort();
      }
      if (e.type == dir::EffectType::kSendReport &&
          e.index >= out.reports.size()) {
        std::abort();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckRoundTrip(data, size);
  // Long scripts buy little and cost a lot per execution; the decoder check
  // above sees every byte.
  RunScript(data, std::min<size_t>(size, 1024));
  return 0;
}
