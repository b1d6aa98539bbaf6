// libdirectory benchmarks: the cost of the protocol's own work per fault
// (agent calls on dense per-page state for 1 GiB per node), against a floor
// of touching the same state raw, and the messages each kind of fault needs.
//
//   BM_Floor/state_touch       random read-modify-write of one node-agent
//                              byte and one 32-byte directory entry: the
//                              memory traffic a directory operation cannot
//                              avoid
//   BM_DirectoryOps/<fault>    one whole fault transaction through real
//                              Nodes; items = directory operations (agent
//                              calls), counters: msgs_per_fault, ops_per_fault
//   BM_WriteMissShared/k       a write miss on a page Shared by k nodes
//   BM_UpgradeShared/k         an upgrade with k other sharers
//   BM_HomeOps/threads:T       home-agent calls from T threads on one Node
//                              (disjoint pages, as the pager's page locks)
//   BM_Codec                   header encode + decode
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <random>
#include <vector>

#include "ssihv/directory/message.h"
#include "ssihv/directory/node.h"

namespace {

namespace dir = ssihv::directory;
using dir::Access;
using dir::NodeId;
using dir::PageId;

constexpr uint64_t kPagesPerNode = 262144;  // 1 GiB

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "directory_bench: %s\n", s.ToString().c_str());
    std::abort();
  }
}

// Nodes joined by one FIFO queue (in-order delivery, the failure-free
// path): every agent call is one directory operation.
class Bus {
 public:
  Bus(uint32_t nodes, uint64_t pages_per_node, bool pull = false) {
    dir::PageSpace space = *dir::PageSpace::FromPageCounts(
        std::vector<uint64_t>(nodes, pages_per_node));
    dir::Node::Options o;
    o.allow_pull = pull;
    for (NodeId n = 0; n < nodes; ++n)
      nodes_.push_back(*dir::Node::Create(space, n, o));
  }

  /// A fault at n, run until the cluster is quiet.
  void Fault(NodeId n, PageId p, Access a) {
    out_.Clear();
    Check(nodes_[n].OnFault(p, a, &out_));
    ++ops_;
    Perform(n);
    Drain();
  }
  uint64_t messages() const { return messages_; }
  uint64_t ops() const { return ops_; }
  dir::Node& node(NodeId n) { return nodes_[n]; }

 private:
  struct Item {
    NodeId from, to;
    dir::Message msg;
  };
  void Perform(NodeId n) {
    for (const dir::Effect& e : out_.effects) {
      if (e.type == dir::EffectType::kSend) {
        ++messages_;
        queue_.push_back({n, e.node, e.msg});
      } else if (e.type == dir::EffectType::kFetch) {
        fetches_.push_back({n, e.node, e.msg});
        fetches_.back().msg.page = e.page;
      } else if (e.type == dir::EffectType::kDefer) {
        deferred_.push_back({e.node, n, e.msg});
      }
    }
    out_.Clear();
  }
  void Drain() {
    while (!queue_.empty() || !fetches_.empty() || !deferred_.empty()) {
      while (!queue_.empty()) {
        Item it = queue_.front();
        queue_.pop_front();
        Check(nodes_[it.to].OnMessage(it.from, it.msg, &out_));
        ++ops_;
        Perform(it.to);
      }
      if (!fetches_.empty()) {
        Item f = fetches_.front();
        fetches_.pop_front();
        Check(nodes_[f.from].OnFetchDone(f.msg.page, true, &out_));
        ++ops_;
        Perform(f.from);
      } else if (!deferred_.empty()) {
        Item d = deferred_.front();  // from = sender, to = holder
        deferred_.pop_front();
        Check(nodes_[d.to].Resubmit(d.from, d.msg, &out_));
        ++ops_;
        Perform(d.to);
      }
    }
  }

  std::vector<dir::Node> nodes_;
  std::deque<Item> queue_, fetches_, deferred_;
  dir::Output out_;
  uint64_t messages_ = 0;
  uint64_t ops_ = 0;
};

// Page i of node 0's range in a random order (cache-unfriendly, as guest
// faults over 1 GiB are).
std::vector<PageId> Shuffled(uint64_t n) {
  std::vector<PageId> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = i;
  std::shuffle(v.begin(), v.end(), std::mt19937_64(42));
  return v;
}

void BM_Floor_StateTouch(benchmark::State& state) {
  std::vector<uint8_t> agent(4 * kPagesPerNode);
  std::vector<std::array<uint64_t, 4>> dir_entries(kPagesPerNode);
  std::vector<PageId> order = Shuffled(kPagesPerNode);
  size_t i = 0;
  for (auto _ : state) {
    PageId p = order[i];
    i = (i + 1) % order.size();
    agent[p] ^= 1;
    dir_entries[p][0] |= 2;
    benchmark::DoNotOptimize(agent[p]);
    benchmark::DoNotOptimize(dir_entries[p][0]);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Floor_StateTouch)->Name("BM_Floor/state_touch");

// One kind of fault on fresh pages of node 0's range, in batches: `prepare`
// brings a batch of pages to the state the measured fault needs (not
// timed), then the batch's faults are timed. ns_per_fault, msgs_per_fault
// and ops_per_fault count the measured faults only.
constexpr size_t kBatch = 512;

template <typename Prepare, typename Measure>
void FaultLoop(benchmark::State& state, uint32_t nodes, Prepare prepare,
               Measure measure) {
  std::vector<PageId> order = Shuffled(kPagesPerNode);
  auto bus = std::make_unique<Bus>(nodes, kPagesPerNode);
  size_t next = 0;
  uint64_t msgs = 0, ops = 0, faults = 0;
  for (auto _ : state) {
    state.PauseTiming();
    if (next + kBatch > order.size()) {
      bus = std::make_unique<Bus>(nodes, kPagesPerNode);
      next = 0;
    }
    const PageId* batch = &order[next];
    next += kBatch;
    for (size_t i = 0; i < kBatch; ++i) prepare(*bus, batch[i]);
    uint64_t m0 = bus->messages(), o0 = bus->ops();
    state.ResumeTiming();
    for (size_t i = 0; i < kBatch; ++i) measure(*bus, batch[i]);
    msgs += bus->messages() - m0;
    ops += bus->ops() - o0;
    faults += kBatch;
  }
  state.SetItemsProcessed(static_cast<int64_t>(ops));
  state.counters["faults_per_second"] = benchmark::Counter(
      static_cast<double>(faults), benchmark::Counter::kIsRate);
  state.counters["msgs_per_fault"] = benchmark::Counter(
      static_cast<double>(msgs) / static_cast<double>(faults));
  state.counters["ops_per_fault"] = benchmark::Counter(
      static_cast<double>(ops) / static_cast<double>(faults));
}

void BM_ReadMissHome(benchmark::State& state) {
  FaultLoop(
      state, 2, [](Bus&, PageId) {},
      [](Bus& b, PageId p) { b.Fault(1, p, Access::kRead); });
}
BENCHMARK(BM_ReadMissHome)->Name("BM_DirectoryOps/read_miss");

void BM_ReadMissOwner(benchmark::State& state) {
  FaultLoop(
      state, 3, [](Bus& b, PageId p) { b.Fault(2, p, Access::kWrite); },
      [](Bus& b, PageId p) { b.Fault(1, p, Access::kRead); });
}
BENCHMARK(BM_ReadMissOwner)->Name("BM_DirectoryOps/read_miss_3hop");

void BM_WriteMissHome(benchmark::State& state) {
  FaultLoop(
      state, 2, [](Bus&, PageId) {},
      [](Bus& b, PageId p) { b.Fault(1, p, Access::kWrite); });
}
BENCHMARK(BM_WriteMissHome)->Name("BM_DirectoryOps/write_miss");

void BM_UpgradeHome(benchmark::State& state) {
  FaultLoop(
      state, 2, [](Bus& b, PageId p) { b.Fault(1, p, Access::kRead); },
      [](Bus& b, PageId p) { b.Fault(1, p, Access::kWrite); });
}
BENCHMARK(BM_UpgradeHome)->Name("BM_DirectoryOps/upgrade");

void BM_LocalHit(benchmark::State& state) {
  FaultLoop(
      state, 2, [](Bus&, PageId) {},
      [](Bus& b, PageId p) { b.Fault(0, p, Access::kWrite); });
}
BENCHMARK(BM_LocalHit)->Name("BM_DirectoryOps/local_first_touch");

// k sharers: the home and nodes 1..k-1 (or nodes 1..k without the home).
void BM_WriteMissShared(benchmark::State& state) {
  auto k = static_cast<NodeId>(state.range(0));
  bool with_home = state.range(1) != 0;
  FaultLoop(
      state, k + 2,
      [k, with_home](Bus& b, PageId p) {
        if (!with_home) b.Fault(1, p, Access::kWrite);
        for (NodeId n = with_home ? 1 : 2; n <= (with_home ? k - 1 : k); ++n) {
          b.Fault(n, p, Access::kRead);
        }
      },
      [k](Bus& b, PageId p) { b.Fault(k + 1, p, Access::kWrite); });
}
BENCHMARK(BM_WriteMissShared)
    ->ArgNames({"k", "home"})
    ->ArgsProduct({{1, 2, 4, 8}, {1, 0}});

void BM_UpgradeShared(benchmark::State& state) {
  auto k = static_cast<NodeId>(state.range(0));
  FaultLoop(
      state, k + 2,
      [k](Bus& b, PageId p) {
        for (NodeId n = 1; n <= k; ++n) b.Fault(n, p, Access::kRead);
      },
      [](Bus& b, PageId p) { b.Fault(1, p, Access::kWrite); });
}
BENCHMARK(BM_UpgradeShared)->ArgName("k")->Arg(1)->Arg(2)->Arg(4)->Arg(8);

// The home agent's share of a remote read, from several threads on one
// Node, each on its own pages (what the pager's page locks allow).
void BM_HomeOps(benchmark::State& state) {
  static dir::Node* node = nullptr;
  if (state.thread_index() == 0) {
    dir::PageSpace space =
        *dir::PageSpace::FromPageCounts({kPagesPerNode, kPagesPerNode});
    node = new dir::Node(*dir::Node::Create(space, 0));
  }
  // google-benchmark starts the timed loop of all threads together.
  dir::Output out;
  uint64_t stride = kPagesPerNode / static_cast<uint64_t>(state.threads());
  PageId first = stride * static_cast<uint64_t>(state.thread_index());
  PageId p = first;
  uint64_t ops = 0;
  // Hands back what the hold deferred (the fault is notionally retried).
  auto settle = [&](uint64_t* ops) {
    for (size_t i = 0; i < out.effects.size(); ++i) {
      if (out.effects[i].type != dir::EffectType::kDefer) continue;
      dir::Effect e = out.effects[i];
      Check(node->Resubmit(e.node, e.msg, &out));
      ++*ops;
    }
    out.Clear();
  };
  for (auto _ : state) {
    dir::Message m;
    m.type = dir::MsgType::kReadReq;
    m.page = p;
    // + the local forward, whose kData ends the transaction (no kDone)
    Check(node->OnMessage(1, m, &out));
    settle(&ops);
    Check(node->OnFault(p, Access::kWrite, &out));  // upgrade: invalidate 1
    settle(&ops);
    m.type = dir::MsgType::kInvAck;
    Check(node->OnMessage(1, m, &out));  // + local grant, done
    settle(&ops);
    ops += 3;
    if (++p == first + stride) p = first;
  }
  state.SetItemsProcessed(static_cast<int64_t>(ops));
  if (state.thread_index() == 0) {
    delete node;
    node = nullptr;
  }
}
BENCHMARK(BM_HomeOps)->Threads(1)->Threads(2)->UseRealTime();

void BM_Codec(benchmark::State& state) {
  dir::PageSpace space =
      *dir::PageSpace::FromPageCounts({kPagesPerNode, kPagesPerNode});
  dir::Message m;
  m.type = dir::MsgType::kFwdRead;
  m.node = 1;
  uint8_t buf[dir::kHeaderSize];
  for (auto _ : state) {
    m.page = (m.page + 7919) % space.num_pages();
    dir::EncodeHeader(m, buf);
    absl::StatusOr<dir::DecodedFrame> d =
        dir::Decode(absl::Span<const uint8_t>(buf, sizeof(buf)), space);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Codec);

}  // namespace

BENCHMARK_MAIN();
