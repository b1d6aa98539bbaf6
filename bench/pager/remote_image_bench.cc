// BM_RemoteImageFault/{tcp,rdma}: the page fault of a VM restored from a
// snapshot whose memory file another node exports (ssihv-uffd-handler
// --remote-mem, libpager's RemoteImage): the fault thread fetches the page
// (a request on its TCP fetch lane, or one RDMA READ into registered
// staging memory) and maps it with UFFDIO_COPY. Read against the sum of
// its floors in the same run: BM_Floor/tcp_rtt_4k (or BM_Floor/ib_read_4k)
// + BM_Floor/uffd_copy. The exporter is a forked process; this process
// walks a 64 MiB guest once per window, each read timed, then drops the
// pages (the pager is not told: the next walk fetches them again).
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

constexpr uint64_t kImagePages = kServedPages;

// The exporting node (node 0) in the forked child.
int ExporterMain(const cluster::ClusterConfig& config, int ready, int stop) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto image = base::MappedRegion::Anonymous(kImagePages * kPage);
  if (!image.ok()) return 1;
  for (uint64_t x = 0; x < image->size(); ++x) image->data()[x] = PatternAt(x);
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

absl::StatusOr<Importer> StartImporter(const cluster::ClusterConfig& config) {
  Importer im;
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<rdmax::Transport> t,
                         rdmax::CreateTransport(config, 1));
  pager::RemoteImageOptions o;
  o.peer = 0;
  o.peer_timeout = absl::Seconds(20);
  SSIHV_ASSIGN_OR_RETURN(im.image,
                         pager::RemoteImage::Connect(std::move(t), o));
  SSIHV_ASSIGN_OR_RETURN(im.mem,
                         pager::GuestMemory::Create(kImagePages * kPage));
  pager::PagerOptions po;
  po.fault_threads = 1;
  po.remove_events = false;  // the walk's drops must not read as discards
  SSIHV_ASSIGN_OR_RETURN(im.pager, pager::Pager::Create(std::move(po)));
  SSIHV_RETURN_IF_ERROR(
      im.pager->RegisterGuestMemory(im.mem, 0, im.mem.size(), 0));
  SSIHV_RETURN_IF_ERROR(im.pager->SetSource(im.image->NewSource(0)));
  SSIHV_RETURN_IF_ERROR(im.pager->Start());
  return im;
}

void BM_RemoteImageFault(benchmark::State& state, const char* transport) {
  if (std::string(transport) == "rdma" && !rdmax::ProbeRdmaDevice("", 1).ok()) {
    state.SkipWithError("no RDMA device with an active port");
    return;
  }
  char tmpl[] = "/tmp/ssihv-image-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return state.SkipWithError("mkdtemp");
  const std::string dir = tmpl;
  absl::StatusOr<cluster::ClusterConfig> config =
      RemoteConfig(transport, 2, dir);
  ServerProcess exporter;
  absl::StatusOr<Importer> im = absl::UnavailableError("the exporter failed");
  if (config.ok() && exporter.Start([&](int ready, int stop) {
        return ExporterMain(*config, ready, stop);
      })) {
    im = StartImporter(*config);
  }
  std::vector<int64_t> ns;
  ns.reserve(state.max_iterations);
  uint64_t page = kImagePages, wrong = 0;
  for (auto _ : state) {
    if (!im.ok()) {
      state.SkipWithError(std::string(im.status().message()).c_str());
      break;
    }
    if (page == kImagePages) {
      state.PauseTiming();
      page = 0;
      if (!im->pager->resolver().Discard(0, im->mem.size()).ok()) {
        state.SkipWithError("Discard of the walked pages failed");
        break;
      }
      state.ResumeTiming();
    }
    const uint64_t off = page * kPage + (page % 509) * 8;
    const volatile uint8_t* p = im->mem.data() + off;
    const int64_t t0 = NowNs();
    const uint8_t v = *p;
    ns.push_back(NowNs() - t0);
    wrong += v != PatternAt(off);
    ++page;
  }
  if (wrong != 0) state.SkipWithError("read wrong page bytes");
  SetPercentiles(state, ns);
  if (im.ok()) im->pager->Stop();
  im = absl::CancelledError();  // before the exporter goes
  exporter.Stop();
  unlink((dir + "/secret").c_str());
  rmdir(dir.c_str());
}

}  // namespace

void RegisterRemoteImageBenchmarks() {
  benchmark::RegisterBenchmark("BM_RemoteImageFault/tcp", BM_RemoteImageFault,
                               "tcp");
  benchmark::RegisterBenchmark("BM_RemoteImageFault/rdma", BM_RemoteImageFault,
                               "rdma");
}

}  // namespace ssihv::bench
