// ssihv-uffd-handler --dsm: the VM's memory comes from a DSM cluster. Node
// 1 is the handler; node 0 is a C-API DSM pager in this process that writes
// every page of the cluster's RAM first (half of it homed on node 1); the
// VM restored through the handler must read what node 0 wrote.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "fc_client.h"
#include "handler_process.h"
#include "ssihv/pager.h"
#include "ssihv/testing/cluster_files.h"

namespace ssihv::fc_client {
namespace {

constexpr uint64_t kPage = 4096;

TEST_CASE("--dsm: a VM reads what another node of the cluster wrote") {
  char tmpl[] = "/tmp/ssihv-uffd-handler-dsm.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  auto config = testing::WriteClusterConfig(dir, 2);
  REQUIRE(config.ok());
  const std::string socket = dir + "/uffd.sock";
  // The handler's DSM node waits for node 0 before it listens.
  auto handler = HandlerProcess::Start(
      SSIHV_UFFD_HANDLER,
      {"--socket", socket, "--dsm", *config, "--node", "1"});
  REQUIRE(handler.ok());
  ssihv_pager* node0 = nullptr;
  REQUIRE(ssihv_pager_create_dsm(config->c_str(), 0, nullptr, &node0) ==
          SSIHV_OK);
  REQUIRE(ssihv_pager_start(node0) == SSIHV_OK);
  REQUIRE((*handler)->WaitForLog("listening on") >= 0);
  CHECK((*handler)->Log().find("DSM node 1 of") != std::string::npos);

  void* ram = nullptr;
  uint64_t size = 0;
  REQUIRE(ssihv_pager_memory(node0, &ram, &size) == SSIHV_OK);
  REQUIRE(size == 4u << 20);
  for (uint64_t off = 0; off < size; off += kPage) {
    const uint64_t v = off * 3 + 5;
    std::memcpy(static_cast<uint8_t*>(ram) + off + 24, &v, 8);
  }
  // Two regions, like a VM with RAM split around a hole.
  VmOptions options;
  options.regions = {{.size = 1u << 20, .offset = 3u << 20},
                     {.size = 3u << 20, .offset = 0}};
  auto vm = Vm::Restore(socket, options);
  REQUIRE(vm.ok());
  uint64_t bad = 0;
  for (size_t r = 0; r < (*vm)->num_regions(); ++r) {
    for (uint64_t off = 0; off < (*vm)->spec(r).size; off += kPage) {
      uint64_t v;
      std::memcpy(&v, (*vm)->region(r) + off + 24, 8);
      bad += v != ((*vm)->spec(r).offset + off) * 3 + 5;
    }
  }
  CHECK(bad == 0);
  CHECK((*handler)->Signal(SIGTERM) == 0);
  ssihv_pager_destroy(node0);
  ::unlink(config->c_str());
  ::unlink((dir + "/secret").c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace ssihv::fc_client
