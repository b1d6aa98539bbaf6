// Remote faults through the DSM node, against floors in the same binary and
// run (docs/PERFORMANCE.md, "Pager"):
//
//   BM_RemoteFault/tcp         a read fault on a page the home holds
//                              Modified (it must write-protect it: the
//                              protocol's downgrade); read against
//                              BM_Bound/tcp_lane_wp (remote_bound.cc)
//   BM_RemoteFault/tcp_shared  the same, the home holding the page Shared
//                              (a third node read it first: no downgrade);
//                              against BM_Bound/tcp_lane
//   BM_RemoteFault/rdma        (lab VM) against BM_Floor/uffd_copy +
//                              BM_Floor/ib_read_4k
//   BM_RemoteUpgrade/tcp       a write to a page this node and its home
//                              both hold Shared (read first, untimed): the
//                              home drops its copy (a zap) and grants; the
//                              tick-time pattern of a distributed boot, one
//                              node writing what another reads
//   BM_RemoteTick/tcp          the home rewrites one page and this node
//                              reads it back, in turn, each iteration
//                              timed whole (the guest's timekeeper and
//                              jiffies at every tick: one node writes, the
//                              others read); the grant hold must not grow
//   BM_RemoteTickRead/tcp      the home writes one page, this node reads
//                              it 1 ms later, the read timed: with read
//                              refresh the page is back here by then
//                              (/tcp_no_refresh: a remote miss each time)
//   BM_RemoteSequentialRead/tcp  64 MiB homed on the other node read once,
//                              page after page; bytes/s against
//                              BM_Floor/tcp_stream (with the default remote
//                              read-ahead; /tcp_no_read_ahead without);
//                              also the home's rewrite between walks per
//                              page (rewrite_us_per_page: one invalidation
//                              of our copy each; rewrite_first_us_per_page:
//                              the first, with nothing to take back)
//   BM_RemoteFaultThroughput/tcp/threads:N  N threads reading distinct
//                              remote pages; faults/s
//   BM_RemoteFirstTouch/tcp    64 MiB homed on the other node and never
//                              touched, written once, page after page (a
//                              guest zeroing remote memory it allocated);
//                              bytes/s, with the default first-touch write
//                              runs (/tcp_no_write_runs without); one
//                              iteration per fresh cluster
//
// The home is a forked process running DsmNode 0 (and for tcp_shared
// DsmNode 2, the third node); this process is node 1. Between rounds the
// home rewrites the pages (timing paused), which invalidates node 1's
// copies. SSIHV_BENCH_STATS=1 prints node 1's DsmNode::StatsJson() after
// each run, and the home's when it exits; SSIHV_BENCH_READ_AHEAD_PAGES=N
// replaces the default read-ahead bound of the benchmarks that read ahead.
#include <barrier>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "bench_util.h"
#include "remote_cluster.h"
#include "ssihv/pager/dsm_node.h"

namespace ssihv::bench {
namespace {

// The loop of the single-fault benchmarks. Every kRemoteWindow iterations
// (and before the first) the home rewrites the window, timing paused, which
// invalidates our copies. kRead: each iteration times the read of the next
// page. kWrite: node 1 first reads the whole window (paused), so that both
// nodes hold every page Shared; each iteration times a write (an upgrade).
enum class Access { kRead, kWrite };

void WindowLoop(benchmark::State& state, RemoteCluster& c, Access access) {
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t page = kRemoteWindow, round = 0, wrong = 0;
  for (auto _ : state) {
    if (page == kRemoteWindow) {
      state.PauseTiming();
      page = 0;
      round = c.Rewrite(0, kRemoteWindow);
      if (round == 0) {
        state.SkipWithError("the home node stopped answering");
        break;
      }
      if (access == Access::kWrite) {
        for (uint64_t p = 0; p < kRemoteWindow; ++p) {
          wrong += !RemoteCluster::Check(round, p, *c.At(p));
        }
      }
      state.ResumeTiming();
    }
    volatile uint64_t* p = c.At(page);
    if (access == Access::kRead) {
      const int64_t t0 = NowNs();
      const uint64_t v = *p;
      ns.push_back(NowNs() - t0);
      wrong += !RemoteCluster::Check(round, page, v);
    } else {
      const int64_t t0 = NowNs();
      *p = 0;
      ns.push_back(NowNs() - t0);
    }
    ++page;
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  SetPercentiles(state, ns);
  PrintStats(c.node());
}

void BM_RemoteFault(benchmark::State& state, const char* transport,
                    bool shared) {
  auto c =
      RemoteCluster::Start(state, {.transport = transport, .shared = shared});
  if (c) WindowLoop(state, *c, Access::kRead);
}

void BM_RemoteUpgrade(benchmark::State& state) {
  auto c = RemoteCluster::Start(state, {});
  if (c) WindowLoop(state, *c, Access::kWrite);
}

// One page, written by the home and read here in turn, each round timed
// whole: the home's write (an upgrade that takes our copy) and our read
// miss (a downgrade of the home's copy), plus the command to the home.
void BM_RemoteTick(benchmark::State& state) {
  auto c = RemoteCluster::Start(state, {});
  if (!c) return;
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t wrong = 0;
  for (auto _ : state) {
    const int64_t t0 = NowNs();
    const uint64_t round = c->Rewrite(0, 1);
    if (round == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    wrong += !RemoteCluster::Check(round, 0, *c->At(0));
    ns.push_back(NowNs() - t0);
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  SetPercentiles(state, ns);
  PrintStats(c->node());
}

// The tick seen from a reader: the home writes one page (timing paused),
// and this node reads it kTickGap later, the read timed (a guest CPU's
// tick reading jiffies some time after the timekeeping CPU wrote it).
// With read refresh the page is back here by then and the read takes it
// locally; without, the read is a remote miss. write_us: the home's write
// per tick, the command to it included (an upgrade that takes our copy
// either way, as the page was read after every write).
constexpr absl::Duration kTickGap = absl::Milliseconds(1);

void BM_RemoteTickRead(benchmark::State& state, bool refresh) {
  auto c = RemoteCluster::Start(state, {.refresh = refresh});
  if (!c) return;
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t wrong = 0;
  int64_t write_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const int64_t w0 = NowNs();
    const uint64_t round = c->Rewrite(0, 1);
    write_ns += NowNs() - w0;
    if (round == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    absl::SleepFor(kTickGap);
    state.ResumeTiming();
    const int64_t t0 = NowNs();
    const uint64_t v = *c->At(0);
    ns.push_back(NowNs() - t0);
    wrong += !RemoteCluster::Check(round, 0, v);
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  SetPercentiles(state, ns);
  state.counters["write_us"] = static_cast<double>(write_ns) / 1e3 /
                               static_cast<double>(state.iterations());
  PrintStats(c->node());
}

// 64 MiB homed on node 0, read once per iteration, one access per page.
// bytes_per_s is over the wall time of the reads only (the rewrites that
// invalidate our copies between iterations are not counted).
void BM_RemoteSequentialRead(benchmark::State& state, uint32_t read_ahead) {
  auto c = RemoteCluster::Start(state, {.read_ahead = read_ahead});
  if (!c) return;
  uint64_t wrong = 0;
  int64_t read_ns = 0;
  // The home's rewrite takes every page back from us (one invalidation per
  // page): timed apart from the reads, the first one (nothing to take back)
  // as its reference.
  int64_t first_rewrite_ns = 0;
  int64_t rewrite_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const int64_t r0 = NowNs();
    const uint64_t round = c->Rewrite(0, kHomePages);
    (round == 1 ? first_rewrite_ns : rewrite_ns) += NowNs() - r0;
    state.ResumeTiming();
    if (round == 0) {
      state.SkipWithError("the home node stopped answering");
      break;
    }
    const int64_t t0 = NowNs();
    for (uint64_t page = 0; page < kHomePages; ++page) {
      wrong += !RemoteCluster::Check(round, page, *c->At(page));
    }
    read_ns += NowNs() - t0;
  }
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  state.counters["bytes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kHomePages * kPage) * 1e9 /
      static_cast<double>(read_ns));
  state.counters["rewrite_first_us_per_page"] =
      static_cast<double>(first_rewrite_ns) / 1e3 / kHomePages;
  if (state.iterations() > 1) {
    state.counters["rewrite_us_per_page"] =
        static_cast<double>(rewrite_ns) / 1e3 / kHomePages /
        static_cast<double>(state.iterations() - 1);
  }
  PrintStats(c->node());
}

// 64 MiB homed on node 0 that nobody touched, written once (one word per
// page), as a guest zeroing memory it allocated on another node would. The
// pages are pristine only once, so each iteration (one) has its own
// cluster; bytes_per_s is over the writes' wall time (pager_dsm_test checks
// that the home reads back what such a walk wrote).
void BM_RemoteFirstTouch(benchmark::State& state, uint32_t write_runs) {
  int64_t write_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto c = RemoteCluster::Start(state, {.write_runs = write_runs});
    if (!c) return;
    state.ResumeTiming();
    const int64_t t0 = NowNs();
    for (uint64_t page = 0; page < kHomePages; ++page) {
      *c->At(page) = Pattern(1, page);
    }
    write_ns += NowNs() - t0;
    state.PauseTiming();
    PrintStats(c->node());
    c.reset();
    state.ResumeTiming();
  }
  state.counters["bytes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kHomePages * kPage) * 1e9 /
      static_cast<double>(write_ns));
}

// Thread 0 sets up before the loop's start barrier and tears down after its
// end barrier; each thread reads its own slice of the home's pages, and has
// the home rewrite that slice (timing paused) when it has read it all. The
// threads read and rewrite in step (every thread runs the same iterations):
// a rewrite invalidates the slice's 2048 pages, one zap and TLB shoot-down
// each, and must not be timed as another thread's faults.
std::unique_ptr<RemoteCluster> g_cluster;
std::unique_ptr<std::barrier<>> g_in_step;
constexpr uint64_t kSlicePages = 2048;

void BM_RemoteFaultThroughput(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_cluster = RemoteCluster::Start(state, {});
    g_in_step = std::make_unique<std::barrier<>>(state.threads());
  }
  const uint64_t first = state.thread_index() * kSlicePages;
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t next = kSlicePages, round = 0, wrong = 0;
  int64_t active = 0, segment = 0;
  for (auto _ : state) {
    if (next == kSlicePages) {
      if (!g_cluster) {
        state.SkipWithError("setup failed");
        break;
      }
      if (segment != 0) active += NowNs() - segment;
      state.PauseTiming();
      g_in_step->arrive_and_wait();  // every thread has read its slice
      round = g_cluster->Rewrite(first, kSlicePages);
      next = 0;
      if (round == 0) {
        g_in_step->arrive_and_drop();
        state.SkipWithError("the home node stopped answering");
        break;
      }
      g_in_step->arrive_and_wait();  // every slice is rewritten
      state.ResumeTiming();
      segment = NowNs();
    }
    volatile uint64_t* p = g_cluster->At(first + next);
    const int64_t t0 = NowNs();
    const uint64_t v = *p;
    ns.push_back(NowNs() - t0);
    wrong += !RemoteCluster::Check(round, first + next, v);
    ++next;
  }
  if (segment != 0) active += NowNs() - segment;
  if (wrong != 0) state.SkipWithError("read stale or wrong page bytes");
  // Summed over threads: the total rate.
  if (active > 0) {
    state.counters["faults_per_s"] = benchmark::Counter(
        static_cast<double>(ns.size()) * 1e9 / static_cast<double>(active));
  }
  SetPercentiles(state, ns);
  if (state.thread_index() == 0 && g_cluster) {
    PrintStats(g_cluster->node());
    g_cluster.reset();
    g_in_step.reset();
  }
}

}  // namespace

void RegisterDowngradeBenchmarks();    // remote_downgrade_bench.cc
void RegisterRemoteImageBenchmarks();  // remote_image_bench.cc

void RegisterRemoteBenchmarks() {
  RegisterTcpFloor();  // bench/common: the same floors as bench/transport's
  RegisterTcpStreamFloor();
  RegisterIbFloor();
  benchmark::RegisterBenchmark("BM_RemoteFault/tcp", BM_RemoteFault, "tcp",
                               false);
  benchmark::RegisterBenchmark("BM_RemoteFault/tcp_shared", BM_RemoteFault,
                               "tcp", true);
  benchmark::RegisterBenchmark("BM_RemoteFault/rdma", BM_RemoteFault, "rdma",
                               false);
  benchmark::RegisterBenchmark("BM_RemoteFault/rdma_shared", BM_RemoteFault,
                               "rdma", true);
  benchmark::RegisterBenchmark("BM_RemoteUpgrade/tcp", BM_RemoteUpgrade);
  benchmark::RegisterBenchmark("BM_RemoteTick/tcp", BM_RemoteTick);
  // A fixed count: each iteration also waits kTickGap, timing paused.
  benchmark::RegisterBenchmark("BM_RemoteTickRead/tcp", BM_RemoteTickRead, true)
      ->Iterations(2000);
  benchmark::RegisterBenchmark("BM_RemoteTickRead/tcp_no_refresh",
                               BM_RemoteTickRead, false)
      ->Iterations(2000);
  benchmark::RegisterBenchmark("BM_RemoteSequentialRead/tcp",
                               BM_RemoteSequentialRead,
                               pager::DsmOptions().read_ahead_pages);
  benchmark::RegisterBenchmark("BM_RemoteSequentialRead/tcp_no_read_ahead",
                               BM_RemoteSequentialRead, 0u);
  benchmark::RegisterBenchmark("BM_RemoteFirstTouch/tcp", BM_RemoteFirstTouch,
                               pager::DsmOptions().write_run_pages)
      ->Iterations(1);
  benchmark::RegisterBenchmark("BM_RemoteFirstTouch/tcp_no_write_runs",
                               BM_RemoteFirstTouch, 0u)
      ->Iterations(1);
  RegisterDowngradeBenchmarks();
  RegisterRemoteImageBenchmarks();
  benchmark::RegisterBenchmark("BM_RemoteFaultThroughput/tcp",
                               BM_RemoteFaultThroughput)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4);
}

}  // namespace ssihv::bench
