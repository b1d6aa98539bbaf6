// Every failure-free home agent transition: reads and writes from each
// directory state, invalidation collection, queueing, pull retries, and the
// rejection of messages that do not fit the transaction.
#include "ssihv/directory/home_agent.h"

#include <catch2/catch.hpp>
#include <tuple>

#include "agent_fixture.h"

namespace ssihv::directory {
namespace {

using testing::Fixture;
using testing::Space;
using Lines = std::vector<std::string>;

// Four nodes, two pages each; the home agent under test is node 0's (pages
// 0 and 1). Messages its own node agent would answer are answered by hand.
struct HomeTest {
  explicit HomeTest(bool pull = false)
      : space(Space({2, 2, 2, 2})),
        f(space, 0),
        home(space, 0, HomeAgent::Options{pull, true, TestBug::kNone}) {}
  absl::Status Recv(NodeId from, const Message& m) {
    Env env = f.env();
    return home.OnMessage(env, from, m);
  }
  Lines Do(NodeId from, MsgType type, uint8_t flags = 0) {
    REQUIRE(Recv(from, MakeMessage(type, 0, flags)).ok());
    return f.Take();
  }
  // The kDone of a transaction the home's own copy served: its node agent
  // sent the kData (kFlagNoDone) and tells its home agent (kFlagBySource).
  Lines ServedByHome() { return Do(0, MsgType::kDone, kFlagBySource); }
  // Drives page 0 to Modified at `owner` (from Modified at the home).
  void OwnedBy(NodeId owner) {
    REQUIRE(Do(owner, MsgType::kWriteReq) ==
            Lines{"Send Transfer p0 to n0 node=" + std::to_string(owner)});
    REQUIRE(ServedByHome().empty());
  }
  DirView View() const { return home.Inspect(0); }

  PageSpace space;
  Fixture f;
  HomeAgent home;
};

TEST_CASE_METHOD(HomeTest,
                 "initially every homed page is Modified at the home") {
  CHECK(View().state == DirState::kModified);
  CHECK(View().copies == Bit(0));
  CHECK(home.HoldsRange(0));
  CHECK_FALSE(home.HoldsRange(1));
  CHECK_FALSE(
      Recv(1, MakeMessage(MsgType::kReadReq, 2)).ok());  // not homed here
}

TEST_CASE_METHOD(
    HomeTest,
    "read of a page Modified at the home: served by the home's copy") {
  CHECK(Do(1, MsgType::kReadReq) == Lines{"Send FwdRead p0 to n0 node=1"});
  CHECK(View().phase == TxnPhase::kAwaitDone);
  // The requester sends no kDone for the home's kData; the home's agent
  // ends the transaction when it sent it.
  CHECK_FALSE(Recv(1, MakeMessage(MsgType::kDone, 0)).ok());
  CHECK(ServedByHome().empty());
  CHECK(View().state == DirState::kShared);
  CHECK(View().copies == (Bit(0) | Bit(1)));
  CHECK(View().phase == TxnPhase::kIdle);
  CHECK(f.stats.read_txns.get() == 1);
  CHECK(home.PageStatsOf(0)->reads == 1);
}

TEST_CASE_METHOD(HomeTest,
                 "read of a page Modified at a third node is forwarded to it") {
  OwnedBy(2);
  CHECK(View().copies == Bit(2));
  CHECK(View().version == 1);
  CHECK(Do(1, MsgType::kReadReq) == Lines{"Send FwdRead p0 to n2 node=1"});
  CHECK(Do(1, MsgType::kDone).empty());
  CHECK(View().state == DirState::kShared);
  CHECK(View().copies == (Bit(1) | Bit(2)));
}

TEST_CASE_METHOD(HomeTest,
                 "read of a page Shared without the home: message or pull") {
  OwnedBy(2);
  Do(1, MsgType::kReadReq);
  Do(1, MsgType::kDone);
  SECTION("by message from the lowest sharer") {
    CHECK(Do(3, MsgType::kReadReq) == Lines{"Send FwdRead p0 to n1 node=3"});
  }
  SECTION("by one-sided fetch when pull is allowed") {
    HomeAgent pull(space, 0, HomeAgent::Options{true, true, TestBug::kNone});
    Env env = f.env();
    for (auto [from, type, flags] :
         {std::tuple{2, MsgType::kWriteReq, 0},
          std::tuple{0, MsgType::kDone, int{kFlagBySource}},
          std::tuple{1, MsgType::kReadReq, 0},
          std::tuple{1, MsgType::kDone, 0}}) {
      REQUIRE(pull.OnMessage(env, from,
                             MakeMessage(type, 0, static_cast<uint8_t>(flags)))
                  .ok());
    }
    f.Take();
    REQUIRE(pull.OnMessage(env, 3, MakeMessage(MsgType::kReadReq, 0)).ok());
    CHECK(f.Take() == Lines{"Send PullGrant p0 to n3 node=1"});
    CHECK(pull.Inspect(0).pulled);
    // The fetch failed: served again by message.
    REQUIRE(pull.OnMessage(env, 3, MakeMessage(MsgType::kDone, 0, kFlagFailed))
                .ok());
    CHECK(f.Take() == Lines{"Send FwdRead p0 to n1 node=3"});
    REQUIRE(pull.OnMessage(env, 3, MakeMessage(MsgType::kDone, 0)).ok());
    CHECK(pull.Inspect(0).copies == (Bit(1) | Bit(2) | Bit(3)));
    CHECK(f.stats.pull_grants.get() == 1);
  }
}

TEST_CASE_METHOD(HomeTest,
                 "write miss with sharers: invalidate all, then transfer from "
                 "the home's copy") {
  Do(1, MsgType::kReadReq);
  ServedByHome();
  Do(2, MsgType::kReadReq);
  ServedByHome();
  REQUIRE(View().copies == 0b0111);
  CHECK(Do(3, MsgType::kWriteReq) ==
        Lines{"Send Inv p0 to n1", "Send Inv p0 to n2"});
  CHECK(View().phase == TxnPhase::kAcks);
  CHECK(Do(2, MsgType::kInvAck).empty());
  CHECK_FALSE(Recv(2, MakeMessage(MsgType::kInvAck, 0)).ok());  // acked already
  CHECK(Do(1, MsgType::kInvAck) == Lines{"Send Transfer p0 to n0 node=3"});
  CHECK(ServedByHome().empty());
  CHECK(View().state == DirState::kModified);
  CHECK(View().copies == Bit(3));
  CHECK(f.stats.invalidations.get() == 2);
  CHECK(f.stats.ownership_transfers.get() == 1);
  CHECK(home.PageStatsOf(0)->invalidations == 2);
}

TEST_CASE_METHOD(
    HomeTest,
    "write miss on a page Shared elsewhere: the last copy transfers") {
  OwnedBy(2);
  Do(1, MsgType::kReadReq);
  Do(1, MsgType::kDone);  // Shared at 1 and 2
  CHECK(Do(3, MsgType::kWriteReq) == Lines{"Send Inv p0 to n2"});
  CHECK(Do(2, MsgType::kInvAck) == Lines{"Send Transfer p0 to n1 node=3"});
}

TEST_CASE_METHOD(HomeTest,
                 "upgrade: invalidate the others, grant without data") {
  Do(1, MsgType::kReadReq);
  ServedByHome();
  CHECK(Do(1, MsgType::kWriteReq, kFlagUpgrade) == Lines{"Send Inv p0 to n0"});
  // The home's grant ends the transaction: no kDone follows it.
  CHECK(Do(0, MsgType::kInvAck) == Lines{"Send Grant p0 to n1 flags=8"});
  CHECK(View().phase == TxnPhase::kIdle);
  CHECK_FALSE(Recv(1, MakeMessage(MsgType::kDone, 0)).ok());
  CHECK(View().copies == Bit(1));
  CHECK(View().state == DirState::kModified);
  CHECK(View().version == 1);
}

TEST_CASE_METHOD(HomeTest, "an upgrade by the only sharer is granted at once") {
  Do(1, MsgType::kReadReq);
  ServedByHome();
  CHECK(Do(0, MsgType::kWriteReq, kFlagUpgrade) == Lines{"Send Inv p0 to n1"});
  CHECK(Do(1, MsgType::kInvAck) == Lines{"Send Grant p0 to n0"});
}

TEST_CASE_METHOD(HomeTest,
                 "an upgrade flag from a non-holder is served as a miss") {
  OwnedBy(2);
  CHECK(Do(1, MsgType::kWriteReq, kFlagUpgrade) ==
        Lines{"Send Transfer p0 to n2 node=1"});
}

TEST_CASE_METHOD(HomeTest,
                 "requests for a busy page queue and are served round-robin") {
  CHECK(Do(1, MsgType::kReadReq) == Lines{"Send FwdRead p0 to n0 node=1"});
  CHECK(Do(3, MsgType::kWriteReq).empty());
  CHECK(Do(2, MsgType::kReadReq).empty());
  CHECK(View().read_waiters == Bit(2));
  CHECK(View().write_waiters == Bit(3));
  CHECK(f.stats.requests_queued.get() == 2);
  // Node 1 was served last: node 2 is next, then node 3.
  CHECK(ServedByHome() == Lines{"Send FwdRead p0 to n0 node=2"});
  CHECK(ServedByHome() == Lines{"Send Inv p0 to n1", "Send Inv p0 to n2"});
  // A waiter before the cursor is served after wrapping around.
  CHECK(Do(0, MsgType::kReadReq).empty());
  Do(1, MsgType::kInvAck);
  CHECK(Do(2, MsgType::kInvAck) == Lines{"Send Transfer p0 to n0 node=3"});
  CHECK(ServedByHome() == Lines{"Send FwdRead p0 to n3 node=0"});
}

TEST_CASE_METHOD(HomeTest, "a lost page answers every request with Lost") {
  OwnedBy(2);
  Env env = f.env();
  home.OnNodeDead(env, 2, 0);
  CHECK(f.Take() == Lines{"PageLost p0"});
  CHECK(View().state == DirState::kLost);
  CHECK(Do(1, MsgType::kReadReq) == Lines{"Send Lost p0 to n1"});
  CHECK(Do(3, MsgType::kWriteReq) == Lines{"Send Lost p0 to n3"});
  CHECK(f.stats.pages_lost.get() == 1);
}

TEST_CASE_METHOD(HomeTest,
                 "messages that do not fit the transaction are rejected") {
  CHECK_FALSE(Recv(1, MakeMessage(MsgType::kInvAck, 0)).ok());
  CHECK_FALSE(Recv(1, MakeMessage(MsgType::kDone, 0)).ok());
  CHECK_FALSE(Recv(1, MakeMessage(MsgType::kProbeAck, 0)).ok());
  CHECK_FALSE(
      Recv(1, MakeMessage(MsgType::kData, 0)).ok());  // a node agent message
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kReadReq, 0)).ok());  // owner reads
  CHECK_FALSE(
      Recv(0, MakeMessage(MsgType::kWriteReq, 0)).ok());  // owner writes
  // Only the home's own agent ends a transaction by its source.
  CHECK_FALSE(Recv(1, MakeMessage(MsgType::kDone, 0, kFlagBySource)).ok());
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kDone, 0, kFlagBySource)).ok());
  Do(1, MsgType::kReadReq);
  CHECK_FALSE(
      Recv(2, MakeMessage(MsgType::kDone, 0)).ok());  // not the requester
  CHECK_FALSE(Recv(2, MakeMessage(MsgType::kDone, 0, kFlagBySource)).ok());
  CHECK_FALSE(
      Recv(1, MakeMessage(MsgType::kDone, 0, kFlagFailed)).ok());  // no pull
  CHECK(Recv(1, MakeMessage(MsgType::kStalled, 0, 0, 3)).ok());    // ignored
  CHECK(f.out.effects.empty());
}

}  // namespace
}  // namespace ssihv::directory
