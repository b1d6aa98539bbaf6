// ssihv_pager_create_dsm: two nodes of a TCP cluster in this process, each
// a C-API pager owning its RAM; what one writes the other reads.
#include <stdlib.h>
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
