// Every home agent transition after a death: transactions whose requester,
// source or invalidation target died, verdicts and probes, and rebuilding
// an adopted range from reports.
#include <catch2/catch.hpp>

#include "agent_fixture.h"
#include "ssihv/directory/home_agent.h"

namespace ssihv::directory {
namespace {

using testing::Fixture;
using testing::Space;
using Lines = std::vector<std::string>;

// Four nodes, two pages each; node 0's home agent, page 0.
struct RecoveryTest {
  RecoveryTest(bool pull = false)
      : space(Space({2, 2, 2, 2})),
        f(space, 0),
        home(space, 0, HomeAgent::Options{pull, false, TestBug::kNone}) {}
  Lines Do(NodeId from, MsgType type, uint8_t flags = 0, NodeId node = kNoNode,
           PageId page = 0) {
    Env env = f.env();
    absl::Status s =
        home.OnMessage(env, from, MakeMessage(type, page, flags, node));
    REQUIRE(s.ok());
    return f.Take();
  }
  Lines Dies(NodeId n, NodeMask adopted = 0) {
    NodeMask changed = f.members.MarkDead(n);
    REQUIRE((changed & adopted) == adopted);
    Env env = f.env();
    home.OnNodeDead(env, n, adopted);
    return f.Take();
  }
  // Ends `r`'s transaction on page 0: the requester's kDone, or, when the
  // home's own copy served it, its agent's (kFlagBySource).
  Lines Finish(NodeId r) {
    return View().source == 0 ? Do(0, MsgType::kDone, kFlagBySource)
                              : Do(r, MsgType::kDone);
  }
  void Shared(std::initializer_list<NodeId> readers) {
    for (NodeId r : readers) {
      Do(r, MsgType::kReadReq);
      Finish(r);
    }
  }
  void OwnedBy(NodeId owner) {
    Do(owner, MsgType::kWriteReq);
    Finish(owner);
  }
  DirView View(PageId p = 0) const { return home.Inspect(p); }

  PageSpace space;
  Fixture f;
  HomeAgent home;
};

TEST_CASE_METHOD(RecoveryTest, "idle: a dead sharer is forgotten") {
  Shared({1, 2});
  CHECK(Dies(2).empty());
  CHECK(View().copies == (Bit(0) | Bit(1)));
  CHECK(View().state == DirState::kShared);
}

TEST_CASE_METHOD(RecoveryTest, "idle: a dead owner loses the page") {
  OwnedBy(1);
  CHECK(Dies(1) == Lines{"PageLost p0"});
  CHECK(View().state == DirState::kLost);
  CHECK(View().copies == 0);
}

TEST_CASE_METHOD(RecoveryTest, "a dead waiter is dropped from the queue") {
  Do(1, MsgType::kReadReq);
  Do(2, MsgType::kWriteReq);
  Dies(2);
  CHECK(View().write_waiters == 0);
  CHECK(Finish(1).empty());
}

TEST_CASE_METHOD(RecoveryTest, "a dead invalidation target counts as acked") {
  Shared({1, 2});
  CHECK(Do(3, MsgType::kWriteReq) ==
        Lines{"Send Inv p0 to n1", "Send Inv p0 to n2"});
  Do(1, MsgType::kInvAck);
  CHECK(Dies(2) == Lines{"Send Transfer p0 to n0 node=3"});
}

TEST_CASE_METHOD(RecoveryTest,
                 "requester dies while acks are out: keep the source's copy") {
  Shared({1, 2});
  Do(3, MsgType::kWriteReq);
  CHECK(Dies(3).empty());
  CHECK(View().phase == TxnPhase::kAbortAcks);
  Do(1, MsgType::kInvAck);
  CHECK(Do(2, MsgType::kInvAck).empty());
  CHECK(View().phase == TxnPhase::kIdle);
  CHECK(View().copies == Bit(0));
  CHECK(View().state == DirState::kShared);
}

TEST_CASE_METHOD(RecoveryTest,
                 "upgrader dies while acks are out: no copy remains") {
  Shared({1});
  Do(1, MsgType::kWriteReq, kFlagUpgrade);
  Dies(1);
  CHECK(Do(0, MsgType::kInvAck) == Lines{"PageLost p0"});
}

TEST_CASE_METHOD(
    RecoveryTest,
    "designated source dies before its transfer: lost after the acks") {
  OwnedBy(1);
  Shared({2});  // Shared at 1 and 2, not at the home
  CHECK(Do(3, MsgType::kWriteReq) == Lines{"Send Inv p0 to n2"});
  CHECK(Dies(1).empty());
  CHECK(Do(2, MsgType::kInvAck) == Lines{"Send Lost p0 to n3", "PageLost p0"});
}

TEST_CASE_METHOD(RecoveryTest,
                 "requester of a forwarded read dies: probe the source") {
  OwnedBy(1);
  CHECK(Do(2, MsgType::kReadReq) == Lines{"Send FwdRead p0 to n1 node=2"});
  CHECK(Dies(2) == Lines{"Send Probe p0 to n1"});
  CHECK(View().phase == TxnPhase::kAwaitProbe);
  Env env = f.env();
  CHECK_FALSE(
      home.OnMessage(env, 3, MakeMessage(MsgType::kProbeAck, 0, 1)).ok());
  CHECK(Do(1, MsgType::kProbeAck, static_cast<uint8_t>(PageState::kShared))
            .empty());
  CHECK(View().state == DirState::kShared);
  CHECK(View().copies == Bit(1));
}

TEST_CASE_METHOD(
    RecoveryTest,
    "requester of a transfer dies: the source kept it, or it is lost") {
  OwnedBy(1);
  CHECK(Do(2, MsgType::kWriteReq) == Lines{"Send Transfer p0 to n1 node=2"});
  CHECK(Dies(2) == Lines{"Send Probe p0 to n1"});
  SECTION("kept (the source knew of the death first)") {
    Do(1, MsgType::kProbeAck, static_cast<uint8_t>(PageState::kModified));
    CHECK(View().state == DirState::kModified);
    CHECK(View().copies == Bit(1));
  }
  SECTION("given away to the dead node") {
    CHECK(Do(1, MsgType::kProbeAck, 0) == Lines{"PageLost p0"});
  }
}

TEST_CASE_METHOD(RecoveryTest, "upgrade granted to a node that died: lost") {
  Shared({1});
  Do(1, MsgType::kWriteReq, kFlagUpgrade);
  CHECK(Do(0, MsgType::kInvAck) == Lines{"Send Grant p0 to n1 flags=8"});
  CHECK(Dies(1) == Lines{"PageLost p0"});
}

TEST_CASE_METHOD(
    RecoveryTest,
    "read requester of a pulled copy dies: the source is untouched") {
  RecoveryTest t(/*pull=*/true);
  t.OwnedBy(1);
  t.Shared({2});
  CHECK(t.Do(3, MsgType::kReadReq) == Lines{"Send PullGrant p0 to n3 node=1"});
  CHECK(t.Dies(3).empty());
  CHECK(t.View().phase == TxnPhase::kIdle);
  CHECK(t.View().copies == (Bit(1) | Bit(2)));
}

TEST_CASE_METHOD(RecoveryTest,
                 "source of a transfer dies: the requester's verdict decides") {
  OwnedBy(1);
  Do(2, MsgType::kWriteReq);  // Transfer to 1
  CHECK(Dies(1).empty());
  CHECK(View().phase == TxnPhase::kAwaitVerdict);
  SECTION("the page arrived before the requester cut the source off") {
    CHECK(Do(2, MsgType::kDone).empty());
    CHECK(View().state == DirState::kModified);
    CHECK(View().copies == Bit(2));
  }
  SECTION("a kStalled about another death is no verdict") {
    CHECK(Do(2, MsgType::kStalled, 0, 3).empty());
    CHECK(View().phase == TxnPhase::kAwaitVerdict);
  }
  SECTION("it did not: the last copy died with the source") {
    CHECK(Do(2, MsgType::kStalled, 0, 1) ==
          Lines{"Send Lost p0 to n2", "PageLost p0"});
  }
  SECTION("the requester dies too") { CHECK(Dies(2) == Lines{"PageLost p0"}); }
}

TEST_CASE_METHOD(
    RecoveryTest,
    "source of a forwarded read dies: read again from another copy") {
  OwnedBy(1);
  Shared({2});  // Shared at 1 and 2
  CHECK(Do(3, MsgType::kReadReq) == Lines{"Send FwdRead p0 to n1 node=3"});
  Dies(1);
  CHECK(Do(3, MsgType::kStalled, 0, 1) ==
        Lines{"Send FwdRead p0 to n2 node=3"});
  Do(3, MsgType::kDone);
  CHECK(View().copies == (Bit(2) | Bit(3)));
}

TEST_CASE_METHOD(RecoveryTest,
                 "source of a pulled read dies: the failed fetch decides") {
  RecoveryTest t(/*pull=*/true);
  t.OwnedBy(1);
  t.Shared({2});
  t.Do(3, MsgType::kReadReq);  // pull from 1
  CHECK(t.Dies(1).empty());
  CHECK(t.View().phase == TxnPhase::kAwaitDone);
  CHECK(t.Do(3, MsgType::kDone, kFlagFailed) ==
        Lines{"Send FwdRead p0 to n2 node=3"});
}

TEST_CASE_METHOD(RecoveryTest,
                 "a pull whose source, then requester, die loses the page") {
  // Found by dsm-sim (seed 163655 of a 300k run): the source's death leaves
  // no copy while the fetch is out; the requester's death then ends the
  // transaction, and the next request must get Lost, not a grant to read
  // from nobody.
  RecoveryTest t(/*pull=*/true);
  t.OwnedBy(3);
  t.Shared({1});  // Shared at 1 and 3, not at the home
  CHECK(t.Do(2, MsgType::kReadReq) == Lines{"Send PullGrant p0 to n2 node=1"});
  CHECK(t.Dies(1).empty());  // the source: its copy is gone
  CHECK(t.View().copies == Bit(3));
  CHECK(t.Dies(3).empty());  // the other sharer: no copy left
  CHECK(t.View().phase == TxnPhase::kAwaitDone);
  CHECK(t.Dies(2) == Lines{"PageLost p0"});  // and the requester
  CHECK(t.View().state == DirState::kLost);
  CHECK(t.Do(0, MsgType::kReadReq) == Lines{"Send Lost p0 to n0"});
}

TEST_CASE_METHOD(RecoveryTest,
                 "an adopted range is rebuilt from every survivor's report") {
  // Node 3 dies; node 0, the next live node (cyclically), adopts range 3.
  CHECK(Dies(3, Bit(3)).empty());
  CHECK(home.Recovering(3));
  PageId p6 = 6, p7 = 7;
  CHECK(View(p6).state == DirState::kRecovering);
  // Requests wait for the rebuild.
  CHECK(Do(1, MsgType::kReadReq, 0, kNoNode, p7).empty());
  Env env = f.env();
  ReportChunk from2;
  from2.range = 3;
  from2.last = true;
  from2.entries = {{0, static_cast<uint8_t>(PageState::kModified)}};
  REQUIRE(home.OnReport(env, 2, from2).ok());
  ReportChunk from1;
  from1.range = 3;
  from1.last = true;
  from1.entries = {{1, local_state::kPendingRead}};
  REQUIRE(home.OnReport(env, 1, from1).ok());
  REQUIRE(home.OnReport(env, 1, from1).ok());  // a duplicate is ignored
  CHECK(f.Take().empty());
  ReportChunk from0;
  from0.range = 3;
  from0.last = true;
  REQUIRE(home.OnReport(env, 0, from0).ok());
  CHECK_FALSE(home.Recovering(3));
  // Page 6 was Modified at node 2; page 7 had no copy: lost, and the
  // waiting reader is told.
  CHECK(View(p6).state == DirState::kModified);
  CHECK(View(p6).copies == Bit(2));
  CHECK(View(p7).state == DirState::kLost);
  CHECK(f.Take() == Lines{"Send Lost p7 to n1", "PageLost p7"});
}

TEST_CASE_METHOD(RecoveryTest,
                 "a fetch in progress is resumed by the adopted directory") {
  Dies(3, Bit(3));
  Env env = f.env();
  ReportChunk a;
  a.range = 3;
  a.last = true;
  a.entries = {{0, static_cast<uint8_t>(PageState::kShared)}};
  REQUIRE(home.OnReport(env, 2, a).ok());
  ReportChunk b;
  b.range = 3;
  b.last = true;
  b.entries = {{0, local_state::kPendingRead | local_state::kPulling}};
  REQUIRE(home.OnReport(env, 1, b).ok());
  REQUIRE(home.OnReport(env, 0, ReportChunk{3, true, {}}).ok());
  CHECK(f.Take() == Lines{"PageLost p7"});  // nobody held page 7
  CHECK(View(6).phase == TxnPhase::kAwaitDone);
  CHECK(View(6).requester == 1);
  CHECK(Do(1, MsgType::kDone, 0, kNoNode, 6).empty());
  CHECK(View(6).copies == (Bit(1) | Bit(2)));
}

TEST_CASE_METHOD(
    RecoveryTest,
    "a fetch that ends before the rebuild is applied to the report") {
  Dies(3, Bit(3));
  Env env = f.env();
  REQUIRE(home.OnReport(env, 1,
                        ReportChunk{3,
                                    true,
                                    {{0, local_state::kPendingRead |
                                             local_state::kPulling}}})
              .ok());
  CHECK(Do(1, MsgType::kDone, 0, kNoNode, 6).empty());
  REQUIRE(home.OnReport(env, 2, ReportChunk{3, true, {{0, 1}}}).ok());
  REQUIRE(home.OnReport(env, 0, ReportChunk{3, true, {}}).ok());
  CHECK(View(6).phase == TxnPhase::kIdle);
  CHECK(View(6).copies == (Bit(1) | Bit(2)));
}

TEST_CASE_METHOD(RecoveryTest,
                 "reports that contradict each other are an error") {
  Dies(3, Bit(3));
  Env env = f.env();
  ReportChunk m{3, false, {{0, static_cast<uint8_t>(PageState::kModified)}}};
  REQUIRE(home.OnReport(env, 1, m).ok());
  CHECK(home.OnReport(env, 2, m).code() == absl::StatusCode::kInternal);
  CHECK(home.OnReport(env, 2, ReportChunk{3, true, {{9, 1}}}).code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(
    RecoveryTest,
    "a survivor dying during the rebuild is no longer waited for") {
  Dies(3, Bit(3));
  Env env = f.env();
  REQUIRE(home.OnReport(env, 0, ReportChunk{3, true, {}}).ok());
  REQUIRE(home.OnReport(env, 1, ReportChunk{3, true, {{0, 2}}}).ok());
  CHECK(home.Recovering(3));
  // Node 1 (the only holder) dies; node 2 never reported.
  Dies(1);
  CHECK(home.Recovering(3));
  REQUIRE(home.OnReport(env, 2, ReportChunk{3, true, {}}).ok());
  CHECK_FALSE(home.Recovering(3));
  CHECK(View(6).state == DirState::kLost);
}

TEST_CASE_METHOD(RecoveryTest,
                 "while recovering, stray messages are rejected or ignored") {
  Dies(3, Bit(3));
  CHECK(Do(1, MsgType::kStalled, 0, 3, 6).empty());
  CHECK(Do(1, MsgType::kDone, 0, kNoNode, 6).empty());
  Env env = f.env();
  CHECK_FALSE(home.OnMessage(env, 1, MakeMessage(MsgType::kInvAck, 6)).ok());
}

}  // namespace
}  // namespace ssihv::directory
