#include "ssihv/cluster/config.h"

#include <catch2/catch.hpp>
#include <string>

using ssihv::cluster::ClusterConfig;
using ssihv::cluster::ParseClusterConfig;

namespace {

// The error message of parsing `json`, which must fail.
std::string ErrorOf(const std::string& json) {
  auto r = ParseClusterConfig(json);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

std::string TwoNodes(const std::string& node1, const std::string& extra = "") {
  return R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 64}, )" + node1 +
         "]" + extra + "}";
}

}  // namespace

TEST_CASE("the embedded default parses to the documented 2-node cluster") {
  const ClusterConfig& c = ssihv::cluster::DefaultClusterConfig();
  REQUIRE(c.num_nodes() == 2);
  CHECK(c.nodes[1].address == "127.0.0.1:7701");
  CHECK(c.total_vcpus() == 4);
  CHECK(c.total_memory_bytes() == (uint64_t{2048} << 20));
  CHECK(c.distances[0][1] == 20);
  CHECK(c.memory_latency_ns[1][0] == 5000);
  CHECK(c.memory_bandwidth_mbps[1][1] == 20000);
}

TEST_CASE("node ids may come in any order and are sorted") {
  auto c = ParseClusterConfig(
      R"({"nodes": [{"id": 1, "vcpus": 0, "memory_mib": 2},
                    {"id": 0, "vcpus": 3, "memory_mib": 4}]})");
  REQUIRE(c.ok());
  CHECK(c->nodes[0].vcpus == 3);
  CHECK(c->nodes[1].memory_mib == 2);
}

TEST_CASE("defaults fill absent matrices") {
  auto c = ParseClusterConfig(TwoNodes(R"({"id": 1, "vcpus": 1, "memory_mib": 2})"));
  REQUIRE(c.ok());
  CHECK(c->distances == std::vector<std::vector<uint32_t>>{{10, 20}, {20, 10}});
  CHECK(c->memory_latency_ns[0][1] == ssihv::cluster::kDefaultRemoteLatencyNs);
  CHECK(c->memory_bandwidth_mbps[0][0] ==
        ssihv::cluster::kDefaultLocalBandwidthMbps);
  CHECK(c->transport == ssihv::cluster::TransportKind::kAuto);
}

TEST_CASE("rule: ids are exactly 0..N-1") {
  CHECK(ErrorOf(TwoNodes(R"({"id": 2, "vcpus": 1, "memory_mib": 2})")) ==
        "nodes[1].id: must be in 0..1 (ids are exactly 0..N-1)");
  CHECK(ErrorOf(TwoNodes(R"({"id": 0, "vcpus": 1, "memory_mib": 2})")) ==
        "nodes[1].id: duplicate id 0");
  CHECK(ErrorOf(TwoNodes(R"({"id": -1, "vcpus": 1, "memory_mib": 2})"))
            .starts_with("nodes[1].id: must be in"));
  CHECK(ErrorOf(TwoNodes(R"({"vcpus": 1, "memory_mib": 2})")) ==
        "nodes[1].id: missing");
}

TEST_CASE("rule: vcpus >= 0 and at least one vCPU in the cluster") {
  CHECK(ErrorOf(TwoNodes(R"({"id": 1, "vcpus": -2, "memory_mib": 2})"))
            .starts_with("nodes[1].vcpus: must be in 0.."));
  CHECK(ErrorOf(TwoNodes(R"({"id": 1, "vcpus": 1.5, "memory_mib": 2})")) ==
        "nodes[1].vcpus: must be an integer");
  CHECK(ErrorOf(R"({"nodes": [{"id": 0, "vcpus": 0, "memory_mib": 2}]})") ==
        "nodes: the cluster needs at least one vcpu");
}

TEST_CASE("rule: memory_mib is a positive multiple of 2") {
  for (const char* bad : {"0", "3", "-4", "2.0", "\"8\""}) {
    CAPTURE(bad);
    CHECK(ErrorOf(TwoNodes(std::string(R"({"id": 1, "vcpus": 1, "memory_mib": )") +
                           bad + "}")) ==
          "nodes[1].memory_mib: must be a positive multiple of 2");
  }
}

TEST_CASE("rule: address is host:port") {
  auto bad = [](const char* addr) {
    return ErrorOf(TwoNodes(std::string(R"({"id": 1, "vcpus": 1, "memory_mib": 2, "address": ")") +
                            addr + "\"}"));
  };
  CHECK(bad("localhost") == "nodes[1].address: must be \"host:port\"");
  CHECK(bad("h:0") == "nodes[1].address: port must be in 1..65535");
  CHECK(bad("h:70000") == "nodes[1].address: port must be in 1..65535");
  CHECK(bad("::1:80") ==
        "nodes[1].address: IPv6 host must be written \"[addr]:port\"");
  auto ok = ParseClusterConfig(TwoNodes(
      R"({"id": 1, "vcpus": 1, "memory_mib": 2, "address": "[::1]:7701"})"));
  CHECK(ok.ok());
}

TEST_CASE("rule: distances are N x N, diagonal 10, off-diagonal 11..255") {
  const std::string node1 = R"({"id": 1, "vcpus": 1, "memory_mib": 2})";
  CHECK(ErrorOf(TwoNodes(node1, R"(, "distances": [[10, 20]])")) ==
        "distances: must be an array of 2 rows");
  CHECK(ErrorOf(TwoNodes(node1, R"(, "distances": [[10, 20], [20]])")) ==
        "distances[1]: must be an array of 2 values");
  CHECK(ErrorOf(TwoNodes(node1, R"(, "distances": [[11, 20], [20, 10]])")) ==
        "distances[0][0]: diagonal distance must be 10");
  CHECK(ErrorOf(TwoNodes(node1, R"(, "distances": [[10, 10], [20, 10]])")) ==
        "distances[0][1]: must be in 11..255");
  CHECK(ErrorOf(TwoNodes(node1, R"(, "distances": [[10, 20], [256, 10]])")) ==
        "distances[1][0]: must be in 11..255");
  auto asym = ParseClusterConfig(
      TwoNodes(node1, R"(, "distances": [[10, 17], [42, 10]])"));
  REQUIRE(asym.ok());
  CHECK(asym->distances[1][0] == 42);
}

TEST_CASE("FirstNearRemoteNode: the first remote distance Linux balances over") {
  const std::string node1 = R"({"id": 1, "vcpus": 1, "memory_mib": 2})";
  auto far = ParseClusterConfig(
      TwoNodes(node1, R"(, "distances": [[10, 31], [100, 10]])"));
  REQUIRE(far.ok());
  CHECK_FALSE(ssihv::cluster::FirstNearRemoteNode(*far).has_value());
  auto near = ParseClusterConfig(
      TwoNodes(node1, R"(, "distances": [[10, 100], [30, 10]])"));
  REQUIRE(near.ok());
  CHECK(ssihv::cluster::FirstNearRemoteNode(*near) ==
        std::make_optional(std::make_pair(1u, 0u)));
  auto defaults = ParseClusterConfig(TwoNodes(node1));
  REQUIRE(defaults.ok());
  CHECK(ssihv::cluster::FirstNearRemoteNode(*defaults) ==
        std::make_optional(std::make_pair(0u, 1u)));
}

TEST_CASE("rule: HMAT matrices are N x N positive integers") {
  const std::string node1 = R"({"id": 1, "vcpus": 1, "memory_mib": 2})";
  CHECK(ErrorOf(TwoNodes(node1, R"(, "memory_latency_ns": [[1, 0], [1, 1]])")) ==
        "memory_latency_ns[0][1]: must be in 1..1099511627776");
  CHECK(ErrorOf(TwoNodes(node1, R"(, "memory_bandwidth_mbps": 5)")) ==
        "memory_bandwidth_mbps: must be an array of 2 rows");
}

TEST_CASE("rule: unknown keys are errors naming their path") {
  CHECK(ErrorOf(TwoNodes(R"({"id": 1, "vcpus": 1, "memory_mib": 2, "vpcus": 1})")) ==
        "nodes[1].vpcus: unknown key");
  CHECK(ErrorOf(TwoNodes(R"({"id": 1, "vcpus": 1, "memory_mib": 2})",
                         R"(, "distance": [])")) == "distance: unknown key");
}

TEST_CASE("rule: nodes is a non-empty array; the root is an object") {
  CHECK(ErrorOf(R"({"nodes": []})") == "nodes: must be a non-empty array");
  CHECK(ErrorOf(R"({})") == "nodes: missing");
  CHECK(ErrorOf(R"([1])") == "(root): must be a JSON object");
  CHECK(ErrorOf(R"({"nodes": [)").starts_with("(json): parse error at line 1"));
}

TEST_CASE("transport and secret_file are parsed") {
  const std::string node1 = R"({"id": 1, "vcpus": 1, "memory_mib": 2})";
  auto c = ParseClusterConfig(
      TwoNodes(node1, R"(, "transport": "tcp", "secret_file": "/etc/s")"));
  REQUIRE(c.ok());
  CHECK(c->transport == ssihv::cluster::TransportKind::kTcp);
  CHECK(c->secret_file == "/etc/s");
  CHECK(ErrorOf(TwoNodes(node1, R"(, "transport": "udp")")) ==
        "transport: must be \"tcp\", \"rdma\" or \"auto\"");
}

TEST_CASE("canonical JSON re-parses to the same config") {
  const ClusterConfig& c = ssihv::cluster::DefaultClusterConfig();
  auto again = ParseClusterConfig(ssihv::cluster::ClusterConfigToJson(c));
  REQUIRE(again.ok());
  CHECK(again->distances == c.distances);
  CHECK(again->nodes[1].address == c.nodes[1].address);
  CHECK(again->memory_bandwidth_mbps == c.memory_bandwidth_mbps);
}

TEST_CASE("LoadClusterConfig names the file") {
  auto r = ssihv::cluster::LoadClusterConfig("/nonexistent/cluster.json");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "open /nonexistent/cluster.json: No such file or directory");
}

TEST_CASE("api_address: optional per node, the syntax of address") {
  auto c = ParseClusterConfig(TwoNodes(
      R"({"id": 1, "vcpus": 1, "memory_mib": 2, "address": "10.0.0.2:7700",
          "api_address": "[::1]:8081"})"));
  REQUIRE(c.ok());
  CHECK(c->nodes[0].api_address.empty());
  CHECK(c->nodes[1].api_address == "[::1]:8081");
  auto bad = [](const char* value) {
    return ErrorOf(TwoNodes(
        std::string(
            R"({"id": 1, "vcpus": 1, "memory_mib": 2, "api_address": )") +
        value + "}"));
  };
  CHECK(bad("8080") == "nodes[1].api_address: must be a string \"host:port\"");
  CHECK(bad("\"localhost\"") == "nodes[1].api_address: must be \"host:port\"");
  CHECK(bad("\"h:0\"") == "nodes[1].api_address: port must be in 1..65535");
  CHECK(bad("\"::1:80\"") ==
        "nodes[1].api_address: IPv6 host must be written \"[addr]:port\"");
  CHECK(
      ErrorOf(TwoNodes(
          R"({"id": 1, "vcpus": 1, "memory_mib": 2, "api_adress": "h:1"})")) ==
      "nodes[1].api_adress: unknown key");
}

TEST_CASE("rule: no two listeners of the cluster on the same host:port") {
  // The error names the later key path and the one it collides with; the
  // positions are those of the file even when ids come in another order.
  CHECK(ErrorOf(R"({"nodes": [
      {"id": 1, "vcpus": 1, "memory_mib": 2, "address": "h:1", "api_address": "h:2"},
      {"id": 0, "vcpus": 1, "memory_mib": 2, "address": "h:3", "api_address": "h:1"}]})") ==
        "nodes[0].address: \"h:1\" is also nodes[1].api_address");
  CHECK(
      ErrorOf(TwoNodes(
          R"({"id": 1, "vcpus": 1, "memory_mib": 2, "address": "h:5", "api_address": "h:5"})")) ==
      "nodes[1].api_address: \"h:5\" is also nodes[1].address");
  CHECK(ErrorOf(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2, "api_address": "h:9"},
      {"id": 1, "vcpus": 1, "memory_mib": 2, "api_address": "h:9"}]})") ==
        "nodes[1].api_address: \"h:9\" is also nodes[0].api_address");
  // The same port on different hosts is fine.
  CHECK(ParseClusterConfig(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2, "api_address": "10.0.0.1:9"},
      {"id": 1, "vcpus": 1, "memory_mib": 2, "api_address": "10.0.0.2:9"}]})")
            .ok());
}

TEST_CASE("api_token_file: a non-empty string") {
  const std::string node1 = R"({"id": 1, "vcpus": 1, "memory_mib": 2})";
  auto c = ParseClusterConfig(
      TwoNodes(node1, R"(, "api_token_file": "/etc/ssihv/api-token")"));
  REQUIRE(c.ok());
  CHECK(c->api_token_file == "/etc/ssihv/api-token");
  CHECK(ParseClusterConfig(TwoNodes(node1))->api_token_file.empty());
  CHECK(ErrorOf(TwoNodes(node1, R"(, "api_token_file": "")")) ==
        "api_token_file: must be a non-empty string");
  CHECK(ErrorOf(TwoNodes(node1, R"(, "api_token_file": 7)")) ==
        "api_token_file: must be a non-empty string");
}

TEST_CASE("canonical JSON keeps api_address and api_token_file") {
  auto c = ParseClusterConfig(TwoNodes(
      R"({"id": 1, "vcpus": 1, "memory_mib": 2, "api_address": "127.0.0.1:8081"})",
      R"(, "api_token_file": "/run/token")"));
  REQUIRE(c.ok());
  const std::string json = ssihv::cluster::ClusterConfigToJson(*c);
  auto again = ParseClusterConfig(json);
  REQUIRE(again.ok());
  CHECK(again->nodes[1].api_address == "127.0.0.1:8081");
  CHECK(again->nodes[0].api_address.empty());
  CHECK(again->api_token_file == "/run/token");
  // Absent keys stay absent (no "api_address": "").
  CHECK(json.find("\"api_address\": \"\"") == std::string::npos);
}
