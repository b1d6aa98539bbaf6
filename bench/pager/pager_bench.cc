// libpager benchmarks against BM_Floor/uffd_copy (uffd_floor.cc), same
// binary, same run. Names are fixed by issue 6:
//   BM_LocalFault/zero, BM_LocalFault/copy   first touch through libpager
// plus BM_LocalFault/zero_read (read faults map the zero page) and
// BM_LocalFault/image (ImageSource from page cache).
//   BM_FaultThroughput/threads:1, :2         faults/s with N faulting threads
//   BM_RemoteFault/tcp, /rdma                remote_bench.cc
//   BM_Bound/tcp_*                          remote_bound.cc (raw lower bound)
// each with counters p50_us and p99_us. docs/PERFORMANCE.md ("Pager") has the
// command and the ratios.
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "bench_util.h"
#include "ssihv/base/file_util.h"
#include "ssihv/pager/pager.h"

namespace ssihv::bench {

void RegisterFloorBenchmarks();
void RegisterRemoteBenchmarks();  // remote_bench.cc
void RegisterBoundBenchmarks();   // remote_bound.cc

namespace {

using pager::GuestMemory;
using pager::ImageSource;
using pager::Pager;
using pager::PageSource;

/// Guest RAM of `pages` pages served by `source` with `fault_threads`.
struct Setup {
  GuestMemory mem;
  std::unique_ptr<Pager> pager;
};

std::unique_ptr<Setup> MakeSetup(benchmark::State& state, uint64_t pages,
                                 std::shared_ptr<PageSource> source,
                                 int fault_threads) {
  auto setup = std::make_unique<Setup>();
  auto mem = GuestMemory::Create(pages * kPage);
  pager::PagerOptions options;
  options.fault_threads = fault_threads;
  auto p = mem.ok() ? Pager::Create(options)
                    : absl::StatusOr<std::unique_ptr<Pager>>(mem.status());
  absl::Status st = p.status();
  if (st.ok()) {
    setup->mem = *std::move(mem);
    setup->pager = *std::move(p);
    st = setup->pager->RegisterGuestMemory(setup->mem, 0, pages * kPage, 0);
  }
  if (st.ok()) st = setup->pager->SetSource(std::move(source));
  if (st.ok()) st = setup->pager->Start();
  if (!st.ok()) {
    state.SkipWithError(std::string(st.message()).c_str());
    return nullptr;
  }
  return setup;
}

/// Touches one new page per iteration; discards the window when exhausted.
void RunFirstTouch(benchmark::State& state, Setup& s, uint64_t pages,
                   bool write) {
  std::vector<int64_t> ns =
      WalkWindow(state, s.mem.data(), pages,
                 [write](uint8_t* page) { Access(page, write); });
  SetPercentiles(state, ns);
}

void BM_LocalFaultZero(benchmark::State& state) {
  const uint64_t pages = std::min<uint64_t>(state.max_iterations, kWindowPages);
  auto s = MakeSetup(state, pages, std::make_shared<pager::ZeroSource>(), 1);
  if (s) RunFirstTouch(state, *s, pages, /*write=*/true);
}

void BM_LocalFaultZeroRead(benchmark::State& state) {
  const uint64_t pages = std::min<uint64_t>(state.max_iterations, kWindowPages);
  auto s = MakeSetup(state, pages, std::make_shared<pager::ZeroSource>(), 1);
  if (s) RunFirstTouch(state, *s, pages, /*write=*/false);
}

// A 16 MiB image in tmpfs, mapped repeatedly over the window by extents:
// faults copy from page cache, as a snapshot restore does.
constexpr uint64_t kImagePages = 4096;

std::shared_ptr<PageSource> MakeImageSource(uint64_t pages,
                                            benchmark::State& state) {
  std::string path = "/dev/shm/ssihv-pager-bench-" + std::to_string(getpid());
  std::string bytes(kImagePages * kPage, '\0');
  for (size_t i = 0; i < bytes.size(); i += 64) bytes[i] = static_cast<char>(i);
  if (!base::WriteFileAtomically(path, bytes).ok()) {
    state.SkipWithError("cannot write the image in /dev/shm");
    return nullptr;
  }
  std::vector<pager::ImageExtent> extents;
  for (uint64_t gpa = 0; gpa < pages * kPage; gpa += kImagePages * kPage) {
    extents.push_back(
        {.gpa = gpa,
         .file_offset = 0,
         .size = std::min(kImagePages * kPage, pages * kPage - gpa)});
  }
  auto src = ImageSource::Open(path, std::move(extents));
  unlink(path.c_str());  // the mapping keeps the bytes
  if (!src.ok()) {
    state.SkipWithError(std::string(src.status().message()).c_str());
    return nullptr;
  }
  return std::shared_ptr<PageSource>(*std::move(src));
}

// The same bytes as the floor's handler copies (one static page), through
// the pager: the ratio to BM_Floor/uffd_copy is the library's overhead.
class StaticPageSource final : public PageSource {
 public:
  void OnFault(const pager::Fault& f, pager::Resolver& r) override {
    absl::Status st = r.Copy(f, page_, false, pager::FaultKind::kLocalCopy);
    if (!st.ok()) r.Fail(f, st);
  }
  std::string_view name() const override { return "static-page"; }

 private:
  alignas(4096) uint8_t page_[kPage] = {1};
};

void BM_LocalFaultCopy(benchmark::State& state) {
  const uint64_t pages = std::min<uint64_t>(state.max_iterations, kWindowPages);
  auto s = MakeSetup(state, pages, std::make_shared<StaticPageSource>(), 1);
  if (s) RunFirstTouch(state, *s, pages, /*write=*/true);
}

// ImageSource restoring from a 16 MiB image in page cache: what a snapshot
// restore costs (the source bytes are mostly not in the CPU caches).
void BM_LocalFaultImage(benchmark::State& state) {
  const uint64_t pages = std::min<uint64_t>(state.max_iterations, kWindowPages);
  auto source = MakeImageSource(pages, state);
  if (!source) return;
  auto s = MakeSetup(state, pages, source, 1);
  if (s) RunFirstTouch(state, *s, pages, /*write=*/true);
}

// Shared by the benchmark threads; thread 0 sets up before the loop's start
// barrier and tears down after its end barrier.
std::unique_ptr<Setup> g_throughput;
uint64_t g_slice_pages = 0;

void BM_FaultThroughput(benchmark::State& state) {
  const int threads = state.threads();
  if (state.thread_index() == 0) {
    g_slice_pages = std::min<uint64_t>(state.max_iterations, kWindowPages);
    g_throughput = MakeSetup(state, g_slice_pages * threads,
                             std::make_shared<pager::ZeroSource>(), 1);
  }
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t next = 0;
  uint8_t* slice = nullptr;
  int64_t active_ns = 0;  // loop time minus the paused discards
  int64_t segment = 0;
  for (auto _ : state) {
    if (slice == nullptr) {
      if (!g_throughput) {
        state.SkipWithError("setup failed");
        break;
      }
      slice = g_throughput->mem.data() +
              state.thread_index() * g_slice_pages * kPage;
      segment = NowNs();
    }
    if (next == g_slice_pages) {
      active_ns += NowNs() - segment;
      state.PauseTiming();
      madvise(slice, g_slice_pages * kPage, MADV_DONTNEED);
      next = 0;
      state.ResumeTiming();
      segment = NowNs();
    }
    const int64_t t0 = NowNs();
    Touch(slice + next++ * kPage);
    ns.push_back(NowNs() - t0);
  }
  active_ns += NowNs() - segment;
  // Summed over threads: the total rate.
  state.counters["faults_per_s"] = benchmark::Counter(
      static_cast<double>(ns.size()) * 1e9 / static_cast<double>(active_ns));
  SetPercentiles(state, ns);
  if (state.thread_index() == 0) g_throughput.reset();
}

void RegisterPagerBenchmarks() {
  benchmark::RegisterBenchmark("BM_LocalFault/zero", BM_LocalFaultZero);
  benchmark::RegisterBenchmark("BM_LocalFault/copy", BM_LocalFaultCopy);
  benchmark::RegisterBenchmark("BM_LocalFault/image", BM_LocalFaultImage);
  benchmark::RegisterBenchmark("BM_LocalFault/zero_read",
                               BM_LocalFaultZeroRead);
  benchmark::RegisterBenchmark("BM_FaultThroughput", BM_FaultThroughput)
      ->Threads(1)
      ->Threads(2);
}

}  // namespace
}  // namespace ssihv::bench

int main(int argc, char** argv) {
  ssihv::bench::RegisterFloorBenchmarks();
  ssihv::bench::RegisterPagerBenchmarks();
  ssihv::bench::RegisterBoundBenchmarks();
#ifdef SSIHV_PAGER_BENCH_DSM
  ssihv::bench::RegisterRemoteBenchmarks();
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
