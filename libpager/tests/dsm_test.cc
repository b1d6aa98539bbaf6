// The DSM node with several nodes in one process over librdmax's loopback
// fabric: each node has its own guest RAM, pager and uffd; test threads act
// as the vCPUs of one node by touching that node's mapping.
#include <linux/userfaultfd.h>

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dsm_cluster.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/loopback.h"
#include "ssihv/rdmax/transport.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::Cluster;

TEST_CASE("A remote read maps the home's bytes read-only") {
  Cluster c(2);
  const uint64_t gpa = c.HomeBase(0) + 5 * 4096;
  *c.At(0, gpa + 8) = 0xfeedface;          // first touch at the home: local
  CHECK(*c.At(1, gpa + 8) == 0xfeedface);  // remote read miss
  CHECK(*c.At(1, gpa) == 0);
  CHECK(c.Faults(0, FaultKind::kLocalZero) == 1);
  CHECK(testing::WaitFor(
      [&] { return c.Faults(1, FaultKind::kRemoteRead) >= 1; }));
  // The home can still read its copy without faulting again.
  CHECK(*c.At(0, gpa + 8) == 0xfeedface);
  CHECK(c.errors == 0);
}

TEST_CASE("A page never touched travels as zeros") {
  Cluster c(2);
  const uint64_t gpa = c.HomeBase(1) + 7 * 4096;
  for (int off = 0; off < 4096; off += 512) CHECK(*c.At(0, gpa + off) == 0);
  // No page bytes on the wire: the home knows it was never written.
  auto stats = c.nodes[1]->StatsJson();
  CHECK(stats["protocol"]["page_bytes_sent"].get<uint64_t>() == 0);
  // Counted just after the ioctl that woke the reader.
  CHECK(testing::WaitFor(
      [&] { return c.Faults(0, FaultKind::kRemoteRead) == 1; }));
  CHECK(c.errors == 0);
}

TEST_CASE("A first touch at the home fills the rest of its block") {
  const bool around = GENERATE(true, false);
  Cluster c(2, 1, [&](int, DsmOptions& o) {
    if (!around) o.local_fault_around_pages = 0;
  });
  const uint64_t base = c.HomeBase(0);
  *c.At(0, base + 5 * 4096) = 1;  // the first touch of the block
  // Filled ahead (after the faulting thread resumed): no fault for page 9.
  if (around) {
    CHECK(testing::WaitFor(
        [&] { return c.nodes[0]->PagerStatistics().filled_ahead >= 2; }));
  }
  *c.At(0, base + 9 * 4096 + 8) = 0xabcd;
  // Counted just after the ioctl that woke the writer: waited for.
  const uint64_t want = around ? 1 : 2;
  CHECK(testing::WaitFor(
      [&] { return c.Faults(0, FaultKind::kLocalZero) == want; }));
  CHECK(c.Faults(0, FaultKind::kLocalZero) == want);
  // Filled pages are still the protocol's: another node reads what the home
  // wrote, and zeros where it wrote nothing.
  CHECK(*c.At(1, base + 9 * 4096 + 8) == 0xabcd);
  CHECK(*c.At(1, base + 10 * 4096) == 0);
  // And a page another node took is not filled behind its back: node 1
  // writes page 20 of node 0's range; node 0 reading it sees node 1's value.
  *c.At(1, base + 20 * 4096) = 0x77;
  CHECK(*c.At(0, base + 20 * 4096) == 0x77);
  CHECK(c.errors == 0);
}

TEST_CASE("Writes move ownership; the old copies are invalidated") {
  Cluster c(3);
  const uint64_t gpa = c.HomeBase(1) + 3 * 4096;
  *c.At(1, gpa) = 1;
  CHECK(*c.At(0, gpa) == 1);  // 0 and 2 get Shared copies
  CHECK(*c.At(2, gpa) == 1);
  *c.At(0, gpa) = 2;  // upgrade: 1 and 2 are invalidated
  CHECK(*c.At(2, gpa) == 2);
  CHECK(*c.At(1, gpa) == 2);
  *c.At(2, gpa + 16) = 3;
  CHECK(*c.At(0, gpa + 16) == 3);
  CHECK(*c.At(0, gpa) == 2);
  CHECK(testing::WaitFor([&] {
    return c.Faults(0, FaultKind::kUpgrade) +
               c.Faults(0, FaultKind::kRemoteWrite) >=
           1;
  }));
  // The home's side of those faults: node 1 served both peers' reads and
  // writes; nodes 0 and 2 are not the page's home and served nothing.
  const std::vector<DsmRequestsServed> home = c.nodes[1]->RequestsServed();
  REQUIRE(home.size() == 3);
  for (uint32_t n : {0u, 2u}) {
    CHECK(home[n].reads >= 1);
    CHECK(home[n].writes >= 1);
  }
  CHECK(home[1].reads + home[1].writes == 0);  // its own: no message
  // The page that moved is the hottest one its home knows of; the other
  // nodes' directories saw no transaction at all.
  const std::vector<DsmPageTraffic> hot = c.nodes[1]->HottestPages(3);
  REQUIRE(!hot.empty());
  CHECK(hot.front().gpa == gpa);
  CHECK(hot.front().reads >= 2);
  CHECK(hot.front().writes >= 2);
  CHECK(hot.front().invalidations >= 2);
  for (size_t i = 1; i < hot.size(); ++i) {
    CHECK(hot[i].reads + hot[i].writes <= hot[i - 1].reads + hot[i - 1].writes);
  }
  CHECK(c.nodes[0]->HottestPages(3).empty());
  CHECK(c.nodes[1]->HottestPages(0).empty());
  // The invalidations were zaps (the page faulted again above), each one
  // madvise that waited for no REMOVE event: the node negotiates none.
  for (uint32_t k = 0; k < 3; ++k) {
    CHECK((c.nodes[k]->pager().features() & UFFD_FEATURE_EVENT_REMOVE) == 0);
    CHECK(c.nodes[k]->PagerStatistics().remove_events == 0);
  }
  for (uint32_t other : {0u, 2u}) {
    for (const DsmRequestsServed& s : c.nodes[other]->RequestsServed()) {
      CHECK(s.reads + s.writes == 0);
    }
  }
  CHECK(c.errors == 0);
}

TEST_CASE("InspectPage and PagesByState show the protocol's view") {
  Cluster c(2);
  const uint64_t gpa = c.HomeBase(0) + 7 * 4096;
  const uint64_t pages_per_node = 2 * 1024 * 1024 / 4096;
  // At start: node 0 holds its own pages Modified, node 1 none of them.
  auto v0 = c.nodes[0]->InspectPage(gpa + 100);
  REQUIRE(v0.ok());
  CHECK(v0->state == "modified");
  REQUIRE(v0->directory.has_value());  // node 0 is the home
  CHECK(v0->directory->state == "modified");
  CHECK(v0->directory->owner == 0u);
  CHECK_FALSE(v0->directory->busy);
  auto v1 = c.nodes[1]->InspectPage(gpa);
  REQUIRE(v1.ok());
  CHECK(v1->state == "invalid");
  CHECK_FALSE(v1->directory.has_value());
  std::array<uint64_t, 4> by0 = c.nodes[0]->PagesByState();
  CHECK(by0[2] == pages_per_node);  // modified: its own
  CHECK(by0[0] == pages_per_node);  // invalid: node 1's

  // A remote read: both Shared; the directory lists both sharers.
  *c.At(0, gpa) = 42;
  CHECK(*c.At(1, gpa) == 42);
  REQUIRE(testing::WaitFor([&] {
    auto v = c.nodes[0]->InspectPage(gpa);
    return v.ok() && v->directory && !v->directory->busy &&
           v->directory->state == "shared";
  }));
  v0 = c.nodes[0]->InspectPage(gpa);
  CHECK(v0->state == "shared");
  CHECK(v0->directory->sharers == std::vector<uint32_t>{0, 1});
  CHECK_FALSE(v0->directory->owner.has_value());
  CHECK(c.nodes[1]->InspectPage(gpa)->state == "shared");
  CHECK(c.nodes[1]->PagesByState()[1] >= 1);
  CHECK(c.nodes[0]->PagesByState()[1] >= 1);

  CHECK(absl::IsNotFound(c.nodes[0]->InspectPage(1ull << 40).status()));
  CHECK(c.errors == 0);
}

// An x86 test-and-test-and-set spinlock: `xchg` with a memory operand is
// always locked, and a locked write needs the page Modified on this node.
void Lock(volatile uint32_t* lock) {
  for (;;) {
    uint32_t v = 1;
    asm volatile("xchg %0, %1" : "+r"(v), "+m"(*lock) : : "memory");
    if (v == 0) return;
    while (*lock != 0) asm volatile("pause");
  }
}
void Unlock(volatile uint32_t* lock) {
  asm volatile("" : : : "memory");
  *lock = 0;
}

TEST_CASE("Lock-protected increments across nodes lose nothing") {
  constexpr int kNodes = 3;
  constexpr int kThreads = 2;
  constexpr int kIters = 3000;
  constexpr int kCounters = 6;  // two per home
  Cluster c(kNodes, 2);
  std::vector<uint64_t> counters;
  for (int i = 0; i < kCounters; ++i) {
    counters.push_back(c.HomeBase(i % kNodes) + (10 + i) * 4096);
  }
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, n, t] {
        ++ready;  // all start together, so the nodes really contend
        while (ready < kNodes * kThreads) std::this_thread::yield();
        std::mt19937 rng(n * 100 + t);
        for (int i = 0; i < kIters; ++i) {
          const uint64_t gpa = counters[rng() % kCounters];
          auto* lock = c.At<uint32_t>(n, gpa);
          auto* value = c.At<uint64_t>(n, gpa + 64);
          Lock(lock);
          *value = *value + 1;
          Unlock(lock);
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  uint64_t total = 0;
  for (uint64_t gpa : counters) total += *c.At<uint64_t>(0, gpa + 64);
  CHECK(total == uint64_t{kNodes} * kThreads * kIters);
  // The counters' pages really moved: each node wrote every counter (the
  // seeded picks cover all), and two of every three are homed elsewhere.
  uint64_t write_txns = 0;
  for (int n = 0; n < kNodes; ++n) {
    write_txns +=
        c.nodes[n]->StatsJson()["protocol"]["write_txns"].get<uint64_t>();
  }
  CHECK(write_txns >= kCounters * (kNodes - 1));
  CHECK(c.errors == 0);
}

TEST_CASE("Readers see each writer's sequence grow, never go back") {
  // Writer w (one per node) stores (w << 48 | seq) in its slot; slots of
  // several writers share pages homed on every node. Readers on every node
  // check that each slot holds its writer's id and never decreases.
  constexpr int kNodes = 4;
  constexpr int kWrites = 5000;
  Cluster c(kNodes, 2);
  auto slot_gpa = [&](int w) {
    return c.HomeBase(w % kNodes) + 40 * 4096 + (w / kNodes) * 8 + w * 64;
  };
  std::atomic<int> bad{0};
  std::atomic<int> writers_done{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {  // writer n
      ++ready;
      while (ready < kNodes) std::this_thread::yield();
      for (uint64_t seq = 1; seq <= kWrites; ++seq) {
        *c.At(n, slot_gpa(n)) =
            (uint64_t{static_cast<uint32_t>(n)} << 48) | seq;
      }
      ++writers_done;
    });
    threads.emplace_back([&, n] {  // reader on node n
      std::vector<uint64_t> last(kNodes, 0);
      while (writers_done < kNodes) {
        for (int w = 0; w < kNodes; ++w) {
          const uint64_t v = *c.At(n, slot_gpa(w));
          if (v == 0) continue;
          const uint64_t seq = v & ((uint64_t{1} << 48) - 1);
          bad += (v >> 48) != static_cast<uint64_t>(w) || seq < last[w];
          last[w] = seq;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == 0);
  for (int n = 0; n < kNodes; ++n) {
    for (int w = 0; w < kNodes; ++w) {
      CHECK((*c.At(n, slot_gpa(w)) & 0xffff) == kWrites);
    }
  }
  CHECK(c.errors == 0);
}

// The owner of a DsmNode (the VMM) sends its own message types over the
// node's transport: one-way messages and blocking calls reach its handler,
// peer notifications reach its peer handler, the DSM keeps working.
TEST_CASE("DsmNode: the owner's own messages share the node's transport") {
  constexpr rdmax::MessageType kIpi = 0x1001, kMmio = 0x1002;
  std::atomic<int> ipis{0}, peers_up{0};
  std::atomic<rdmax::Transport*> replier{nullptr};
  Cluster c(2, 1, [&](int i, DsmOptions& o) {
    if (i == 1) {
      o.message_handler = [&](const rdmax::Message& m) {
        if (m.type == kIpi) ipis.fetch_add(1);
        if (m.type == kMmio && m.request_id != 0 && !m.payload.empty()) {
          const uint8_t answer[2] = {m.payload[0], 0x42};
          (void)replier.load()->Reply(rdmax::ReplyToken::For(m), kMmio, answer);
        }
      };
    }
    o.peer_handler = [&](rdmax::NodeId, rdmax::PeerState s) {
      if (s == rdmax::PeerState::kUp) peers_up.fetch_add(1);
    };
  });
  replier = &c.nodes[1]->transport();
  // Each node saw the other come up (the handler runs on the data thread
  // right after Start() may have returned).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (peers_up.load() < 2 && absl::Now() < deadline) {
    std::this_thread::yield();
  }
  CHECK(peers_up.load() == 2);
  rdmax::Transport& t0 = c.nodes[0]->transport();
  const uint8_t ipi[4] = {1, 2, 3, 4};
  REQUIRE(t0.Send(1, kIpi, ipi, absl::Now() + absl::Seconds(5)).ok());
  const uint8_t port[1] = {0x7};
  uint8_t response[16] = {};
  absl::StatusOr<size_t> n = t0.CallSync(1, kMmio, port, response);
  REQUIRE(n.ok());
  CHECK(*n == 2);
  CHECK(response[0] == 0x7);
  CHECK(response[1] == 0x42);
  // Node 0 has no handler: a request to it gets an error, not a hang.
  absl::StatusOr<size_t> none =
      c.nodes[1]->transport().CallSync(0, kMmio, port, response);
  CHECK(absl::IsUnimplemented(none.status()));
  // The DSM's own type is not the owner's to call.
  absl::StatusOr<size_t> dsm = t0.CallSync(1, kDsmFrameType, port, response);
  CHECK(absl::IsUnimplemented(dsm.status()));
  // The one-way message arrived (FIFO with the call answered after it)
  // and the DSM still works: node 1 reads what node 0 wrote.
  CHECK(ipis.load() == 1);
  const uint64_t gpa = c.HomeBase(0);
  *c.At(0, gpa) = 0xabcdef;
  CHECK(*c.At(1, gpa) == 0xabcdef);
  CHECK(c.errors.load() == 0);
}

uint64_t DsmStat(Cluster& c, int n, const char* name) {
  return c.nodes[n]->StatsJson()["dsm"][name].get<uint64_t>();
}

uint64_t HoldEscalations(Cluster& c, int n) {
  return DsmStat(c, n, "hold_escalations");
}

// The guest's tick (docs/PAGER.md, "Grant hold"): node 0 rewrites a
// seqlock-protected clock on a page it is home of, nodes 1 and 2 read it
// between ticks. Each tick takes the page from the readers and back, well
// within the hold's bounce window, but a reader is involved each time, so
// no hold grows (grown holds made every tick wait for them:
// BM_RemoteTick/tcp, 5.3 ms a tick instead of 0.1 ms), and no reader sees a
// torn clock. Ticks are 2 ms apart (the guest's are 4 ms): a write that
// comes back at once after a read took the page is a writer interrupted
// mid-update instead, whose hold does grow (src/dsm/grant_hold.h).
TEST_CASE(
    "A page one node writes at every tick and two read keeps short "
    "holds") {
  constexpr uint64_t kTicks = 300;
  Cluster c(3);
  const uint64_t gpa = c.HomeBase(0) + 50 * 4096;
  std::atomic<uint64_t> seen[3] = {0, 0, 0};  // last tick each reader saw
  std::atomic<int> torn{0};
  std::vector<std::thread> readers;
  for (int n = 1; n < 3; ++n) {
    readers.emplace_back([&, n] {
      volatile uint64_t* seq = c.At(n, gpa);
      volatile uint64_t* val = c.At(n, gpa + 64);
      while (seen[n] < kTicks) {
        const uint64_t s1 = *seq;
        const uint64_t v = *val;
        if ((s1 & 1) != 0 || *seq != s1) continue;  // mid-update: retry
        torn += v != s1 / 2;
        seen[n] = v;
      }
    });
  }
  volatile uint64_t* seq = c.At(0, gpa);
  volatile uint64_t* val = c.At(0, gpa + 64);
  for (uint64_t t = 1; t <= kTicks; ++t) {
    *seq = 2 * t - 1;
    *val = t;
    *seq = 2 * t;
    // The next tick once both readers have read this one: every tick
    // moves the page to both of them.
    while (seen[1] < t || seen[2] < t) std::this_thread::yield();
    absl::SleepFor(absl::Milliseconds(2));  // the tick period
  }
  for (auto& r : readers) r.join();
  CHECK(torn == 0);
  // The readers' holds never grow. The writer's grows only when a reader
  // took the page in the middle of its three stores (its thread preempted
  // there for longer than the hold, on a loaded host), never because of
  // the ticks themselves.
  CHECK(HoldEscalations(c, 1) == 0);
  CHECK(HoldEscalations(c, 2) == 0);
  CHECK(HoldEscalations(c, 0) == DsmStat(c, 0, "hold_interrupted_writes"));
  CHECK(HoldEscalations(c, 0) < kTicks / 4);
  // The page did move at every tick: each reader took it again each time,
  // by a remote miss or from the copy read refresh asked for at once.
  CHECK(c.Faults(1, FaultKind::kRemoteRead) +
            c.Faults(1, FaultKind::kLocalCopy) >=
        kTicks);
  CHECK(c.errors == 0);
}

// Two nodes writing one page in turn is the livelock the hold is for: its
// hold grows there.
TEST_CASE("A page two nodes write in turn grows its hold") {
  constexpr uint64_t kRounds = 200;
  Cluster c(2);
  const uint64_t gpa = c.HomeBase(0) + 60 * 4096;
  std::thread other([&] {
    for (uint64_t r = 1; r <= kRounds; ++r) {
      while (*c.At(1, gpa) != 2 * r - 1) std::this_thread::yield();
      *c.At(1, gpa) = 2 * r;
    }
  });
  for (uint64_t r = 1; r <= kRounds; ++r) {
    while (*c.At(0, gpa) != 2 * r - 2) std::this_thread::yield();
    *c.At(0, gpa) = 2 * r - 1;
  }
  other.join();
  CHECK(*c.At(0, gpa) == 2 * kRounds);
  CHECK(HoldEscalations(c, 0) + HoldEscalations(c, 1) > 0);
  CHECK(c.errors == 0);
}

}  // namespace
}  // namespace ssihv::pager
