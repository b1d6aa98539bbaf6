#include "ssihv/acpi/slit.h"

#include <catch2/catch.hpp>

#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Config;
using testing::Le;
using testing::Sum;

TEST_CASE("SLIT holds the distance matrix row by row") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2},
      {"id": 1, "vcpus": 1, "memory_mib": 2},
      {"id": 2, "vcpus": 1, "memory_mib": 2}],
      "distances": [[10, 21, 32], [25, 10, 17], [255, 12, 10]]})");
  Bytes s = BuildSlit(config, OemInfo{});
  static_assert(OffsetOf(kSlitFields, "Localities") == 36);
  REQUIRE(s.size() == 44 + 9);
  CHECK(std::string(s.begin(), s.begin() + 4) == "SLIT");
  CHECK(s[8] == 1);
  CHECK(Le(s, 4, 4) == s.size());
  CHECK(Sum(s) == 0);
  CHECK(Le(s, 36, 8) == 3);
  // Entry[i][j] at 44 + i*N + j: row = from, column = to (asymmetric).
  const uint8_t expected[9] = {10, 21, 32, 25, 10, 17, 255, 12, 10};
  for (int k = 0; k < 9; ++k) CHECK(s[44 + k] == expected[k]);
}

TEST_CASE("SLIT defaults to 10 local, 20 remote") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2},
      {"id": 1, "vcpus": 0, "memory_mib": 2}]})");
  Bytes s = BuildSlit(config, OemInfo{});
  CHECK(Bytes(s.begin() + 44, s.end()) == Bytes{10, 20, 20, 10});
}

TEST_CASE("SLIT of one node is the single entry 10") {
  auto config =
      Config(R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 2}]})");
  Bytes s = BuildSlit(config, OemInfo{});
  CHECK(s.size() == 45);
  CHECK(Le(s, 36, 8) == 1);
  CHECK(s[44] == 10);
}

}  // namespace
}  // namespace ssihv::acpi
