// /metrics as Prometheus's own linter sees it: `promtool check metrics`
// (Debian package prometheus) must find nothing to say. Skipped (77) when
// promtool is missing, a failure under SSIHV_REQUIRE_PROMTOOL=1 (CI).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "fake_vm_node.h"
#include "ssihv/cluster/config.h"
#include "ssihv/control/api.h"
#include "ssihv/control/prometheus.h"
#include "ssihv/testing/host.h"

namespace ssihv::control {
namespace {

// Feeds `text` to `promtool check metrics` and collects what it says.
ssihv::testing::CommandResult PromtoolCheck(const std::string& text) {
  char path[] = "/tmp/ssihv_promtool_XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) ==
          static_cast<ssize_t>(text.size()));
  close(fd);
  auto r =
      ssihv::testing::RunShell(std::string("promtool check metrics < ") + path);
  unlink(path);
  return r;
}

TEST_CASE("promtool finds no problem in a node's /metrics") {
  auto config = cluster::ParseClusterConfig(R"({"nodes": [
      {"id": 0, "vcpus": 2, "memory_mib": 64}, {"id": 1, "vcpus": 2, "memory_mib": 64},
      {"id": 2, "vcpus": 0, "memory_mib": 64}]})");
  REQUIRE(config.ok());
  testing::FakeVmNode node(1, 3, 2, 2);
  // Label values that need escaping must pass too.
  MetricsSnapshot m = node.metrics();
  m.vcpu_exits.push_back({"odd \"reason\"\\\n", 1});
  node.SetMetrics(m);
  node.SetPeers({{0, PeerLiveness::kAlive, 0.5, "tcp"},
                 {2, PeerLiveness::kWaiting, std::nullopt, ""}});
  ApiHandler api(*config, 1, &node, {});
  HttpResponse r = api.Handle({"GET", "/metrics", ""});
  REQUIRE(r.status == 200);
  ssihv::testing::CommandResult check = PromtoolCheck(r.body);
  INFO(check.output);
  CHECK(check.exit == 0);
  CHECK(check.output.empty());
}

TEST_CASE("promtool accepts the merged /metrics of several nodes") {
  auto config = cluster::ParseClusterConfig(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 64}, {"id": 1, "vcpus": 1, "memory_mib": 64}]})");
  REQUIRE(config.ok());
  std::vector<std::string> texts;
  for (uint32_t n = 0; n < 2; ++n) {
    testing::FakeVmNode node(n, 2, n, 1);
    texts.push_back(
        ApiHandler(*config, n, &node, {}).Handle({"GET", "/metrics", ""}).body);
  }
  ssihv::testing::CommandResult check = PromtoolCheck(MergeExpositions(texts));
  INFO(check.output);
  CHECK(check.exit == 0);
  CHECK(check.output.empty());
}

TEST_CASE(
    "promtool does complain about a bad exposition (the check can fail)") {
  ssihv::testing::CommandResult check = PromtoolCheck(
      "# HELP ssihv_faults Faults.\n# TYPE ssihv_faults counter\nssihv_faults "
      "1\n");
  INFO(check.output);
  CHECK(check.exit != 0);
  CHECK(check.output.find("_total") != std::string::npos);
}

}  // namespace
}  // namespace ssihv::control
