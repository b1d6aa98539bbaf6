// Helpers shared by the libacpi tests: configs from JSON, little-endian
// reads, and a subtable walker written independently of the encoders.
#ifndef SSIHV_ACPI_TESTS_TEST_UTIL_H_
#define SSIHV_ACPI_TESTS_TEST_UTIL_H_

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "ssihv/acpi/byte_builder.h"
#include "ssihv/cluster/config.h"

namespace ssihv::acpi::testing {

inline cluster::ClusterConfig Config(const std::string& json) {
  auto config = cluster::ParseClusterConfig(json);
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  return *config;
}

/// The cluster.json of a golden topology (libacpi/tests/golden/<name>/).
inline cluster::ClusterConfig GoldenConfig(const std::string& name) {
  auto config = cluster::LoadClusterConfig(std::string(SSIHV_ACPI_GOLDEN_DIR) +
                                           "/" + name + "/cluster.json");
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  return *config;
}

inline const char* const kGoldenTopologies[] = {
    "two_node_default", "three_node_asymmetric", "split_by_hole",
    "x2apic_300_vcpus", "memory_only_node",      "one_node"};

/// Little-endian read with a bounds check that fails the test.
inline uint64_t Le(const Bytes& b, size_t offset, int width) {
  REQUIRE(offset + width <= b.size());
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | b[offset + i];
  return v;
}

inline uint8_t Sum(const Bytes& b) {
  unsigned s = 0;
  for (uint8_t x : b) s += x;
  return static_cast<uint8_t>(s);
}

struct Sub {
  size_t offset;
  uint32_t type;
  uint32_t length;
};

/// Subtables after `first`: 1-byte type and length (MADT, SRAT), or with
/// `wide` a 2-byte type and a 4-byte length at +4 (HMAT).
inline std::vector<Sub> Subtables(const Bytes& table, size_t first,
                                  bool wide = false) {
  std::vector<Sub> out;
  size_t at = first;
  while (at < table.size()) {
    Sub s{at, static_cast<uint32_t>(Le(table, at, wide ? 2 : 1)),
          static_cast<uint32_t>(wide ? Le(table, at + 4, 4)
                                     : Le(table, at + 1, 1))};
    REQUIRE(s.length > 0);
    out.push_back(s);
    at += s.length;
  }
  REQUIRE(at == table.size());
  return out;
}

}  // namespace ssihv::acpi::testing

#endif  // SSIHV_ACPI_TESTS_TEST_UTIL_H_
