// Remote images: a node exports an image, another maps it page by page on
// first touch through the transport's page fetch (loopback and TCP).
#include "ssihv/pager/remote_image.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/cluster/config.h"
#include "ssihv/pager/guest_memory.h"
#include "ssihv/pager/pager.h"
#include "ssihv/rdmax/loopback.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::FillPattern;
using testing::HasPattern;
using testing::IsZero;
using testing::Settled;

constexpr char kSecret[] = "0123456789abcdef-remote-image-test";
constexpr uint64_t kImagePages = 8;
constexpr uint64_t kWalkPages = 64;  // the fetch-ahead cases' image
constexpr uint64_t kBase = 0x10000;  // the guest's GPA of image byte 0

// The backends the transport cases run on: the lab VM runs the RDMA build of
// this file (over rxe0), where the fetches are one-sided READs.
#ifdef SSIHV_REMOTE_IMAGE_TEST_RDMA
const std::vector<const char*> kBackends = {"rdma"};
#else
const std::vector<const char*> kBackends = {"loopback", "tcp"};
#endif

cluster::ClusterConfig Config(int first_port) {
  auto config = cluster::ParseClusterConfig(absl::StrCat(
      R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 2, "address": "127.0.0.1:)",
      first_port,
      R"("}, {"id": 1, "vcpus": 1, "memory_mib": 2, "address": "127.0.0.1:)",
      first_port + 1, R"("}]})"));
  REQUIRE(config.ok());
  return *config;
}

rdmax::TransportOptions Options() {
  rdmax::TransportOptions o;
  o.secret = kSecret;
  return o;
}

// Node 0's transport and node 1's, not started, on `backend`.
struct Transports {
  Transports(const std::string& backend, int first_port)
      : backend(backend), config(Config(first_port)) {
    if (backend == "loopback") fabric = rdmax::LoopbackFabric::Create(config);
    exporter = New(0);
    importer = New(1);
  }
  // A transport for `node` (a restart of that node when it had one).
  std::unique_ptr<rdmax::Transport> New(rdmax::NodeId node) {
    auto t = backend == "loopback" ? fabric->CreateTransport(node, Options())
             : backend == "rdma"
                 ? rdmax::CreateRdmaTransport(config, node, Options())
                 : rdmax::CreateTcpTransport(config, node, Options());
    REQUIRE(t.ok());
    return *std::move(t);
  }
  std::string backend;
  cluster::ClusterConfig config;
  std::shared_ptr<rdmax::LoopbackFabric> fabric;
  std::unique_ptr<rdmax::Transport> exporter, importer;
};

// An image of kImagePages pages, page i holding the pattern of GPA
// kBase + i * 4096, exported by node 0 and imported by node 1.
struct Exported {
  Exported(const std::string& backend, int first_port,
           absl::Duration peer_timeout = absl::Seconds(60),
           uint32_t fetch_ahead = RemoteImageOptions().fetch_ahead_pages,
           uint64_t pages = kImagePages)
      : t(backend, first_port) {
    auto m = base::MappedRegion::Anonymous(pages * kPageSize);
    REQUIRE(m.ok());
    image = *std::move(m);
    for (uint64_t i = 0; i < pages; ++i) {
      FillPattern(image.data() + i * kPageSize, kBase + i * kPageSize);
    }
    StartExporter(std::move(t.exporter));
    RemoteImageOptions o;
    o.peer = 0;
    o.staging_pages = 2;
    o.peer_timeout = peer_timeout;
    o.fetch_ahead_pages = fetch_ahead;
    auto r = RemoteImage::Connect(std::move(t.importer), o);
    REQUIRE(r.ok());
    remote = *std::move(r);
  }
  void StartExporter(std::unique_ptr<rdmax::Transport> transport) {
    auto e =
        ImageExport::Start(std::move(transport), image.data(), image.size());
    REQUIRE(e.ok());
    exporter = *std::move(e);
  }
  Transports t;
  base::MappedRegion image;
  std::unique_ptr<ImageExport> exporter;
  std::unique_ptr<RemoteImage> remote;
};

// A guest of `pages` pages at kBase whose faults the remote image serves.
struct Guest {
  Guest(RemoteImage& remote, uint64_t pages) {
    auto m = GuestMemory::Create(pages * kPageSize);
    REQUIRE(m.ok());
    mem = *std::move(m);
    PagerOptions options;
    options.fault_threads = 2;
    options.on_error = [this](const absl::Status& st) {
      last_error = std::string(st.message());
      errors.fetch_add(1);
    };
    auto p = Pager::Create(std::move(options));
    REQUIRE(p.ok());
    pager = *std::move(p);
    REQUIRE(pager->RegisterGuestMemory(mem, 0, mem.size(), kBase).ok());
    auto source = remote.NewSource(kBase);
    REQUIRE(source.ok());
    REQUIRE(pager->SetSource(*std::move(source)).ok());
    REQUIRE(pager->Start().ok());
  }
  ~Guest() { pager->Stop(); }
  uint8_t* Page(uint64_t i) { return mem.data() + i * kPageSize; }
  uint64_t Faults(FaultKind k) {
    return Settled(*pager).faults[static_cast<size_t>(k)];
  }
  GuestMemory mem;
  std::unique_ptr<Pager> pager;
  std::atomic<int> errors{0};
  std::string last_error;  // written before errors is incremented
};

TEST_CASE("A remote image is mapped page by page, zeros outside it") {
  for (const char* backend : kBackends) {
    SECTION(backend) {
      Exported x(backend, 7860);
      CHECK(x.remote->size() == kImagePages * kPageSize);
      Guest g(*x.remote, 2 * kImagePages);
      // Every page of the image, read in a scrambled order, then the rest.
      for (uint64_t i : {3, 0, 7, 1, 6, 2, 5, 4}) {
        CHECK(HasPattern(g.Page(i), kBase + i * kPageSize));
      }
      for (uint64_t i = kImagePages; i < 2 * kImagePages; ++i) {
        CHECK(IsZero(g.Page(i)));
      }
      CHECK(g.Faults(FaultKind::kRemoteRead) == kImagePages);
      CHECK(g.Faults(FaultKind::kLocalZero) == kImagePages);
      CHECK(g.errors == 0);
      // The fetches came from node 0, over the transport.
      CHECK(x.remote->transport().stats().fetches >= kImagePages);
    }
  }
}

TEST_CASE("A remote image page is the guest's private, writable copy") {
  Exported x("loopback", 7862);
  Guest g(*x.remote, kImagePages);
  volatile uint64_t* word = reinterpret_cast<volatile uint64_t*>(g.Page(2));
  *word = 0xfeedface;  // a write fault: fetched, then written
  CHECK(*word == 0xfeedface);
  CHECK(HasPattern(g.Page(3), kBase + 3 * kPageSize));
  CHECK(g.Faults(FaultKind::kRemoteWrite) == 1);
  // The exporter's image is untouched.
  CHECK(HasPattern(x.image.data() + 2 * kPageSize, kBase + 2 * kPageSize));
}

TEST_CASE("A discarded remote image page comes back zero") {
  Exported x("loopback", 7864);
  Guest g(*x.remote, kImagePages);
  for (uint64_t i = 0; i < kImagePages; ++i) {
    REQUIRE(HasPattern(g.Page(i), kBase + i * kPageSize));
  }
  REQUIRE(g.pager->resolver().Discard(kBase + kPageSize, 2 * kPageSize).ok());
  CHECK(HasPattern(g.Page(0), kBase));
  CHECK(IsZero(g.Page(1)));
  CHECK(IsZero(g.Page(2)));
  CHECK(HasPattern(g.Page(3), kBase + 3 * kPageSize));
}

TEST_CASE("A fault after the exporter went away for good fails") {
  Exported x("loopback", 7866, absl::Milliseconds(300));
  Guest g(*x.remote, kImagePages);
  REQUIRE(HasPattern(g.Page(0), kBase));
  x.exporter.reset();
  std::thread toucher(
      [&] { (void)*reinterpret_cast<volatile uint8_t*>(g.Page(5)); });
  // A condition wait: the fault is reported, then released.
  for (int i = 0; i < 20000 && g.errors == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(g.errors >= 1);
  CHECK(g.last_error.find("offset 0x5000 from node 0") != std::string::npos);
  g.pager->ReleaseFailedFaults();
  toucher.join();
  CHECK(HasPattern(g.Page(0), kBase));  // what was mapped stays
}

TEST_CASE("A fault while the exporter restarts waits for it") {
  for (const char* backend : kBackends) {
    SECTION(backend) {
      Exported x(backend, 7876, absl::Seconds(30));
      Guest g(*x.remote, kImagePages);
      REQUIRE(HasPattern(g.Page(0), kBase));
      x.exporter.reset();
      // The fault is in flight (its thread waits on the page) while node 0
      // is down; then node 0 comes back with the same image.
      std::thread toucher = testing::StartBlockedAccess(
          [&] { (void)*reinterpret_cast<volatile uint8_t*>(g.Page(5)); });
      x.StartExporter(x.t.New(0));
      toucher.join();
      CHECK(HasPattern(g.Page(5), kBase + 5 * kPageSize));
      CHECK(g.errors == 0);
    }
  }
}

TEST_CASE("A sequential walk fetches ahead: one round trip per window") {
  for (const char* backend : kBackends) {
    SECTION(backend) {
      Exported x(backend, 7880, absl::Seconds(60), 16, kWalkPages);
      Guest g(*x.remote, kWalkPages);
      const uint64_t fetches0 = x.remote->transport().stats().fetches;
      for (uint64_t i = 0; i < kWalkPages; ++i) {
        REQUIRE(HasPattern(g.Page(i), kBase + i * kPageSize));
      }
      // Page 0 alone (nothing before it), then windows of 16 from pages 1,
      // 17, 33 and 49 (the last one 15 pages, to the image's end).
      CHECK(g.Faults(FaultKind::kRemoteRead) == 5);
      CHECK(g.Faults(FaultKind::kLocalCopy) == kWalkPages - 5);
      CHECK(x.remote->transport().stats().fetches - fetches0 == 5);
      CHECK(g.errors == 0);
    }
  }
}

TEST_CASE("Two threads walking at once each fetch ahead") {
  Exported x("loopback", 7886, absl::Seconds(60), 16, kWalkPages);
  Guest g(*x.remote, kWalkPages);
  std::atomic<uint64_t> wrong{0};
  auto walk = [&](uint64_t first, uint64_t count) {
    for (uint64_t i = first; i < first + count; ++i) {
      wrong += !HasPattern(g.Page(i), kBase + i * kPageSize);
    }
  };
  // Walk a, pages 0..31: page 0 alone, then windows 1..16 and 17..32 (a
  // window is 16 pages, so the last one reaches page 32). Walk b starts past
  // that, at page 33: 33 alone, then 34..49 and 50..63 (to the image's end).
  // Had b started at page 32, how many round trips it took would depend on
  // which thread got there first (CI saw a's window serve b's page 32).
  std::thread a(walk, 0, 32), b(walk, 33, kWalkPages - 33);
  a.join();
  b.join();
  CHECK(wrong == 0);
  // Three round trips per walk: the faulting threads are told apart by their
  // thread ids. Page 32 is fetched (in a's last window) but never touched.
  CHECK(g.Faults(FaultKind::kRemoteRead) == 6);
  CHECK(g.Faults(FaultKind::kLocalCopy) == kWalkPages - 1 - 6);
}

TEST_CASE("A page fetched ahead but discarded before its fault reads zeros") {
  Exported x("loopback", 7882, absl::Seconds(60), 16, kWalkPages);
  Guest g(*x.remote, kWalkPages);
  for (uint64_t i = 0; i < 4; ++i) {  // fetches pages 1..16 ahead
    REQUIRE(HasPattern(g.Page(i), kBase + i * kPageSize));
  }
  REQUIRE(g.pager->resolver().Discard(kBase + 10 * kPageSize, kPageSize).ok());
  CHECK(IsZero(g.Page(10)));
  CHECK(HasPattern(g.Page(11), kBase + 11 * kPageSize));
  CHECK(g.Faults(FaultKind::kRemoteRead) == 2);
}

TEST_CASE("Without fetch-ahead every page is its own round trip") {
  Exported x("loopback", 7884, absl::Seconds(60), 0, kWalkPages);
  Guest g(*x.remote, kWalkPages);
  for (uint64_t i = 0; i < kWalkPages; ++i) {
    REQUIRE(HasPattern(g.Page(i), kBase + i * kPageSize));
  }
  CHECK(g.Faults(FaultKind::kRemoteRead) == kWalkPages);
  CHECK(g.Faults(FaultKind::kLocalCopy) == 0);
}

TEST_CASE("Connecting to a node that exports nothing is a clear error") {
  SECTION("the node is never started") {
    Transports t("loopback", 7868);
    RemoteImageOptions o;
    o.peer = 0;
    o.peer_timeout = absl::Milliseconds(200);
    auto r = RemoteImage::Connect(std::move(t.importer), o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    CHECK(r.status().message().find("node 0") != std::string::npos);
  }
  SECTION("the node runs but is not an exporter") {
    Transports t("loopback", 7870);
    REQUIRE(t.exporter->Start().ok());
    RemoteImageOptions o;
    o.peer = 0;
    auto r = RemoteImage::Connect(std::move(t.importer), o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("is it an image export") !=
          std::string::npos);
  }
  SECTION("the exporter is this node") {
    Transports t("loopback", 7872);
    RemoteImageOptions o;
    o.peer = 1;
    CHECK_FALSE(RemoteImage::Connect(std::move(t.importer), o).ok());
  }
}

TEST_CASE("An export of an image that is not whole pages is refused") {
  Transports t("loopback", 7874);
  auto m = base::MappedRegion::Anonymous(kPageSize);
  REQUIRE(m.ok());
  auto e = ImageExport::Start(std::move(t.exporter), m->data(), 100);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().message().find("size 100") != std::string::npos);
}

}  // namespace
}  // namespace ssihv::pager
