// Every node agent transition: faults in each local state, each message in
// the states where it is valid, and the rejections where it is not.
#include "ssihv/directory/node_agent.h"

#include <catch2/catch.hpp>

#include "agent_fixture.h"

namespace ssihv::directory {
namespace {

using testing::Fixture;
using testing::Space;
using Lines = std::vector<std::string>;

// Three nodes, two pages each: node 1 (the agent under test) homes 2 and 3;
// page 0 is homed at node 0.
struct NodeAgentTest {
  NodeAgentTest() : space(Space({2, 2, 2})), f(space, 1), agent(space, 1, {}) {}
  absl::Status Fault(PageId p, Access a) {
    Env env = f.env();
    return agent.OnFault(env, p, a);
  }
  absl::Status Recv(NodeId from, const Message& m) {
    Env env = f.env();
    return agent.OnMessage(env, from, m);
  }
  // Brings page 0 (homed at 0) to Shared here through a read miss.
  void MakeShared0() {
    REQUIRE(Fault(0, Access::kRead).ok());
    REQUIRE(Recv(2, MakeMessage(MsgType::kData, 0, 0, kNoNode, 4)).ok());
    f.Take();
  }
  // Releases the hold a completion leaves, as a deferred message would.
  void ReleaseHold(PageId p) {
    REQUIRE(Recv(0, MakeMessage(MsgType::kFwdRead, p, 0, 2)).ok());
    REQUIRE(f.Take() ==
            Lines{"Defer FwdRead p" + std::to_string(p) + " from n0"});
  }

  PageSpace space;
  Fixture f;
  NodeAgent agent;
};

TEST_CASE_METHOD(NodeAgentTest,
                 "initial state: own pages Modified, others Invalid") {
  CHECK(agent.StateOf(2) == PageState::kModified);
  CHECK(agent.StateOf(3) == PageState::kModified);
  CHECK(agent.StateOf(0) == PageState::kInvalid);
  CHECK(agent.StateOf(5) == PageState::kInvalid);
  CHECK(agent.LocalStateByte(2) == 2);  // the pristine bit is internal
}

TEST_CASE_METHOD(NodeAgentTest,
                 "faults on a Modified page resolve locally, writable") {
  REQUIRE(Fault(2, Access::kRead).ok());
  CHECK(f.Take() == Lines{"MapLocal p2 rw"});
  REQUIRE(Fault(2, Access::kWrite).ok());
  CHECK(f.Take() == Lines{"MapLocal p2 rw"});
  CHECK(f.stats.faults_local.get() == 2);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "read miss asks the home and waits; joiners wait") {
  REQUIRE(Fault(0, Access::kRead).ok());
  CHECK(f.Take() == Lines{"Send ReadReq p0 to n0", "Wait p0"});
  CHECK(agent.Pending(0));
  REQUIRE(Fault(0, Access::kWrite).ok());  // behind the pending read
  CHECK(f.Take() == Lines{"Wait p0"});
  CHECK(f.stats.faults_read_miss.get() == 1);
  CHECK(f.stats.faults_joined.get() == 1);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "read data maps read-only, acks the home, holds") {
  REQUIRE(Fault(0, Access::kRead).ok());
  f.Take();
  REQUIRE(Recv(2, MakeMessage(MsgType::kData, 0, 0, kNoNode, 7)).ok());
  CHECK(f.Take() == Lines{"MapReceived p0 ro", "Send Done p0 to n0"});
  CHECK(agent.StateOf(0) == PageState::kShared);
  CHECK_FALSE(agent.Pending(0));
  // Shared: reads resolve locally.
  REQUIRE(Fault(0, Access::kRead).ok());
  CHECK(f.Take() == Lines{"MapLocal p0 ro"});
}

TEST_CASE_METHOD(NodeAgentTest, "zero-page data maps a zero page") {
  REQUIRE(Fault(0, Access::kRead).ok());
  f.Take();
  REQUIRE(Recv(0, MakeMessage(MsgType::kData, 0, kFlagZero)).ok());
  CHECK(f.Take() == Lines{"MapReceived p0 ro zero", "Send Done p0 to n0"});
}

TEST_CASE_METHOD(NodeAgentTest, "write miss gets the page writable") {
  REQUIRE(Fault(0, Access::kWrite).ok());
  CHECK(f.Take() == Lines{"Send WriteReq p0 to n0", "Wait p0"});
  CHECK(agent.PendingWrite(0));
  REQUIRE(Recv(2, MakeMessage(MsgType::kData, 0, kFlagWrite)).ok());
  CHECK(f.Take() == Lines{"MapReceived p0 rw", "Send Done p0 to n0"});
  CHECK(agent.StateOf(0) == PageState::kModified);
  CHECK(f.stats.faults_write_miss.get() == 1);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "upgrade: Shared write fault, grant makes it writable") {
  MakeShared0();
  REQUIRE(Fault(0, Access::kWrite).ok());
  CHECK(f.Take() == Lines{"Send WriteReq p0 to n0 flags=1", "Wait p0"});
  REQUIRE(Recv(0, MakeMessage(MsgType::kGrant, 0, 0, kNoNode, 5)).ok());
  CHECK(f.Take() == Lines{"MakeWritable p0", "Send Done p0 to n0"});
  CHECK(agent.StateOf(0) == PageState::kModified);
  CHECK(f.stats.faults_upgrade.get() == 1);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "the home's kData or kGrant (kFlagNoDone) ends it: no Done") {
  REQUIRE(Fault(0, Access::kRead).ok());
  f.Take();
  REQUIRE(
      Recv(0, MakeMessage(MsgType::kData, 0, kFlagNoDone, kNoNode, 2)).ok());
  CHECK(f.Take() == Lines{"MapReceived p0 ro"});
  CHECK(agent.StateOf(0) == PageState::kShared);
  REQUIRE(Fault(0, Access::kWrite).ok());
  f.Take();
  REQUIRE(
      Recv(0, MakeMessage(MsgType::kGrant, 0, kFlagNoDone, kNoNode, 3)).ok());
  CHECK(f.Take() == Lines{"MakeWritable p0"});
  CHECK(agent.StateOf(0) == PageState::kModified);
  REQUIRE(Fault(4, Access::kWrite).ok());
  f.Take();
  REQUIRE(
      Recv(2, MakeMessage(MsgType::kData, 4, kFlagWrite | kFlagNoDone)).ok());
  CHECK(f.Take() == Lines{"MapReceived p4 rw"});
}

TEST_CASE_METHOD(NodeAgentTest,
                 "invalidation of a pending upgrade leaves a write miss") {
  MakeShared0();
  ReleaseHold(0);
  REQUIRE(Fault(0, Access::kWrite).ok());
  f.Take();
  REQUIRE(Recv(0, MakeMessage(MsgType::kInv, 0)).ok());
  CHECK(f.Take() == Lines{"Zap p0", "Send InvAck p0 to n0"});
  CHECK(agent.StateOf(0) == PageState::kInvalid);
  CHECK(agent.PendingWrite(0));
  // The home then serves it as a miss: data, not a grant.
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kGrant, 0)).ok());
  REQUIRE(Recv(2, MakeMessage(MsgType::kData, 0, kFlagWrite)).ok());
  CHECK(agent.StateOf(0) == PageState::kModified);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "forwarded read from a Modified owner downgrades first") {
  // Page 2 is homed here: its home agent's messages come from this node.
  // Never written since start, it ships as a zero page. Served by the home,
  // the kData ends the transaction: no kDone from the requester
  // (kFlagNoDone), the home agent hears it from here (kFlagBySource).
  REQUIRE(Recv(1, MakeMessage(MsgType::kFwdRead, 2, 0, 0, 3)).ok());
  CHECK(f.Take() == Lines{"WriteProtect p2", "Send Data p2 to n0 flags=10",
                          "Send Done p2 to n1 flags=2"});
  CHECK(agent.StateOf(2) == PageState::kShared);
  // Once mapped writable (so possibly written), its bytes travel.
  REQUIRE(Fault(3, Access::kWrite).ok());
  f.Take();
  REQUIRE(Recv(1, MakeMessage(MsgType::kFwdRead, 3, 0, 2)).ok());
  CHECK(f.Take() == Lines{"WriteProtect p3", "Send Data p3 to n2 flags=8",
                          "Send Done p3 to n1 flags=2"});
}

TEST_CASE_METHOD(NodeAgentTest,
                 "a Shared sharer serves a copy and stays Shared") {
  MakeShared0();
  ReleaseHold(0);
  REQUIRE(Recv(0, MakeMessage(MsgType::kFwdRead, 0, 0, 2, 9)).ok());
  CHECK(f.Take() == Lines{"Send Data p0 to n2"});
  CHECK(agent.StateOf(0) == PageState::kShared);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "transfer sends the page with ownership and drops it") {
  REQUIRE(Fault(2, Access::kWrite).ok());
  f.Take();
  REQUIRE(Recv(1, MakeMessage(MsgType::kTransfer, 2, 0, 0, 1)).ok());
  CHECK(f.Take() == Lines{"WriteProtect p2", "Send Data p2 to n0 flags=9",
                          "Zap p2", "Send Done p2 to n1 flags=2"});
  CHECK(agent.StateOf(2) == PageState::kInvalid);
  // A Shared holder transfers without write-protecting.
  MakeShared0();
  ReleaseHold(0);
  REQUIRE(Recv(0, MakeMessage(MsgType::kTransfer, 0, 0, 2)).ok());
  CHECK(f.Take() == Lines{"Send Data p0 to n2 flags=1", "Zap p0"});
}

TEST_CASE_METHOD(NodeAgentTest, "pull grant fetches, then maps and acks") {
  REQUIRE(Fault(0, Access::kRead).ok());
  f.Take();
  REQUIRE(Recv(0, MakeMessage(MsgType::kPullGrant, 0, 0, 2, 6)).ok());
  CHECK(f.Take() == Lines{"Fetch p0 from n2"});
  CHECK(agent.Pulling(0));
  CHECK(agent.LocalStateByte(0) ==
        (local_state::kPendingRead | local_state::kPulling));
  Env env = f.env();
  REQUIRE(agent.OnFetchDone(env, 0, true).ok());
  CHECK(f.Take() == Lines{"MapFetched p0", "Send Done p0 to n0"});
  CHECK(agent.StateOf(0) == PageState::kShared);
  CHECK_FALSE(agent.OnFetchDone(env, 0, true).ok());  // no fetch in progress
}

TEST_CASE_METHOD(NodeAgentTest,
                 "a failed fetch reports failure and stays pending") {
  REQUIRE(Fault(0, Access::kRead).ok());
  REQUIRE(Recv(0, MakeMessage(MsgType::kPullGrant, 0, 0, 2)).ok());
  f.Take();
  Env env = f.env();
  REQUIRE(agent.OnFetchDone(env, 0, false).ok());
  CHECK(f.Take() == Lines{"Send Done p0 to n0 flags=1"});
  CHECK(agent.Pending(0));
  CHECK_FALSE(agent.Pulling(0));
  REQUIRE(
      Recv(2, MakeMessage(MsgType::kData, 0)).ok());  // the retry by message
  CHECK(agent.StateOf(0) == PageState::kShared);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "lost answers a request; later faults are fatal") {
  REQUIRE(Fault(0, Access::kWrite).ok());
  f.Take();
  REQUIRE(Recv(0, MakeMessage(MsgType::kLost, 0)).ok());
  CHECK(f.Take() == Lines{"PageLost p0"});
  CHECK(agent.StateOf(0) == PageState::kLost);
  REQUIRE(Fault(0, Access::kRead).ok());
  CHECK(f.Take() == Lines{"PageLost p0"});
  CHECK(f.stats.faults_lost.get() == 1);
}

TEST_CASE_METHOD(NodeAgentTest, "probe reports the local state byte") {
  REQUIRE(Fault(0, Access::kRead).ok());
  f.Take();
  REQUIRE(Recv(0, MakeMessage(MsgType::kProbe, 0)).ok());
  CHECK(f.Take() == Lines{"Send ProbeAck p0 to n0 flags=4"});
}

TEST_CASE_METHOD(NodeAgentTest,
                 "a just-granted page defers the first conflicting message") {
  MakeShared0();
  // The hold: the woken thread has not used the copy yet.
  REQUIRE(Recv(0, MakeMessage(MsgType::kInv, 0)).ok());
  CHECK(f.Take() == Lines{"Defer Inv p0 from n0"});
  CHECK(agent.StateOf(0) == PageState::kShared);
  // Handed back, it is processed.
  REQUIRE(Recv(0, MakeMessage(MsgType::kInv, 0)).ok());
  CHECK(f.Take() == Lines{"Zap p0", "Send InvAck p0 to n0"});
}

TEST_CASE_METHOD(NodeAgentTest,
                 "forwards to a dead requester are dropped, copy kept") {
  MakeShared0();
  Membership members(space, 1);
  members.MarkDead(2);
  Env env{members, f.stats, f.out};
  REQUIRE(
      agent.OnMessage(env, 0, MakeMessage(MsgType::kFwdRead, 0, 0, 2)).ok());
  REQUIRE(
      agent.OnMessage(env, 0, MakeMessage(MsgType::kTransfer, 0, 0, 2)).ok());
  CHECK(f.Take().empty());
  CHECK(agent.StateOf(0) == PageState::kShared);
}

TEST_CASE_METHOD(NodeAgentTest,
                 "messages that do not fit the local state are rejected") {
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kData, 0)).ok());  // nothing pending
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kInv, 0)).ok());   // not Shared
  CHECK_FALSE(
      Recv(0, MakeMessage(MsgType::kFwdRead, 0, 0, 2)).ok());  // no copy
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kTransfer, 0, 0, 2)).ok());
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kGrant, 0)).ok());
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kPullGrant, 0, 0, 2)).ok());
  CHECK_FALSE(Recv(0, MakeMessage(MsgType::kLost, 0)).ok());
  CHECK_FALSE(Recv(2, MakeMessage(MsgType::kInv, 0)).ok());  // not the home
  CHECK_FALSE(
      Recv(0, MakeMessage(MsgType::kReadReq, 0)).ok());  // a home message
  REQUIRE(Fault(0, Access::kRead).ok());
  CHECK_FALSE(Recv(2, MakeMessage(MsgType::kData, 0, kFlagWrite))
                  .ok());            // read pending
  CHECK(f.out.effects.size() == 2);  // only the fault's effects
}

TEST_CASE_METHOD(
    NodeAgentTest,
    "stalled requests are announced unless their range is reported") {
  REQUIRE(Fault(0, Access::kRead).ok());   // range 0
  REQUIRE(Fault(4, Access::kWrite).ok());  // range 2
  f.Take();
  Env env = f.env();
  agent.AnnounceStalled(env, 2, /*skip_ranges=*/Bit(2));
  CHECK(f.Take() == Lines{"Send Stalled p0 to n0 node=2"});
}

TEST_CASE("reports list the non-default local states in chunks") {
  PageSpace space = Space({2000, 10});
  Fixture f(space, 1);
  NodeAgent agent(space, 1, {});
  Env env = f.env();
  for (PageId p = 0; p < 1700; ++p)
    REQUIRE(agent.OnFault(env, p, Access::kRead).ok());
  f.out.Clear();
  agent.AppendReport(env, 0, 1);
  REQUIRE(f.out.reports.size() == 3);
  CHECK(f.out.reports[0].entries.size() == kMaxReportEntries);
  CHECK_FALSE(f.out.reports[0].last);
  CHECK(f.out.reports[2].entries.size() == 1700 - 2 * kMaxReportEntries);
  CHECK(f.out.reports[2].last);
  CHECK(f.out.reports[1].entries[0] ==
        ReportEntry{kMaxReportEntries, local_state::kPendingRead});
  CHECK(f.out.effects.size() == 3);
  CHECK(f.out.effects[2].type == EffectType::kSendReport);
  CHECK(f.out.effects[2].index == 2);
  // An empty range still sends its (empty) last chunk.
  f.out.Clear();
  agent.AppendReport(env, 0, 1);
  agent.AppendReport(env, 1, 0);
  CHECK(f.out.reports.back().last);
  CHECK(f.out.reports.back().entries.size() == 10);  // own pages: Modified
}

}  // namespace
}  // namespace ssihv::directory
