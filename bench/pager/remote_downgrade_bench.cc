// Background downgrade (docs/PAGER.md, "Background downgrade") where it
// helps and where it costs, each with and without it in the same run:
//
//   BM_RemoteIdleRead/tcp     the home rewrites kIdlePages pages node 1 read
//                             before and leaves them alone kIdleGap (timing
//                             paused); node 1 then reads each, timed: with
//                             the home's background downgrade (1 ms) they
//                             are Shared there by then (no downgrade on the
//                             read's path); /tcp_no_downgrade: each read
//                             waits for the home to write-protect the page
//   BM_HomeIdleRewrite/tcp    node 1 reads the pages, the home rewrites them
//                             and kIdleGap later rewrites them again, that
//                             second rewrite timed (the command to the home
//                             included): with background downgrade the
//                             home's first store to each page after the gap
//                             is a write-protect fault, until the policy
//                             gives the pages up; /tcp_no_downgrade: plain
//                             stores. us_per_page: the timed rewrite per
//                             page; wasted_per_page: downgrades the rewrite
//                             undid, per page and iteration.
#include <cstdint>
#include <vector>

#include "absl/time/clock.h"
#include "bench_util.h"
#include "remote_cluster.h"
#include "ssihv/pager/dsm_node.h"

namespace ssihv::bench {
namespace {

constexpr uint64_t kIdlePages = 64;
// Longer than the home's downgrade delay (1 ms).
constexpr absl::Duration kIdleGap = absl::Milliseconds(5);

// The home's delay when on (off by default in DsmOptions).
absl::Duration HomeDowngrade(bool on) {
  return on ? absl::Milliseconds(1) : absl::ZeroDuration();
}

void BM_RemoteIdleRead(benchmark::State& state, bool downgrade) {
  auto c =
      RemoteCluster::Start(state, {.home_downgrade = HomeDowngrade(downgrade)});
  if (!c) return;
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations * kIdlePages);
  uint64_t wrong = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const uint64_t round = c->Rewrite(0, kIdlePages);
    if (round == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    absl::SleepFor(kIdleGap);
    state.ResumeTiming();
    for (uint64_t page = 0; page < kIdlePages; ++page) {
      const int64_t t0 = NowNs();
      const uint64_t v = *c->At(page);
      ns.push_back(NowNs() - t0);
      wrong += !RemoteCluster::Check(round, page, v);
    }
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  SetPercentiles(state, ns);
  const double reads =
      static_cast<double>(state.iterations()) * static_cast<double>(kIdlePages);
  state.counters["useful_per_read"] =
      static_cast<double>(c->HomeStat(RemoteCluster::HomeCounter::kUseful)) /
      reads;
  PrintStats(c->node());
}

void BM_HomeIdleRewrite(benchmark::State& state, bool downgrade) {
  auto c =
      RemoteCluster::Start(state, {.home_downgrade = HomeDowngrade(downgrade)});
  if (!c) return;
  uint64_t wrong = 0;
  int64_t rewrite_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const uint64_t round = c->Rewrite(0, kIdlePages);
    for (uint64_t page = 0; page < kIdlePages && round != 0; ++page) {
      wrong += !RemoteCluster::Check(round, page, *c->At(page));
    }
    const bool ok = round != 0 && c->Rewrite(0, kIdlePages) != 0;
    absl::SleepFor(kIdleGap);
    state.ResumeTiming();
    const int64_t t0 = NowNs();
    if (!ok || c->Rewrite(0, kIdlePages) == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    rewrite_ns += NowNs() - t0;
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  const double writes =
      static_cast<double>(state.iterations()) * static_cast<double>(kIdlePages);
  state.counters["us_per_page"] =
      static_cast<double>(rewrite_ns) / 1e3 / writes;
  const uint64_t wasted = c->HomeStat(RemoteCluster::HomeCounter::kWasted);
  state.counters["wasted_per_page"] = static_cast<double>(wasted) / writes;
  PrintStats(c->node());
}

}  // namespace

void RegisterDowngradeBenchmarks() {
  // Fixed counts: each iteration also waits kIdleGap, timing paused.
  benchmark::RegisterBenchmark("BM_RemoteIdleRead/tcp", BM_RemoteIdleRead, true)
      ->Iterations(300);
  benchmark::RegisterBenchmark("BM_RemoteIdleRead/tcp_no_downgrade",
                               BM_RemoteIdleRead, false)
      ->Iterations(300);
  benchmark::RegisterBenchmark("BM_HomeIdleRewrite/tcp", BM_HomeIdleRewrite,
                               true)
      ->Iterations(300);
  benchmark::RegisterBenchmark("BM_HomeIdleRewrite/tcp_no_downgrade",
                               BM_HomeIdleRewrite, false)
      ->Iterations(300);
}

}  // namespace ssihv::bench
