// NodeLink's stop barrier over librdmax's in-process loopback transports:
// three nodes, each NodeLink fed by its own transport, as in ssihv-vmm. A
// stopped node keeps serving until every peer still up says its vCPUs have
// stopped too; peers that go down are not waited for; a malformed
// "quiesced" does not count. A message that could not leave for a peer
// waits for the failure detector's verdict on it.
#include "node_link.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/rdmax/loopback.h"

namespace ssihv::vmm {
namespace {

// Nothing of the guest here: the barrier only needs the link.
class IdleHandler : public NodeLink::Handler {
 public:
  void OnDeliver(uint32_t, const DeliverMsg&) override {}
  void OnIoApicEoi(uint32_t, uint8_t) override {}
  void OnRouting(uint32_t, const RoutingMsg&) override {}
  absl::StatusOr<std::vector<uint8_t>> OnIo(uint32_t, const IoMsg&) override {
    return absl::UnimplementedError("no devices");
  }
  absl::StatusOr<ClockMsg> OnClockRequest() override {
    return absl::UnimplementedError("no clock");
  }
  void OnStop(uint32_t, const StopMsg&) override {}
  void OnPeerLost(uint32_t node, const std::string&) override {
    std::lock_guard<std::mutex> lock(mu);
    lost.push_back(node);
  }
  void OnLinkError(const absl::Status& error) override {
    std::lock_guard<std::mutex> lock(mu);
    link_errors.push_back(error);
  }
  void OnAction(uint32_t, const ActionMsg&, rdmax::ReplyToken) override {}

  std::mutex mu;
  std::vector<uint32_t> lost;  // every link's OnPeerLost, in order
  std::vector<absl::Status> link_errors;
};

cluster::ClusterConfig ThreeNodes() {
  std::string json = R"({"transport": "tcp", "nodes": [)";
  for (int i = 0; i < 3; ++i) {
    absl::StrAppend(&json, i ? "," : "", R"({"id": )", i,
                    R"(, "vcpus": 1, "memory_mib": 2, "address": "127.0.0.1:)",
                    7000 + i, "\"}");
  }
  json += "]}";
  absl::StatusOr<cluster::ClusterConfig> c = cluster::ParseClusterConfig(json);
  REQUIRE(c.ok());
  return *c;
}

struct Cluster {
  cluster::ClusterConfig config = ThreeNodes();
  cluster::GuestLayout layout{config};
  std::shared_ptr<rdmax::LoopbackFabric> fabric =
      rdmax::LoopbackFabric::Create(config);
  IdleHandler handler;
  // Links before transports: a transport's callbacks use its link.
  std::vector<std::unique_ptr<NodeLink>> links;
  std::vector<std::unique_ptr<rdmax::Transport>> transports;

  Cluster() {
    for (uint32_t n = 0; n < 3; ++n) {
      links.push_back(std::make_unique<NodeLink>(layout, n, &handler));
      rdmax::TransportOptions o;
      o.secret = "node-link-test-cluster-secret";
      auto t = fabric->CreateTransport(n, o);
      REQUIRE(t.ok());
      NodeLink* link = links.back().get();
      (*t)->SetMessageHandler(
          [link](const rdmax::Message& m) { link->OnMessage(m); });
      (*t)->SetPeerHandler([link](rdmax::NodeId peer, rdmax::PeerState s) {
        link->OnPeer(peer, s);
      });
      link->Attach(t->get());
      transports.push_back(*std::move(t));
    }
    for (auto& t : transports) REQUIRE(t->Start().ok());
    for (auto& t : transports) {
      REQUIRE(t->WaitForAllPeers(absl::Now() + absl::Seconds(30)).ok());
    }
    // The transport says "connected" just before the link hears of it.
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!AllUp()) {
      REQUIRE(absl::Now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling
    }
  }
  bool AllUp() const {
    for (uint32_t n = 0; n < 3; ++n) {
      const std::vector<PeerLinkStats> s = links[n]->stats();
      for (uint32_t p = 0; p < 3; ++p) {
        if (p != n && !s[p].up) return false;
      }
    }
    return true;
  }
  ~Cluster() {
    for (auto& t : transports) t->Shutdown();
  }
  std::future<std::vector<uint32_t>> QuiesceAsync(uint32_t n,
                                                  absl::Duration timeout) {
    return std::async(std::launch::async, [this, n, timeout] {
      return links[n]->Quiesce(timeout);
    });
  }
};

using Nodes = std::vector<uint32_t>;

TEST_CASE("The stop barrier ends when every node's vCPUs have stopped") {
  Cluster c;
  // Generous bounds: a barrier that waited them out would report the nodes.
  auto f0 = c.QuiesceAsync(0, absl::Seconds(60));
  auto f1 = c.QuiesceAsync(1, absl::Seconds(60));
  CHECK(c.links[2]->Quiesce(absl::Seconds(60)).empty());
  CHECK(f0.get().empty());
  CHECK(f1.get().empty());
}

TEST_CASE("The stop barrier names the peers that never stopped") {
  Cluster c;
  auto f1 = c.QuiesceAsync(1, absl::Seconds(60));
  // Node 2 never says it stopped: node 0 waits the bound, then names it.
  CHECK(c.links[0]->Quiesce(absl::Seconds(2)) == Nodes{2});
  // Node 1 heard node 0 and still waits for node 2.
  CHECK(c.links[1]->Quiesce(absl::Seconds(2)) == Nodes{2});
  // Node 2 has heard both: it does not wait at all.
  CHECK(c.links[2]->Quiesce(absl::Seconds(60)).empty());
  CHECK(f1.get().empty());
}

TEST_CASE("The stop barrier does not wait for a peer that went down") {
  Cluster c;
  auto f0 = c.QuiesceAsync(0, absl::Seconds(60));
  CHECK(c.links[1]->Quiesce(absl::Seconds(2)) == Nodes{2});
  c.transports[2]->Shutdown();  // node 2 dies before its vCPUs stop
  CHECK(f0.get().empty());
  CHECK(c.links[1]->Quiesce(absl::Seconds(60)).empty());
}

// A node killed between connecting and its hello: the others declare it
// lost by the detector's rule (down for 2 s), they do not wait out the
// start-up deadline (ssihv-vmm then exits 5, not 3 after a minute).
TEST_CASE("A peer that goes down before its hello is lost, not awaited") {
  Cluster c;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  auto hello = [&](uint32_t n) {
    HelloMsg h;
    h.node = n;
    return std::async(std::launch::async, [&c, n, h, deadline] {
      return c.links[n]->ExchangeHellos(h, deadline);
    });
  };
  auto f0 = hello(0);
  auto f1 = hello(1);
  // Before or after their hellos to it left: the same outcome.
  c.transports[2]->Shutdown();
  const absl::Status s0 = f0.get();
  const absl::Status s1 = f1.get();
  INFO(s0 << " / " << s1);
  CHECK(absl::IsUnavailable(s0));
  CHECK(absl::IsUnavailable(s1));
  CHECK_THAT(std::string(s0.message()),
             Catch::Contains("node 2 was lost during start-up"));
  CHECK(absl::Now() < deadline - absl::Seconds(30));
  std::lock_guard<std::mutex> lock(c.handler.mu);
  CHECK(c.handler.lost == Nodes{2, 2});
}

// Polls `done` (the detector decides in its own time) up to 30 s.
template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling
  }
  return true;
}

// An interrupt to a node that just died is not a VMM error: the guest stops
// for the node's loss (exit status 5), not for the send (the 2-process
// SIGKILL case failed so in CI, 2026-12-07: a vCPU's IPI went out in the
// 2 s before the verdict).
TEST_CASE("A message to a dying node waits for the verdict: lost, no error") {
  Cluster c;
  c.links[0]->StartLiveness();
  c.links[1]->StartLiveness();
  c.transports[2]->Shutdown();
  REQUIRE(Eventually([&] { return !c.links[0]->stats()[2].up; }));
  const absl::Status st = c.links[0]->Deliver(2, DeliverMsg{});
  INFO(st);
  CHECK(st.ok());  // left to the verdict
  CHECK(c.links[0]->stats()[2].undelivered == 1);
  // Each link's detector decides in its own time: both, before they stop.
  REQUIRE(Eventually([&] {
    return c.links[0]->stats()[2].lost && c.links[1]->stats()[2].lost;
  }));
  CHECK(c.links[0]->Deliver(2, DeliverMsg{}).ok());  // fenced: nothing to say
  c.links[0]->StopLiveness();  // its last round has settled what waited
  c.links[1]->StopLiveness();
  std::lock_guard<std::mutex> lock(c.handler.mu);
  CHECK(c.handler.lost == Nodes{2, 2});
  CHECK(c.handler.link_errors.empty());
}

TEST_CASE("A message that did not leave for a peer that stayed is an error") {
  Cluster c;
  const absl::Status reset = absl::UnavailableError("test: connection reset");
  // Without the detector there is no verdict to wait for: reported now.
  CHECK(c.links[0]->Undelivered(1, reset) == reset);
  for (auto& link : c.links) link->StartLiveness();
  // Not a failed connection: this node's own error, reported now.
  const absl::Status full = absl::ResourceExhaustedError("test: queue full");
  CHECK(c.links[0]->Undelivered(1, full) == full);
  CHECK(c.links[0]->Undelivered(1, reset).ok());
  CHECK(c.links[0]->Undelivered(1, reset).ok());
  auto errors = [&] {
    std::lock_guard<std::mutex> lock(c.handler.mu);
    return c.handler.link_errors;
  };
  REQUIRE(Eventually([&] { return !errors().empty(); }));
  for (auto& link : c.links) link->StopLiveness();
  const std::vector<absl::Status> e = errors();
  REQUIRE(e.size() == 1);  // one report for both
  CHECK(absl::IsUnavailable(e[0]));
  CHECK_THAT(std::string(e[0].message()),
             Catch::Contains("test: connection reset"));
  CHECK_THAT(std::string(e[0].message()),
             Catch::Contains("node 1 was not lost: 2 message(s)"));
  std::lock_guard<std::mutex> lock(c.handler.mu);
  CHECK(c.handler.lost.empty());
}

TEST_CASE("A quiesced message with a payload is dropped") {
  Cluster c;
  const uint8_t junk[1] = {1};
  REQUIRE(c.transports[1]->Send(0, kMsgQuiesced, junk).ok());
  REQUIRE(c.transports[2]->Send(0, kMsgQuiesced, {}).ok());
  // Node 2's counts; node 1's malformed one does not.
  CHECK(c.links[0]->Quiesce(absl::Seconds(2)) == Nodes{1});
}

}  // namespace
}  // namespace ssihv::vmm
