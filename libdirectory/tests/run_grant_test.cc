// Run grants (docs/PROTOCOL.md, "Run grants"): one kReadRun and one
// kDataRun (kFlagNoDone: over as it leaves) for a run of pages the home can
// grant from its own copy; every
// other page of the run served as the kReadReq it stands for; all or
// nothing on both sides; recovery as for single pages.
#include <catch2/catch.hpp>
#include <vector>

#include "ssihv/directory/local_cluster.h"
#include "ssihv/directory/node.h"

namespace ssihv::directory {
namespace {

// Node 0 homes pages 0-7, nodes 1 and 2 one page each.
LocalCluster ThreeNodes() { return *LocalCluster::Create({8, 1, 1}); }

Node HomeOfThree() {
  return *Node::Create(*PageSpace::FromPageCounts({8, 1, 1}), 0);
}

// The kSend effects of `out` of type `type`, in order.
std::vector<Message> Sent(const Output& out, MsgType type) {
  std::vector<Message> m;
  for (const Effect& e : out.effects) {
    if (e.type == EffectType::kSend && e.msg.type == type) m.push_back(e.msg);
  }
  return m;
}

size_t Count(const std::vector<Effect>& log, EffectType type) {
  size_t n = 0;
  for (const Effect& e : log) n += e.type == type ? 1 : 0;
  return n;
}

TEST_CASE("a run the home holds costs two messages for all its pages") {
  LocalCluster c = ThreeNodes();
  REQUIRE(*c.RequestRun(1, 0, 8) == 8);
  REQUIRE(c.Run().ok());
  CHECK(c.messages() == 2);  // kReadRun, kDataRun (kFlagNoDone)
  CHECK(Count(c.log(1), EffectType::kMapReceived) == 8);
  for (PageId p = 0; p < 8; ++p) {
    INFO("page " << p);
    CHECK(c.node(1).node_agent().StateOf(p) == PageState::kShared);
    CHECK(c.node(0).node_agent().StateOf(p) == PageState::kShared);
    DirView v = c.node(0).home_agent().Inspect(p);
    CHECK(v.state == DirState::kShared);
    CHECK(v.copies == (Bit(0) | Bit(1)));
    CHECK(v.phase == TxnPhase::kIdle);
  }
  StatsSnapshot home = c.node(0).Stats();
  CHECK(home.run_grants == 1);
  CHECK(home.run_pages_granted == 8);
  CHECK(home.read_txns == 8);
  CHECK(c.node(1).Stats().run_pages_requested == 8);
  // Never written: granted as zeros, without bytes.
  CHECK(home.page_bytes_sent == 0);
}

TEST_CASE("a page Modified elsewhere is served on its own, the run cut") {
  LocalCluster c = ThreeNodes();
  REQUIRE(*c.Access(2, 3, Access::kWrite));
  const uint64_t before = c.messages();
  REQUIRE(*c.RequestRun(1, 0, 8) == 8);
  REQUIRE(c.Run().ok());
  // kReadRun, 2 x kDataRun, and page 3's kFwdRead, kData, kDone.
  CHECK(c.messages() - before == 6);
  StatsSnapshot home = c.node(0).Stats();
  CHECK(home.run_grants == 2);
  CHECK(home.run_pages_granted == 7);
  for (PageId p = 0; p < 8; ++p) {
    INFO("page " << p);
    CHECK(c.node(1).node_agent().StateOf(p) == PageState::kShared);
  }
  DirView v = c.node(0).home_agent().Inspect(3);
  CHECK(v.copies == (Bit(1) | Bit(2)));
  CHECK(c.node(2).node_agent().StateOf(3) == PageState::kShared);
}

TEST_CASE("the home grants around a page in a transaction") {
  Node home = HomeOfThree();
  Output out;
  // Page 5 goes to node 2 (the home's copy served it: over at once), then
  // the home reads it back: a transaction awaiting node 2's kData.
  REQUIRE(home.OnMessage(2, MakeMessage(MsgType::kWriteReq, 5), &out).ok());
  REQUIRE(home.OnFault(5, Access::kRead, &out).ok());
  REQUIRE(home.home_agent().Inspect(5).phase == TxnPhase::kAwaitDone);
  out.Clear();
  REQUIRE(
      home.OnMessage(1, MakeMessage(MsgType::kReadRun, 0, 0, kNoNode, 8), &out)
          .ok());
  std::vector<Message> runs = Sent(out, MsgType::kDataRun);
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].page == 0);
  CHECK(runs[0].pages() == 5);
  CHECK(runs[1].page == 6);
  CHECK(runs[1].pages() == 2);
  CHECK(Sent(out, MsgType::kData).empty());  // page 5 waits its turn
  CHECK(home.home_agent().Inspect(5).read_waiters == Bit(1));
  CHECK(home.Stats().requests_queued == 1);
}

TEST_CASE("a Modified page of the home is write-protected before it leaves") {
  Node home = HomeOfThree();
  Output out;
  REQUIRE(home.OnFault(2, Access::kWrite, &out).ok());  // home writes page 2
  out.Clear();
  REQUIRE(
      home.OnMessage(1, MakeMessage(MsgType::kReadRun, 1, 0, kNoNode, 3), &out)
          .ok());
  // The write-protect precedes the send that copies the page.
  size_t protect = out.effects.size(), send = out.effects.size();
  for (size_t i = 0; i < out.effects.size(); ++i) {
    const Effect& e = out.effects[i];
    if (e.type == EffectType::kWriteProtect && e.page == 2) protect = i;
    if (e.type == EffectType::kSend && e.msg.type == MsgType::kDataRun)
      send = i;
  }
  REQUIRE(protect < send);
  std::vector<Message> runs = Sent(out, MsgType::kDataRun);
  REQUIRE(runs.size() == 1);
  CHECK((runs[0].flags & kFlagZero) == 0);  // page 2 was written: bytes
  CHECK(home.node_agent().StateOf(2) == PageState::kShared);
  CHECK(home.Stats().page_bytes_sent == 3 * kPageSize);
}

TEST_CASE("a run is over when its kDataRun leaves; late dones are refused") {
  Node home = HomeOfThree();
  Output out;
  REQUIRE(
      home.OnMessage(1, MakeMessage(MsgType::kReadRun, 0, 0, kNoNode, 4), &out)
          .ok());
  std::vector<Message> runs = Sent(out, MsgType::kDataRun);
  REQUIRE(runs.size() == 1);
  CHECK((runs[0].flags & kFlagNoDone) != 0);
  for (PageId p = 0; p < 4; ++p) {
    CHECK(home.home_agent().Inspect(p).phase == TxnPhase::kIdle);
    CHECK(home.home_agent().Inspect(p).copies == (Bit(0) | Bit(1)));
  }
  CHECK(!home.OnMessage(1, MakeMessage(MsgType::kDone, 0), &out).ok());
  CHECK(
      !home.OnMessage(1, MakeMessage(MsgType::kDoneRun, 0, 0, kNoNode, 4), &out)
           .ok());
  CHECK(
      !home.OnMessage(2, MakeMessage(MsgType::kDoneRun, 0, 0, kNoNode, 4), &out)
           .ok());
  CHECK(home.home_agent().Inspect(0).copies == (Bit(0) | Bit(1)));
}

TEST_CASE("the requester asks only for Invalid idle pages of a remote home") {
  LocalCluster c = ThreeNodes();
  REQUIRE(*c.Access(1, 2, Access::kRead));
  CHECK(*c.RequestRun(1, 0, 8) == 2);   // stops at page 2, held Shared
  CHECK(*c.RequestRun(1, 0, 8) == 0);   // 0 and 1 are pending now
  CHECK(*c.RequestRun(1, 8, 8) == 0);   // homed at node 1 itself
  CHECK(*c.RequestRun(2, 6, 64) == 2);  // clipped to node 0's range
  CHECK(!c.RequestRun(1, 10, 1).ok());  // beyond the last page
  REQUIRE(c.Run().ok());
  CHECK(c.node(1).node_agent().StateOf(1) == PageState::kShared);
  CHECK(c.node(2).node_agent().StateOf(7) == PageState::kShared);
}

TEST_CASE(
    "run data without pending reads is a violation that changes nothing") {
  Node requester = *Node::Create(*PageSpace::FromPageCounts({8, 1, 1}), 1);
  Output out;
  uint32_t requested = 0;
  REQUIRE(requester.RequestRun(0, 2, &out, &requested).ok());
  REQUIRE(requested == 2);
  out.Clear();
  CHECK(!requester
             .OnMessage(
                 0, MakeMessage(MsgType::kDataRun, 0, kFlagZero, kNoNode, 3),
                 &out)
             .ok());
  CHECK(requester.node_agent().StateOf(0) == PageState::kInvalid);
  CHECK(requester.node_agent().Pending(0));
  CHECK(out.effects.empty());
  // Only the home grants runs.
  CHECK(!requester
             .OnMessage(
                 2, MakeMessage(MsgType::kDataRun, 0, kFlagZero, kNoNode, 2),
                 &out)
             .ok());
}

TEST_CASE("a requester that dies during a run grant leaves the home's copies") {
  Node home = HomeOfThree();
  Output out;
  REQUIRE(
      home.OnMessage(1, MakeMessage(MsgType::kReadRun, 0, 0, kNoNode, 4), &out)
          .ok());
  out.Clear();
  REQUIRE(home.OnNodeDead(1, &out).ok());
  for (PageId p = 0; p < 4; ++p) {
    INFO("page " << p);
    DirView v = home.home_agent().Inspect(p);
    CHECK(v.phase == TxnPhase::kIdle);
    CHECK(v.copies == Bit(0));
    CHECK(v.state != DirState::kLost);
  }
  CHECK(home.Stats().pages_lost == 0);
}

}  // namespace
}  // namespace ssihv::directory
