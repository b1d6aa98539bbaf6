// The Node facade: message counts per fault kind (the numbers in
// docs/PROTOCOL.md), local delivery between a node's own agents, argument
// checking, and recovery end to end through a LocalCluster.
#include "ssihv/directory/node.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "ssihv/directory/local_cluster.h"

namespace ssihv::directory {
namespace {

// Six nodes, one page each: page p is homed at node p.
LocalCluster Six(bool pull = false) {
  Node::Options o;
  o.allow_pull = pull;
  return *LocalCluster::Create({1, 1, 1, 1, 1, 1}, o);
}

// Network messages of one access (after the cluster settled).
uint64_t Cost(LocalCluster& c, NodeId n, PageId p, Access a) {
  uint64_t before = c.messages();
  REQUIRE(*c.Access(n, p, a));
  return c.messages() - before;
}

TEST_CASE("messages per fault") {
  LocalCluster c = Six();
  // The home's kData or kGrant ends the transaction: no kDone after it.
  SECTION("read miss served by the home's copy: 2") {
    CHECK(Cost(c, 1, 0, Access::kRead) == 2);
  }
  SECTION("read miss of a page Modified at a third node: 4") {
    CHECK(Cost(c, 2, 0, Access::kWrite) == 2);  // write miss, home's copy
    CHECK(Cost(c, 1, 0, Access::kRead) == 4);
  }
  SECTION("the home's own read miss: 2") {
    Cost(c, 2, 0, Access::kWrite);
    CHECK(Cost(c, 0, 0, Access::kRead) == 2);
  }
  SECTION("a hit costs nothing") {
    Cost(c, 1, 0, Access::kRead);
    CHECK(Cost(c, 1, 0, Access::kRead) == 0);
    CHECK(Cost(c, 0, 0, Access::kRead) == 0);
  }
  for (uint32_t k = 1; k <= 4; ++k) {
    DYNAMIC_SECTION("write miss, k=" << k << " sharers with the home: 2k") {
      for (NodeId n = 1; n < k; ++n) Cost(c, n, 0, Access::kRead);
      CHECK(Cost(c, 5, 0, Access::kWrite) == 2 * k);
    }
    DYNAMIC_SECTION("write miss, k=" << k
                                     << " sharers without the home: 2k+2") {
      Cost(c, 1, 0, Access::kWrite);
      for (NodeId n = 2; n <= k; ++n) Cost(c, n, 0, Access::kRead);
      CHECK(Cost(c, 5, 0, Access::kWrite) == 2 * k + 2);
    }
    DYNAMIC_SECTION(
        "upgrade with k=" << k << " other sharers, the home among them: 2k") {
      for (NodeId n = 1; n <= k; ++n) Cost(c, n, 0, Access::kRead);
      CHECK(Cost(c, 1, 0, Access::kWrite) == 2 * k);
    }
    DYNAMIC_SECTION("upgrade with k="
                    << k << " other sharers, the home not among them: 2k+2") {
      Cost(c, 1, 0, Access::kWrite);  // the home gives its copy up
      for (NodeId n = 2; n <= k + 1; ++n) Cost(c, n, 0, Access::kRead);
      CHECK(Cost(c, 1, 0, Access::kWrite) == 2 * k + 2);
    }
  }
}

TEST_CASE("a pulled read costs three messages and one fetch") {
  LocalCluster c = Six(/*pull=*/true);
  Cost(c, 1, 0, Access::kWrite);  // the home no longer holds a copy
  Cost(c, 2, 0, Access::kRead);   // Shared at 1 and 2
  uint64_t fetches = c.fetches();
  CHECK(Cost(c, 3, 0, Access::kRead) == 3);
  CHECK(c.fetches() == fetches + 1);
  CHECK(c.node(0).Stats().pull_grants == 1);
}

TEST_CASE("messages between a node's own agents never leave it") {
  LocalCluster c = Six();
  Cost(c, 1, 0, Access::kRead);
  Cost(c, 0, 0, Access::kWrite);  // upgrade at the home
  for (NodeId n = 0; n < 6; ++n) {
    for (const Effect& e : c.log(n)) {
      if (e.type == EffectType::kSend) CHECK(e.node != n);
    }
  }
  StatsSnapshot s = c.node(0).Stats();
  CHECK(s.local_messages > 0);
  CHECK(s.sent[static_cast<int>(MsgType::kInv)] == 1);
  CHECK(s.received[static_cast<int>(MsgType::kReadReq)] == 1);
  CHECK(s.ToJson().find("\"sent\": {\"ReadReq\": 0") != std::string::npos);
}

TEST_CASE("the Node checks its arguments") {
  PageSpace space = *PageSpace::FromPageCounts({2, 2});
  CHECK_FALSE(Node::Create(space, 2).ok());
  Node node = *Node::Create(space, 0);
  Output out;
  CHECK(node.OnFault(4, Access::kRead, &out).code() ==
        absl::StatusCode::kInvalidArgument);
  Message m;
  m.type = MsgType::kReadReq;
  m.page = 0;
  CHECK(node.OnMessage(0, m, &out).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(node.OnMessage(7, m, &out).code() ==
        absl::StatusCode::kInvalidArgument);
  m.page = 9;
  CHECK(node.OnMessage(1, m, &out).code() ==
        absl::StatusCode::kInvalidArgument);
  m.type = MsgType::kReport;
  m.page = 0;
  m.node = 1;
  CHECK(node.OnMessage(1, m, &out).code() ==
        absl::StatusCode::kInvalidArgument);
  m.type = MsgType::kReadReq;
  CHECK(node.Resubmit(1, m, &out).code() == absl::StatusCode::kInvalidArgument);
  CHECK(node.OnFetchDone(9, true, &out).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(node.OnNodeDead(0, &out).code() == absl::StatusCode::kAborted);
  CHECK(node.OnNodeDead(5, &out).code() == absl::StatusCode::kInvalidArgument);
  CHECK(out.effects.empty());
}

TEST_CASE("a node declared dead by a peer stops") {
  PageSpace space = *PageSpace::FromPageCounts({2, 2, 2});
  Node node = *Node::Create(space, 0);
  Output out;
  Message flush;
  flush.type = MsgType::kFlush;
  flush.node = 0;
  CHECK(node.OnMessage(1, flush, &out).code() == absl::StatusCode::kAborted);
}

TEST_CASE("a death learned from a peer's flush is processed like a notice") {
  PageSpace space = *PageSpace::FromPageCounts({2, 2, 2});
  Node node = *Node::Create(space, 0);
  Output out;
  Message flush;
  flush.type = MsgType::kFlush;
  flush.node = 2;
  REQUIRE(node.OnMessage(1, flush, &out).ok());
  CHECK(node.membership().IsDead(2));
  CHECK(node.membership().HomeOfRange(2) == 0);  // next live after 2, cyclic
  CHECK(node.home_agent().Recovering(2));
  // Flush to node 1, then (flushes complete) its report of range 2 to
  // itself, which completes recovery once node 1 reports too.
  REQUIRE(out.effects.size() == 1);
  CHECK(out.effects[0].ToString() == "Send Flush p0 to n1 node=2");
  CHECK_FALSE(node.RecoveryQuiet());
  out.Clear();
  ReportChunk last;
  last.range = 2;
  last.last = true;
  REQUIRE(node.OnReport(1, last, &out).ok());
  CHECK(node.RecoveryQuiet());
  // Range 2 was Modified at node 2 and nobody else had it: lost.
  CHECK(node.home_agent().Inspect(4).state == DirState::kLost);
  int lost = 0;
  for (const Effect& e : out.effects) lost += e.type == EffectType::kPageLost;
  CHECK(lost == 2);
  // Messages from the dead node are dropped from now on.
  out.Clear();
  Message req;
  req.type = MsgType::kReadReq;
  REQUIRE(node.OnMessage(2, req, &out).ok());
  CHECK(out.effects.empty());
  CHECK(node.Stats().dropped_from_dead == 1);
}

TEST_CASE(
    "recovery: shared copies survive their home, the only copy does not") {
  LocalCluster c = *LocalCluster::Create({2, 2, 2, 2});
  // Page 2 (homed at node 1) is read by nodes 0 and 3; page 3 stays
  // Modified at node 1; page 4 (homed at 2) is written by node 1.
  REQUIRE(*c.Access(0, 2, Access::kRead));
  REQUIRE(*c.Access(3, 2, Access::kRead));
  REQUIRE(*c.Access(1, 4, Access::kWrite));
  c.ClearLog();
  REQUIRE(c.Kill(1).ok());
  REQUIRE(c.Run().ok());
  for (NodeId n : {0u, 2u, 3u}) CHECK(c.node(n).RecoveryQuiet());
  const HomeAgent& new_home = c.node(2).home_agent();
  CHECK(new_home.HoldsRange(1));
  CHECK(new_home.Inspect(2).state == DirState::kShared);
  CHECK(new_home.Inspect(2).copies == (Bit(0) | Bit(3)));
  CHECK(new_home.Inspect(3).state == DirState::kLost);
  CHECK(c.node(2).home_agent().Inspect(4).state == DirState::kLost);
  // The survivors keep working on the recovered page...
  REQUIRE(*c.Access(3, 2, Access::kWrite));
  REQUIRE(*c.Access(2, 2, Access::kRead));
  // ...and a lost page answers with kPageLost, never with stale data.
  CHECK_FALSE(*c.Access(0, 3, Access::kRead));
  CHECK(c.log(0).back().type == EffectType::kPageLost);
  CHECK_FALSE(*c.Access(3, 4, Access::kWrite));
}

}  // namespace
}  // namespace ssihv::directory

namespace ssihv::directory {
namespace {

// The contract: calls for different pages may run concurrently. Four
// threads drive full read/upgrade cycles through one home Node (node 0),
// each on its own pages, answering for peer 1 by hand; the result must be
// exactly what one thread would have produced. (Run under TSan to check the
// claim for data races.)
TEST_CASE("concurrent calls on different pages do not interfere") {
  constexpr int kThreads = 4;
  constexpr PageId kPagesPerThread = 64;
  constexpr int kRounds = 50;
  PageSpace space = *PageSpace::FromPageCounts({kThreads * kPagesPerThread, 8});
  Node node = *Node::Create(space, 0);
  std::atomic<int> errors{0};  // Catch2 assertions are not thread-safe
  auto work = [&](int t) {
    Output out;
    auto call = [&](absl::Status s) {
      if (!s.ok()) errors.fetch_add(1);
      // Hand back what the hold deferred, as a driver would after a retry.
      for (size_t i = 0; i < out.effects.size(); ++i) {
        Effect e = out.effects[i];
        if (e.type == EffectType::kDefer &&
            !node.Resubmit(e.node, e.msg, &out).ok()) {
          errors.fetch_add(1);
        }
      }
      out.Clear();
    };
    for (int round = 0; round < kRounds; ++round) {
      for (PageId i = 0; i < kPagesPerThread; ++i) {
        PageId p = static_cast<PageId>(t) * kPagesPerThread + i;
        Message m;
        m.page = p;
        m.type = MsgType::kReadReq;        // node 1 reads: home serves, and its
        call(node.OnMessage(1, m, &out));  // kData ends the transaction
        call(node.OnFault(p, Access::kWrite, &out));  // upgrade here: Inv 1
        m.type = MsgType::kInvAck;
        call(node.OnMessage(1, m, &out));
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
  for (std::thread& th : threads) th.join();
  REQUIRE(errors.load() == 0);
  for (PageId p = 0; p < kThreads * kPagesPerThread; ++p) {
    DirView v = node.home_agent().Inspect(p);
    REQUIRE(v.state == DirState::kModified);
    REQUIRE(v.copies == Bit(0));
    REQUIRE(v.phase == TxnPhase::kIdle);
    REQUIRE(node.home_agent().PageStatsOf(p)->reads == kRounds);
  }
  StatsSnapshot s = node.Stats();
  uint64_t cycles = uint64_t{kThreads} * kPagesPerThread * kRounds;
  CHECK(s.read_txns == cycles);
  CHECK(s.write_txns == cycles);
  CHECK(s.received[static_cast<int>(MsgType::kInvAck)] == cycles);
  CHECK(s.sent[static_cast<int>(MsgType::kData)] == cycles);
}

}  // namespace
}  // namespace ssihv::directory
