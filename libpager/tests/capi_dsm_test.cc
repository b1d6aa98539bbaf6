// ssihv_pager_create_dsm: two nodes of a TCP cluster in this process, each
// a C-API pager owning its RAM; what one writes the other reads.
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <thread>

#include "ssihv/pager.h"
#include "ssihv/testing/cluster_files.h"

namespace {

// A 2-node TCP cluster config (2 MiB per node), removed at the end.
struct ConfigDir {
  ConfigDir() {
    char tmpl[] = "/tmp/ssihv-capi-dsm.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    auto p = ssihv::testing::WriteClusterConfig(dir, 2);
    REQUIRE(p.ok());
    path = *p;
  }
  ~ConfigDir() {
    ::unlink(path.c_str());
    ::unlink((dir + "/secret").c_str());
    ::rmdir(dir.c_str());
  }
  std::string dir;
  std::string path;
};

TEST_CASE("C API DSM: bad arguments") {
  ssihv_pager* p = nullptr;
  CHECK(ssihv_pager_create_dsm("/nonexistent/cluster.json", 0, nullptr, &p) ==
        SSIHV_NOT_FOUND);
  CHECK(std::string(ssihv_last_error()).find("/nonexistent/cluster.json") !=
        std::string::npos);
  CHECK(ssihv_pager_create_dsm(nullptr, 0, nullptr, &p) ==
        SSIHV_INVALID_ARGUMENT);
  ConfigDir dir;
  const std::string& config = dir.path;
  CHECK(ssihv_pager_create_dsm(config.c_str(), 2, nullptr, &p) ==
        SSIHV_INVALID_ARGUMENT);
  CHECK(std::string(ssihv_last_error()) ==
        "ssihv_pager_create_dsm: node 2 is not in " + config + " (nodes 0..1)");
  CHECK(p == nullptr);
}

TEST_CASE("C API DSM: two nodes share one memory") {
  ConfigDir dir;
  const std::string& config = dir.path;
  ssihv_pager* nodes[2] = {nullptr, nullptr};
  for (uint32_t i = 0; i < 2; ++i) {
    REQUIRE(ssihv_pager_create_dsm(config.c_str(), i, nullptr, &nodes[i]) ==
            SSIHV_OK);
  }
  // Each start waits for the other node: start them together.
  std::atomic<int> failed{0};
  std::thread other([&] { failed += ssihv_pager_start(nodes[1]) != SSIHV_OK; });
  failed += ssihv_pager_start(nodes[0]) != SSIHV_OK;
  other.join();
  REQUIRE(failed == 0);
  void* ram[2];
  uint64_t size[2];
  for (int i = 0; i < 2; ++i) {
    REQUIRE(ssihv_pager_memory(nodes[i], &ram[i], &size[i]) == SSIHV_OK);
  }
  REQUIRE(size[0] == 4u << 20);
  REQUIRE(size[1] == size[0]);
  CHECK(ssihv_pager_add_range(nodes[0], ram[0], 4096, 0, 0) ==
        SSIHV_FAILED_PRECONDITION);
  CHECK(ssihv_pager_discard(nodes[0], 0, 4096) == SSIHV_FAILED_PRECONDITION);
  // Node 0 writes one word per page of the whole RAM (half homed on node
  // 1), node 1 reads every one.
  auto* w = static_cast<uint8_t*>(ram[0]);
  auto* r = static_cast<uint8_t*>(ram[1]);
  for (uint64_t off = 0; off < size[0]; off += 4096) {
    const uint64_t v = off + 1;
    std::memcpy(w + off + 16, &v, 8);
  }
  uint64_t bad = 0;
  for (uint64_t off = 0; off < size[1]; off += 4096) {
    uint64_t v;
    std::memcpy(&v, r + off + 16, 8);
    bad += v != off + 1;
  }
  CHECK(bad == 0);
  ssihv_pager_stats stats{};
  REQUIRE(ssihv_pager_get_stats(nodes[1], &stats) == SSIHV_OK);
  CHECK(stats.faults[SSIHV_FAULT_REMOTE_READ] >= 512);
  for (ssihv_pager* n : nodes) ssihv_pager_stop(n);
  for (ssihv_pager* n : nodes) ssihv_pager_destroy(n);
}

}  // namespace

namespace {

// The pattern of image byte x.
uint8_t ImageByte(uint64_t x) {
  return static_cast<uint8_t>(x * 7 + (x >> 12));
}

TEST_CASE("C API: a pager whose source is an image another node exports") {
  ConfigDir dir;
  const std::string& config = dir.path;
  constexpr uint64_t kSize = 16 * 4096;
  void* image = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(image != MAP_FAILED);
  for (uint64_t x = 0; x < kSize; ++x) {
    static_cast<uint8_t*>(image)[x] = ImageByte(x);
  }
  ssihv_image_export* exporter = nullptr;
  REQUIRE(ssihv_image_export_start(config.c_str(), 0, image, kSize,
                                   &exporter) == SSIHV_OK);

  // A guest of 32 pages at GPA 0x100000: the image, then zeros.
  constexpr uint64_t kGpa = 0x100000, kRam = 32 * 4096;
  void* ram = ::mmap(nullptr, kRam, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ram != MAP_FAILED);
  ssihv_pager* p = nullptr;
  REQUIRE(ssihv_pager_create(nullptr, &p) == SSIHV_OK);
  REQUIRE(ssihv_pager_add_range(p, ram, kRam, kGpa, 0) == SSIHV_OK);
  REQUIRE(ssihv_pager_set_source_remote(p, config.c_str(), 1, 0, kGpa, 0) ==
          SSIHV_OK);
  REQUIRE(ssihv_pager_start(p) == SSIHV_OK);
  uint64_t wrong = 0;
  const auto* bytes = static_cast<const volatile uint8_t*>(ram);
  for (uint64_t x = 0; x < kRam; x += 509) {
    wrong += bytes[x] != (x < kSize ? ImageByte(x) : 0);
  }
  CHECK(wrong == 0);
  ssihv_pager_destroy(p);
  ssihv_image_export_destroy(exporter);
  ::munmap(ram, kRam);
  ::munmap(image, kSize);
}

TEST_CASE("C API: remote image errors name the argument") {
  ConfigDir dir;
  const std::string& config = dir.path;
  ssihv_image_export* e = nullptr;
  CHECK(ssihv_image_export_start(config.c_str(), 0, nullptr, 4096, &e) ==
        SSIHV_INVALID_ARGUMENT);
  CHECK(std::string(ssihv_last_error()) ==
        "ssihv_image_export_start: image is NULL");
  alignas(4096) static uint8_t page[4096];
  CHECK(ssihv_image_export_start(config.c_str(), 5, page, 4096, &e) ==
        SSIHV_INVALID_ARGUMENT);
  CHECK(std::string(ssihv_last_error()).find("node 5 is not in") !=
        std::string::npos);
  CHECK(ssihv_image_export_start(config.c_str(), 0, page, 100, &e) ==
        SSIHV_INVALID_ARGUMENT);
  CHECK(e == nullptr);
  ssihv_pager* p = nullptr;
  REQUIRE(ssihv_pager_create(nullptr, &p) == SSIHV_OK);
  // Nobody exports: the wait ends at the timeout, naming the node.
  CHECK(ssihv_pager_set_source_remote(p, config.c_str(), 1, 0, 0, 200) ==
        SSIHV_UNAVAILABLE);
  CHECK(std::string(ssihv_last_error()).find("exporter node 0 not reached") !=
        std::string::npos);
  CHECK(ssihv_pager_set_source_remote(p, nullptr, 1, 0, 0, 200) ==
        SSIHV_INVALID_ARGUMENT);
  ssihv_pager_destroy(p);
  ssihv_image_export_destroy(nullptr);
}

}  // namespace
