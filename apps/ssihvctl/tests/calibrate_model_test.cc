// The pure part of calibrate: the page plan, the distance rule, the config
// written from measurements.
#include "calibrate_model.h"

#include <catch2/catch.hpp>

namespace ssihv::ctl {
namespace {

cluster::ClusterConfig Nodes(int n, int mib) {
  std::string json = R"({"nodes": [)";
  for (int k = 0; k < n; ++k) {
    json += (k ? "," : "") + std::string(R"({"id": )") + std::to_string(k) +
            R"(, "vcpus": 1, "memory_mib": )" + std::to_string(mib) + "}";
  }
  auto c = cluster::ParseClusterConfig(json + R"(], "transport": "tcp"})");
  REQUIRE(c.ok());
  return *c;
}

TEST_CASE(
    "PlanCalibration fits windows and the local buffer in the smallest node") {
  auto plan = PlanCalibration(Nodes(3, 64), 1024, 64);
  REQUIRE(plan.ok());
  CHECK(plan->window_pages == 1024);
  CHECK(plan->latency_pages == 256);
  CHECK(plan->WindowPage(0, 0) == 1);
  CHECK(plan->WindowPage(2, 5) == 1 + 2048 + 5);
  CHECK(plan->LocalFirstPage() == 1 + 3072);
  // 64 MiB = 16384 pages: what the windows leave, below the asked 64 MiB.
  CHECK(plan->local_bytes == (16384 - 1 - 3072) * 4096ull);
  CHECK(plan->LocalFirstPage() * 4096 + plan->local_bytes <= 64ull << 20);

  plan = PlanCalibration(Nodes(2, 8), 4096, 64);  // 2048 pages per node
  REQUIRE(plan.ok());
  CHECK(plan->window_pages == 2047 / 2 / 2);
  CHECK(plan->LocalFirstPage() * 4096 + plan->local_bytes <= 8ull << 20);

  // 2 MiB nodes: 4 fit (63-page windows, 1 MiB left), 16 do not.
  CHECK(PlanCalibration(Nodes(4, 2), 1024, 64).ok());
  auto small = PlanCalibration(Nodes(16, 2), 1024, 64);
  REQUIRE_FALSE(small.ok());
  CHECK(small.status().message() ==
        "nodes[0].memory_mib: too small to calibrate 16 nodes (needs 16 pages "
        "per node pair and 1 MiB of local buffer)");
}

TEST_CASE("DistanceOf: 10 x remote/local, clamped to 11..255") {
  CHECK(DistanceOf(200, 100) == 20);
  CHECK(DistanceOf(104, 100) == 11);  // 10.4 rounds to 10: clamped up
  CHECK(DistanceOf(50, 100) == 11);   // a remote faster than local
  CHECK(DistanceOf(2550, 100) == 255);
  CHECK(DistanceOf(30000, 90) == 255);
  CHECK(DistanceOf(1234, 100) == 123);
}

TEST_CASE("MeasuredConfig: rounded matrices and distances, the rest kept") {
  cluster::ClusterConfig in = Nodes(2, 64);
  in.secret_file = "/etc/secret";
  Measurements m{{{85.4, 30000}, {1200, 95}}, {{9000.6, 450.2}, {0.2, 8800}}};
  auto out = MeasuredConfig(in, m);
  REQUIRE(out.ok());
  CHECK(out->memory_latency_ns ==
        std::vector<std::vector<uint64_t>>{{85, 30000}, {1200, 95}});
  CHECK(out->memory_bandwidth_mbps ==
        std::vector<std::vector<uint64_t>>{{9001, 450}, {1, 8800}});
  CHECK(out->distances ==
        std::vector<std::vector<uint32_t>>{{10, 255}, {126, 10}});
  CHECK(out->secret_file == "/etc/secret");
  CHECK(out->transport == cluster::TransportKind::kTcp);
  CHECK(out->nodes[1].memory_mib == 64);
  CHECK(FormatMeasurements(*out).find("memory_latency_ns") !=
        std::string::npos);

  Measurements bad{{{1}}, {{1}}};
  CHECK_FALSE(MeasuredConfig(in, bad).ok());
}

}  // namespace
}  // namespace ssihv::ctl
