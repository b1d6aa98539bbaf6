#include "ssihv/acpi/srat.h"

#include <catch2/catch.hpp>

#include "ssihv/cluster/layout.h"
#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Config;
using testing::Le;
using testing::Subtables;
using testing::Sum;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

struct Mem {
  uint32_t domain;
  uint64_t base, length;
  bool hot_pluggable = false;
  bool operator==(const Mem&) const = default;
};

// Decodes SRAT bytes independently of the encoder: APIC ID -> domain, and
// the memory ranges in order.
struct Decoded {
  std::vector<std::pair<uint32_t, uint32_t>> cpus;  // (apic id, domain)
  std::vector<Mem> memory;
};

Decoded Decode(const Bytes& s) {
  Decoded d;
  for (const auto& sub : Subtables(s, 48)) {
    const size_t at = sub.offset;
    if (sub.type == 0) {
      REQUIRE(sub.length == 16);
      CHECK(Le(s, at + 4, 4) == 1);   // enabled
      CHECK(s[at + 8] == 0);          // SAPIC EID
      CHECK(Le(s, at + 12, 4) == 0);  // clock domain
      uint32_t domain = s[at + 2] | Le(s, at + 9, 3) << 8;
      d.cpus.push_back({s[at + 3], domain});
    } else if (sub.type == 2) {
      REQUIRE(sub.length == 24);
      CHECK(Le(s, at + 2, 2) == 0);
      CHECK(Le(s, at + 12, 4) == 1);
      CHECK(Le(s, at + 16, 8) == 0);  // clock domain, reserved
      d.cpus.push_back({static_cast<uint32_t>(Le(s, at + 8, 4)),
                        static_cast<uint32_t>(Le(s, at + 4, 4))});
    } else {
      REQUIRE(sub.type == 1);
      REQUIRE(sub.length == 40);
      CHECK(Le(s, at + 6, 2) == 0);
      CHECK(Le(s, at + 24, 4) == 0);
      const uint64_t flags = Le(s, at + 28, 4);
      CHECK((flags & ~uint64_t{2}) == 1);  // enabled, maybe hot-pluggable
      CHECK(Le(s, at + 32, 8) == 0);
      d.memory.push_back({static_cast<uint32_t>(Le(s, at + 2, 4)),
                          Le(s, at + 8, 8), Le(s, at + 16, 8),
                          (flags & 2) != 0});
    }
  }
  return d;
}

TEST_CASE("SRAT structure layouts match ACPI 6.5 section 5.2.16") {
  static_assert(OffsetOf(kSratFields, "Table Revision") == 36);
  static_assert(OffsetOf(kSratLocalApicFields, "Apic ID") == 3);
  static_assert(OffsetOf(kSratLocalApicFields, "Proximity Domain High(24)") ==
                9);
  static_assert(OffsetOf(kSratMemoryFields, "Base Address") == 8);
  static_assert(OffsetOf(kSratMemoryFields, "Address Length") == 16);
  static_assert(OffsetOf(kSratMemoryFields, "Flags") == 28);
  static_assert(OffsetOf(kSratX2ApicFields, "Proximity Domain") == 4);
  static_assert(OffsetOf(kSratX2ApicFields, "Apic ID") == 8);
  static_assert(OffsetOf(kSratX2ApicFields, "Flags") == 12);
}

TEST_CASE("SRAT of the default cluster") {
  Bytes s = BuildSrat(cluster::DefaultClusterConfig(), OemInfo{});
  CHECK(std::string(s.begin(), s.begin() + 4) == "SRAT");
  CHECK(s[8] == 3);
  CHECK(Le(s, 4, 4) == s.size());
  CHECK(Sum(s) == 0);
  CHECK(Le(s, 36, 4) == 1);  // reserved, 1 for backward compatibility
  CHECK(Le(s, 40, 8) == 0);
  Decoded d = Decode(s);
  CHECK(d.cpus == std::vector<std::pair<uint32_t, uint32_t>>{
                      {0, 0}, {1, 0}, {2, 1}, {3, 1}});
  CHECK(d.memory == std::vector<Mem>{{0, 0, kGiB}, {1, kGiB, kGiB}});
}

TEST_CASE("SRAT splits a node's memory around the 3 GiB hole") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2048},
      {"id": 1, "vcpus": 1, "memory_mib": 2048},
      {"id": 2, "vcpus": 1, "memory_mib": 1024}]})");
  Decoded d = Decode(BuildSrat(config, OemInfo{}));
  CHECK(d.memory == std::vector<Mem>{{0, 0, 2 * kGiB},
                                     {1, 2 * kGiB, kGiB},
                                     {1, 4 * kGiB, kGiB},
                                     {2, 5 * kGiB, kGiB}});
  // Same ranges as the guest layout the VMM and the pager use.
  cluster::GuestLayout layout(config);
  REQUIRE(layout.ranges().size() == d.memory.size());
  for (size_t i = 0; i < d.memory.size(); ++i) {
    CHECK(layout.ranges()[i].gpa == d.memory[i].base);
    CHECK(layout.ranges()[i].node == d.memory[i].domain);
  }
}

TEST_CASE("SRAT: a node ending exactly at 3 GiB is not split") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 3072},
      {"id": 1, "vcpus": 1, "memory_mib": 2}]})");
  Decoded d = Decode(BuildSrat(config, OemInfo{}));
  CHECK(d.memory ==
        std::vector<Mem>{{0, 0, 3 * kGiB}, {1, 4 * kGiB, 2 * kMiB}});
}

TEST_CASE("SRAT uses x2APIC affinity from APIC ID 255 on") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 200, "memory_mib": 64},
      {"id": 1, "vcpus": 100, "memory_mib": 64}]})");
  Bytes s = BuildSrat(config, OemInfo{});
  auto subs = Subtables(s, 48);
  REQUIRE(subs.size() == 302);
  for (size_t i = 0; i < 300; ++i) CHECK(subs[i].type == (i < 255 ? 0u : 2u));
  Decoded d = Decode(s);
  REQUIRE(d.cpus.size() == 300);
  for (uint32_t id = 0; id < 300; ++id) {
    CHECK(d.cpus[id].first == id);
    CHECK(d.cpus[id].second == (id < 200 ? 0u : 1u));
  }
}

TEST_CASE("SRAT: a memory-only node has memory but no processors") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 2, "memory_mib": 1024},
      {"id": 1, "vcpus": 0, "memory_mib": 512},
      {"id": 2, "vcpus": 1, "memory_mib": 512}]})");
  Decoded d = Decode(BuildSrat(config, OemInfo{}));
  CHECK(d.cpus ==
        std::vector<std::pair<uint32_t, uint32_t>>{{0, 0}, {1, 0}, {2, 2}});
  CHECK(d.memory == std::vector<Mem>{{0, 0, kGiB},
                                     {1, kGiB, 512 * kMiB},
                                     {2, kGiB + 512 * kMiB, 512 * kMiB}});
}

TEST_CASE(
    "SRAT of a guest across processes: other nodes' memory is "
    "hot-pluggable, node 0's is not, whatever the hole splits") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2048},
      {"id": 1, "vcpus": 1, "memory_mib": 2048},
      {"id": 2, "vcpus": 1, "memory_mib": 1024}]})");
  Decoded d = Decode(BuildSrat(
      config, OemInfo{}, SratOptions{.remote_nodes_hot_pluggable = true}));
  CHECK(d.memory == std::vector<Mem>{{0, 0, 2 * kGiB, false},
                                     {1, 2 * kGiB, kGiB, true},
                                     {1, 4 * kGiB, kGiB, true},
                                     {2, 5 * kGiB, kGiB, true}});
  CHECK(d.cpus.size() == 3);
  // The default (acpi-gen, a one-process VM): nothing hot-pluggable.
  for (const Mem& m : Decode(BuildSrat(config, OemInfo{})).memory) {
    CHECK_FALSE(m.hot_pluggable);
  }
}

TEST_CASE("SRAT of a single node") {
  auto config =
      Config(R"({"nodes": [{"id": 0, "vcpus": 4, "memory_mib": 512}]})");
  Decoded d = Decode(BuildSrat(config, OemInfo{}));
  CHECK(d.cpus.size() == 4);
  for (auto [id, domain] : d.cpus) CHECK(domain == 0);
  CHECK(d.memory == std::vector<Mem>{{0, 0, 512 * kMiB}});
}

}  // namespace
}  // namespace ssihv::acpi
