// The faults of a VM restored from a snapshot whose memory file another node
// exports (ssihv-uffd-handler --remote-mem, libpager's RemoteImage). The
// exporter is a forked process; this process walks a 64 MiB guest, then
// drops the pages (the pager is not told: the next walk fetches them again).
//
// BM_RemoteImageFault/{tcp,rdma}: one fault, fetch-ahead off: the fault
// thread fetches the page (a request on its TCP fetch lane, or one RDMA READ
// into registered staging memory) and maps it with UFFDIO_COPY. Read
// against the sum of its floors in the same run: BM_Floor/tcp_rtt_4k (or
// BM_Floor/ib_read_4k) + BM_Floor/uffd_copy.
//
// BM_RemoteImageSequentialRead/{tcp,tcp_no_fetch_ahead,rdma}: the walk's
// bytes per second (a restore that touches memory in order), with the
// default fetch-ahead (16 pages per round trip) or without; read against
// BM_Floor/tcp_stream.
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "remote_cluster.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/pager/guest_memory.h"
#include "ssihv/pager/pager.h"
#include "ssihv/pager/remote_image.h"

namespace ssihv::bench {
namespace {

constexpr uint64_t kRemoteImagePages = kServedPages;

// The exporting node (node 0) in the forked child.
int ExporterMain(const cluster::ClusterConfig& config, int ready, int stop) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto image = base::MappedRegion::Anonymous(kRemoteImagePages * kPage);
  if (!image.ok()) return 1;
  FillPattern(image->data(), image->size());
  auto t = rdmax::CreateTransport(config, 0);
  if (!t.ok()) return 1;
  auto e =
      pager::ImageExport::Start(*std::move(t), image->data(), image->size());
  if (!e.ok()) return 1;
  const char c = 'r';
  if (write(ready, &c, 1) != 1) return 1;
  char buf;
  while (read(stop, &buf, 1) > 0) {
  }
  return 0;
}

struct Importer {
  std::unique_ptr<pager::RemoteImage> image;
  pager::GuestMemory mem;
  std::unique_ptr<pager::Pager> pager;
};

absl::StatusOr<Importer> StartImporter(const cluster::ClusterConfig& config,
                                       uint32_t fetch_ahead) {
  Importer im;
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<rdmax::Transport> t,
                         rdmax::CreateTransport(config, 1));
  pager::RemoteImageOptions o;
  o.peer = 0;
  o.peer_timeout = absl::Seconds(20);
  o.fetch_ahead_pages = fetch_ahead;
  SSIHV_ASSIGN_OR_RETURN(im.image,
                         pager::RemoteImage::Connect(std::move(t), o));
  SSIHV_ASSIGN_OR_RETURN(im.mem,
                         pager::GuestMemory::Create(kRemoteImagePages * kPage));
  pager::PagerOptions po;
  po.fault_threads = 1;
  po.remove_events = false;  // the walk's drops must not read as discards
  SSIHV_ASSIGN_OR_RETURN(im.pager, pager::Pager::Create(std::move(po)));
  SSIHV_RETURN_IF_ERROR(
      im.pager->RegisterGuestMemory(im.mem, 0, im.mem.size(), 0));
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<pager::PageSource> source,
                         im.image->NewSource(0));
  SSIHV_RETURN_IF_ERROR(im.pager->SetSource(std::move(source)));
  SSIHV_RETURN_IF_ERROR(im.pager->Start());
  return im;
}

// The exporter and this node's guest, for one benchmark.
class ImageBench {
 public:
  ImageBench(const char* transport, uint32_t fetch_ahead) {
    if (std::string(transport) == "rdma" &&
        !rdmax::ProbeRdmaDevice("", 1).ok()) {
      im_ = absl::UnavailableError("no RDMA device with an active port");
      return;
    }
    char tmpl[] = "/tmp/ssihv-image-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    absl::StatusOr<cluster::ClusterConfig> config =
        RemoteConfig(transport, 2, dir_);
    if (config.ok() && exporter_.Start([&](int ready, int stop) {
          return ExporterMain(*config, ready, stop);
        })) {
      im_ = StartImporter(*config, fetch_ahead);
    }
  }
  ~ImageBench() {
    if (im_.ok()) im_->pager->Stop();
    im_ = absl::CancelledError();  // before the exporter goes
    exporter_.Stop();
    if (!dir_.empty()) {
      unlink((dir_ + "/secret").c_str());
      rmdir(dir_.c_str());
    }
  }
  /// Why the set-up failed (skip the benchmark), or OK.
  absl::Status status() const { return im_.status(); }
  /// Drops every page of the guest: the next walk fetches them again.
  bool Drop() {
    return im_->pager->resolver().Discard(0, im_->mem.size()).ok();
  }
  /// The byte at `off` of the guest, checked against the image.
  bool Read(uint64_t off) {
    return *(static_cast<volatile uint8_t*>(im_->mem.data()) + off) ==
           PatternAt(off);
  }

 private:
  std::string dir_;
  ServerProcess exporter_;
  absl::StatusOr<Importer> im_ = absl::UnavailableError("the exporter failed");
};

void BM_RemoteImageFault(benchmark::State& state, const char* transport) {
  ImageBench b(transport, 0);
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t page = kRemoteImagePages, wrong = 0;
  for (auto _ : state) {
    if (!b.status().ok()) {
      state.SkipWithError(std::string(b.status().message()).c_str());
      break;
    }
    if (page == kRemoteImagePages) {
      state.PauseTiming();
      page = 0;
      if (!b.Drop()) {
        state.SkipWithError("Discard of the walked pages failed");
        break;
      }
      state.ResumeTiming();
    }
    const uint64_t off = page * kPage + (page % 509) * 8;
    const int64_t t0 = NowNs();
    const bool ok = b.Read(off);
    ns.push_back(NowNs() - t0);
    wrong += !ok;
    ++page;
  }
  if (wrong != 0) state.SkipWithError("read wrong page bytes");
  SetPercentiles(state, ns);
}

void BM_RemoteImageSequentialRead(benchmark::State& state,
                                  const char* transport, uint32_t ahead) {
  ImageBench b(transport, ahead);
  int64_t read_ns = 0;
  uint64_t wrong = 0;
  for (auto _ : state) {
    if (!b.status().ok()) {
      state.SkipWithError(std::string(b.status().message()).c_str());
      break;
    }
    state.PauseTiming();
    const bool dropped = b.Drop();
    state.ResumeTiming();
    if (!dropped) {
      state.SkipWithError("Discard of the walked pages failed");
      break;
    }
    const int64_t t0 = NowNs();
    for (uint64_t page = 0; page < kRemoteImagePages; ++page) {
      wrong += !b.Read(page * kPage + (page % 509) * 8);
    }
    read_ns += NowNs() - t0;
  }
  if (wrong != 0) state.SkipWithError("read wrong page bytes");
  if (read_ns > 0) {
    state.counters["bytes_per_s"] = benchmark::Counter(
        static_cast<double>(state.iterations() * kRemoteImagePages * kPage) *
        1e9 / static_cast<double>(read_ns));
  }
}

}  // namespace

void RegisterRemoteImageBenchmarks() {
  benchmark::RegisterBenchmark("BM_RemoteImageFault/tcp", BM_RemoteImageFault,
                               "tcp");
  benchmark::RegisterBenchmark("BM_RemoteImageFault/rdma", BM_RemoteImageFault,
                               "rdma");
  const uint32_t ahead = pager::RemoteImageOptions().fetch_ahead_pages;
  benchmark::RegisterBenchmark("BM_RemoteImageSequentialRead/tcp",
                               BM_RemoteImageSequentialRead, "tcp", ahead);
  benchmark::RegisterBenchmark(
      "BM_RemoteImageSequentialRead/tcp_no_fetch_ahead",
      BM_RemoteImageSequentialRead, "tcp", 0u);
  benchmark::RegisterBenchmark("BM_RemoteImageSequentialRead/rdma",
                               BM_RemoteImageSequentialRead, "rdma", ahead);
}

}  // namespace ssihv::bench
