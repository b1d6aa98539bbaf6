#include "ssihv/acpi/hmat.h"

#include <catch2/catch.hpp>

#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Config;
using testing::Le;
using testing::Subtables;
using testing::Sum;

struct Locality {
  uint8_t data_type;
  uint64_t base;
  std::vector<uint32_t> initiators, targets;
  std::vector<uint16_t> entries;
};

// Independent decode of the two locality structures.
std::vector<Locality> Localities(const Bytes& h) {
  std::vector<Locality> out;
  for (const auto& sub : Subtables(h, 40, /*wide=*/true)) {
    if (sub.type != 1) continue;
    const size_t at = sub.offset;
    Locality l;
    CHECK(h[at + 8] == 0);  // flags: memory hierarchy
    l.data_type = h[at + 9];
    CHECK(h[at + 10] == 0);  // minimum transfer size
    const size_t s = Le(h, at + 12, 4), t = Le(h, at + 16, 4);
    CHECK(Le(h, at + 20, 4) == 0);
    l.base = Le(h, at + 24, 8);
    REQUIRE(sub.length == 32 + 4 * s + 4 * t + 2 * s * t);
    size_t p = at + 32;
    for (size_t i = 0; i < s; ++i, p += 4) l.initiators.push_back(Le(h, p, 4));
    for (size_t i = 0; i < t; ++i, p += 4) l.targets.push_back(Le(h, p, 4));
    for (size_t i = 0; i < s * t; ++i, p += 2) l.entries.push_back(Le(h, p, 2));
    out.push_back(l);
  }
  return out;
}

TEST_CASE("HMAT structure layouts match ACPI 6.3 section 5.2.27") {
  static_assert(OffsetOf(kHmatProximityFields, "Flags") == 8);
  static_assert(OffsetOf(kHmatProximityFields,
                         "Attached Initiator Proximity Domain") == 12);
  static_assert(OffsetOf(kHmatProximityFields, "Memory Proximity Domain") ==
                16);
  static_assert(OffsetOf(kHmatLocalityFields, "Data Type") == 9);
  static_assert(
      OffsetOf(kHmatLocalityFields, "Initiator Proximity Domains #") == 12);
  static_assert(OffsetOf(kHmatLocalityFields, "Entry Base Unit") == 24);
}

TEST_CASE("ScaleToEntries is exact when the values share a divisor") {
  const uint64_t ps[] = {100'000, 5'000'000, 5'000'000, 100'000};
  ScaledEntries s = ScaleToEntries(ps);
  CHECK(s.exact);
  CHECK(s.base_unit == 100'000);
  CHECK(s.entries == std::vector<uint16_t>{1, 50, 50, 1});

  const uint64_t odd[] = {7, 65534 * 7};
  s = ScaleToEntries(odd);
  CHECK(s.exact);
  CHECK(s.base_unit == 7);
  CHECK(s.entries == std::vector<uint16_t>{1, 65534});

  const uint64_t one[] = {123456789};
  s = ScaleToEntries(one);
  CHECK(s.base_unit == 123456789);
  CHECK(s.entries == std::vector<uint16_t>{1});
}

TEST_CASE("ScaleToEntries rounds when the range exceeds 16 bits") {
  // 1 and 65535 share no divisor and span more than 0xFFFE: base 2.
  const uint64_t v[] = {1, 65535, 3, 4};
  ScaledEntries s = ScaleToEntries(v);
  CHECK_FALSE(s.exact);
  CHECK(s.base_unit == 2);
  // Halves round up; nothing becomes 0 ("no information").
  CHECK(s.entries == std::vector<uint16_t>{1, 32768, 2, 2});

  // Huge spread: the largest keeps < 1/65534 relative error.
  const uint64_t w[] = {1'000'000'000'000'000ULL, 999, 1'000'000'000'001ULL};
  s = ScaleToEntries(w);
  CHECK(s.base_unit == (w[0] + 65533) / 65534);
  CHECK(s.entries[0] == 65534);
  CHECK(s.entries[1] == 1);
  CHECK(s.entries[2] == 66);  // 1e12 / 15259254738 = 65.53 -> 66
  for (size_t i = 0; i < 3; ++i) CHECK(s.entries[i] <= kMaxHmatEntry);
}

TEST_CASE("HMAT of the default cluster") {
  Bytes h = BuildHmat(cluster::DefaultClusterConfig(), OemInfo{});
  CHECK(std::string(h.begin(), h.begin() + 4) == "HMAT");
  CHECK(h[8] == 2);
  CHECK(Le(h, 4, 4) == h.size());
  CHECK(Sum(h) == 0);
  CHECK(Le(h, 36, 4) == 0);
  auto subs = Subtables(h, 40, true);
  REQUIRE(subs.size() == 4);
  for (uint32_t n = 0; n < 2; ++n) {
    const size_t at = subs[n].offset;
    CHECK(subs[n].type == 0);
    CHECK(subs[n].length == 40);
    CHECK(Le(h, at + 8, 2) == 1);   // initiator valid
    CHECK(Le(h, at + 12, 4) == n);  // attached initiator: the node itself
    CHECK(Le(h, at + 16, 4) == n);  // memory domain
    for (size_t k = at + 20; k < at + 40; ++k) CHECK(h[k] == 0);
  }
  auto loc = Localities(h);
  REQUIRE(loc.size() == 2);
  CHECK(loc[0].data_type == 0);  // access latency, picoseconds
  CHECK(loc[0].base == 100'000);
  CHECK(loc[0].initiators == std::vector<uint32_t>{0, 1});
  CHECK(loc[0].targets == std::vector<uint32_t>{0, 1});
  CHECK(loc[0].entries == std::vector<uint16_t>{1, 50, 50, 1});
  CHECK(loc[1].data_type == 3);  // access bandwidth, MB/s
  CHECK(loc[1].base == 1000);
  CHECK(loc[1].entries == std::vector<uint16_t>{20, 3, 3, 20});
}

TEST_CASE("HMAT reproduces asymmetric matrices exactly") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 2, "memory_mib": 2},
      {"id": 1, "vcpus": 3, "memory_mib": 2},
      {"id": 2, "vcpus": 1, "memory_mib": 2}],
      "memory_latency_ns": [[90, 4100, 7300], [4500, 110, 2900],
                            [8000, 3100, 95]],
      "memory_bandwidth_mbps": [[21000, 3200, 1800], [3000, 19000, 4100],
                                [1500, 3900, 22000]]})");
  auto loc = Localities(BuildHmat(config, OemInfo{}));
  REQUIRE(loc.size() == 2);
  for (size_t i = 0; i < 3; ++i) {
    for (size_t j = 0; j < 3; ++j) {
      CHECK(loc[0].entries[i * 3 + j] * loc[0].base ==
            config.memory_latency_ns[i][j] * 1000);
      CHECK(loc[1].entries[i * 3 + j] * loc[1].base ==
            config.memory_bandwidth_mbps[i][j]);
    }
  }
}

TEST_CASE("HMAT: a memory-only node is a target, never an initiator") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 2, "memory_mib": 2},
      {"id": 1, "vcpus": 0, "memory_mib": 2},
      {"id": 2, "vcpus": 2, "memory_mib": 2}],
      "memory_latency_ns": [[100, 300, 5000], [7, 7, 7], [5000, 300, 100]]})");
  Bytes h = BuildHmat(config, OemInfo{});
  auto subs = Subtables(h, 40, true);
  REQUIRE(subs.size() == 5);
  CHECK(Le(h, subs[1].offset + 8, 2) == 0);  // no attached initiator
  CHECK(Le(h, subs[1].offset + 12, 4) == 0);
  CHECK(Le(h, subs[1].offset + 16, 4) == 1);
  auto loc = Localities(h);
  CHECK(loc[0].initiators == std::vector<uint32_t>{0, 2});
  CHECK(loc[0].targets == std::vector<uint32_t>{0, 1, 2});
  // Row 1 (the memory-only node's 7 ns) is not in the matrix.
  CHECK(loc[0].base == 100'000);
  CHECK(loc[0].entries == std::vector<uint16_t>{1, 3, 50, 50, 3, 1});
}

TEST_CASE("HMAT scales latencies too spread for 16 bits") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2},
      {"id": 1, "vcpus": 1, "memory_mib": 2}],
      "memory_latency_ns": [[1, 100000000], [100000000, 3]]})");
  auto loc = Localities(BuildHmat(config, OemInfo{}));
  const uint64_t base = loc[0].base;
  CHECK(base == (100'000'000'000ULL + 65533) / 65534);
  CHECK(loc[0].entries[1] == 65534);
  CHECK(loc[0].entries[0] == 1);  // clamped up from 0.0007
  CHECK(loc[0].entries[3] == 1);
}

}  // namespace
}  // namespace ssihv::acpi
