// ssihv-uffd-handler (the real binary, a separate process, as Firecracker
// runs it) against its floors, all in one run (docs/PERFORMANCE.md,
// "Firecracker page-fault handler"):
//   BM_Floor/uffd_copy          a raw C handler thread in this process
//                               (bench/pager/uffd_floor.cc)
//   BM_Floor/uffd_copy_process  the same raw handler in a forked process:
//                               what crossing processes costs, no library
//   BM_Floor/file_private       write first-touch of the memory file
//                               mapped MAP_PRIVATE: Firecracker's own
//                               restore path without a handler
//   BM_UffdHandler/write        write first-touch of a VM restored from
//                               the same file through the handler, with
//                               exactly Firecracker's handshake
//   BM_UffdHandler/read         the same, reads
//   BM_UffdHandlerThroughput/threads:N  faults/s with N touching threads
// Counters: p50_us, p99_us (per access of the touching thread), and
// faults_per_s. The memory file lives in /dev/shm (in page cache).
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "fc_client.h"
#include "handler_process.h"

namespace ssihv::bench {

void RegisterFloorBenchmarks();  // bench/pager/uffd_floor.cc

namespace {

// Pages touched per run: every run gets a fresh VM (or mapping) of this
// size, so no discard (which a VM would see as a balloon) is needed.
constexpr uint64_t kPages = 32768;  // 128 MiB
constexpr int64_t kIterations = kPages;

// The memory file, written on first use, removed by main() at the end.
std::string g_mem_file;

const std::string& MemFile() {
  if (!g_mem_file.empty()) return g_mem_file;
  g_mem_file = "/dev/shm/ssihv-uffd-bench-" + std::to_string(::getpid());
  const int fd =
      ::open(g_mem_file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<uint8_t> page(kPage);
  for (uint64_t i = 0; i < kPages; ++i) {
    for (uint64_t o = 0; o < kPage; o += 64) page[o] = PatternAt(i * kPage + o);
    if (::pwrite(fd, page.data(), kPage, i * kPage) != kPage) std::abort();
  }
  ::close(fd);
  return g_mem_file;
}

// Times one write (or read) first-touch of each page of `base`.
void TouchAll(benchmark::State& state, uint8_t* base, bool write) {
  std::vector<int64_t> ns;
  ns.reserve(kPages);
  uint64_t next = 0;
  const int64_t start = NowNs();
  for (auto _ : state) {
    uint8_t* page = base + next * kPage;
    const int64_t t0 = NowNs();
    Access(page, write);
    ns.push_back(NowNs() - t0);
    if (!write && page[64] != PatternAt(next * kPage + 64)) {
      state.SkipWithError("wrong byte");
      break;
    }
    ++next;
  }
  state.counters["faults_per_s"] =
      benchmark::Counter(static_cast<double>(ns.size()) * 1e9 /
                         static_cast<double>(NowNs() - start));
  SetPercentiles(state, ns);
}

void BM_FilePrivate(benchmark::State& state, bool write) {
  const int fd = ::open(MemFile().c_str(), O_RDONLY | O_CLOEXEC);
  void* p = ::mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE,
                   fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    state.SkipWithError("mmap of the memory file failed");
    return;
  }
  TouchAll(state, static_cast<uint8_t*>(p), write);
  ::munmap(p, kPages * kPage);
}

// The handler binary, started for this run (pinned like this process:
// the CPU affinity is inherited), and a VM restored through it.
struct HandlerRun {
  // SIGTERM: the handler stops and removes its socket.
  ~HandlerRun() {
    if (handler) handler->Signal(SIGTERM);
    ::unlink(socket.c_str());
  }
  std::string socket;
  std::unique_ptr<fc_client::HandlerProcess> handler;
  std::unique_ptr<fc_client::Vm> vm;
};

std::unique_ptr<HandlerRun> StartHandler(benchmark::State& state,
                                         int fault_threads) {
  auto run = std::make_unique<HandlerRun>();
  run->socket = "/tmp/ssihv-uffd-bench-" + std::to_string(::getpid()) + ".sock";
  ::unlink(run->socket.c_str());
  auto h = fc_client::HandlerProcess::Start(
      SSIHV_UFFD_HANDLER, {"--socket", run->socket, "--mem-file", MemFile(),
                           "--fault-threads", std::to_string(fault_threads)});
  if (!h.ok() || (*h)->WaitForLog("listening on") < 0) {
    state.SkipWithError("ssihv-uffd-handler did not start");
    return nullptr;
  }
  run->handler = *std::move(h);
  fc_client::VmOptions options;
  options.regions = {{.size = kPages * kPage, .offset = 0}};
  auto vm = fc_client::Vm::Restore(run->socket, options);
  if (!vm.ok() || run->handler->WaitForLog("serving 1 region") < 0) {
    state.SkipWithError("the handshake failed");
    return nullptr;
  }
  run->vm = *std::move(vm);
  return run;
}

void BM_UffdHandler(benchmark::State& state, bool write) {
  auto run = StartHandler(state, 1);
  if (run) TouchAll(state, run->vm->region(0), write);
}

std::unique_ptr<HandlerRun> g_run;

void BM_UffdHandlerThroughput(benchmark::State& state) {
  const int threads = state.threads();
  const uint64_t slice = kPages / static_cast<uint64_t>(threads);
  if (state.thread_index() == 0) g_run = StartHandler(state, 1);
  std::vector<int64_t> ns;
  ns.reserve(slice);
  uint64_t next = 0;
  uint8_t* base = nullptr;
  int64_t start = 0;
  for (auto _ : state) {
    if (base == nullptr) {
      if (!g_run) {
        state.SkipWithError("setup failed");
        break;
      }
      base = g_run->vm->region(0) + state.thread_index() * slice * kPage;
      start = NowNs();
    }
    const int64_t t0 = NowNs();
    Touch(base + next++ * kPage);
    ns.push_back(NowNs() - t0);
  }
  state.counters["faults_per_s"] = benchmark::Counter(
      static_cast<double>(ns.size()) * 1e9 /
      static_cast<double>(NowNs() - start));  // summed over threads
  SetPercentiles(state, ns);
  if (state.thread_index() == 0) g_run.reset();
}

// BM_Floor/uffd_copy with its handler thread in a forked child: the child
// shares the uffd (inherited fd) and resolves into this process's memory.
[[noreturn]] void RawHandlerLoop(int uffd, uint64_t last_page) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the benchmark
  alignas(4096) static uint8_t src[4096] = {1};
  for (;;) {
    uffd_msg msg;
    if (::read(uffd, &msg, sizeof(msg)) != sizeof(msg)) continue;
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    uffdio_copy copy{};
    copy.dst = msg.arg.pagefault.address & ~(kPage - 1);
    copy.src = reinterpret_cast<uint64_t>(src);
    copy.len = kPage;
    ::ioctl(uffd, UFFDIO_COPY, &copy);
    if (copy.dst == last_page) ::_exit(0);
  }
}

void BM_FloorUffdCopyProcess(benchmark::State& state) {
  auto uffd = fc_client::CreateUffd();  // non-blocking: make it blocking
  void* p = ::mmap(nullptr, (kPages + 1) * kPage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (!uffd.ok() || p == MAP_FAILED || ::fcntl(uffd->get(), F_SETFL, 0) < 0 ||
      !fc_client::RegisterMissing(uffd->get(), static_cast<uint8_t*>(p),
                                  (kPages + 1) * kPage)
           .ok()) {
    state.SkipWithError("userfaultfd setup failed");
    return;
  }
  uint8_t* base = static_cast<uint8_t*>(p);
  const uint64_t sentinel = reinterpret_cast<uint64_t>(base + kPages * kPage);
  const pid_t child = ::fork();
  if (child == 0) RawHandlerLoop(uffd->get(), sentinel);
  std::vector<int64_t> ns;
  ns.reserve(kPages);
  uint64_t next = 0;
  const int64_t start = NowNs();
  for (auto _ : state) {
    const int64_t t0 = NowNs();
    Touch(base + next++ * kPage);
    ns.push_back(NowNs() - t0);
  }
  state.counters["faults_per_s"] =
      benchmark::Counter(static_cast<double>(ns.size()) * 1e9 /
                         static_cast<double>(NowNs() - start));
  SetPercentiles(state, ns);
  Touch(base + kPages * kPage);  // the child exits after this one
  ::waitpid(child, nullptr, 0);
  ::munmap(p, (kPages + 1) * kPage);
}

void RegisterHandlerBenchmarks() {
  benchmark::RegisterBenchmark("BM_Floor/uffd_copy_process",
                               BM_FloorUffdCopyProcess)
      ->Iterations(kIterations);
  for (const bool write : {true, false}) {
    const std::string kind = write ? "write" : "read";
    benchmark::RegisterBenchmark(("BM_Floor/file_private_" + kind).c_str(),
                                 BM_FilePrivate, write)
        ->Iterations(kIterations);
    benchmark::RegisterBenchmark(("BM_UffdHandler/" + kind).c_str(),
                                 BM_UffdHandler, write)
        ->Iterations(kIterations);
  }
  benchmark::RegisterBenchmark("BM_UffdHandlerThroughput",
                               BM_UffdHandlerThroughput)
      ->Threads(1)
      ->Threads(2)
      ->Iterations(kIterations / 2);
}

}  // namespace
}  // namespace ssihv::bench

int main(int argc, char** argv) {
  ssihv::bench::RegisterFloorBenchmarks();
  ssihv::bench::RegisterHandlerBenchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (!ssihv::bench::g_mem_file.empty()) {
    ::unlink(ssihv::bench::g_mem_file.c_str());
  }
  return 0;
}
