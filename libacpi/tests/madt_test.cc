#include "ssihv/acpi/madt.h"

#include <catch2/catch.hpp>

#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Config;
using testing::Le;
using testing::Subtables;
using testing::Sum;

std::string Nodes(int vcpus0, int vcpus1) {
  return "{\"nodes\": [{\"id\": 0, \"vcpus\": " + std::to_string(vcpus0) +
         ", \"memory_mib\": 64}, {\"id\": 1, \"vcpus\": " +
         std::to_string(vcpus1) + ", \"memory_mib\": 64}]}";
}

TEST_CASE("MADT structure layouts match ACPI 6.5 section 5.2.12") {
  static_assert(OffsetOf(kMadtFields, "Local Apic Address") == 36);
  static_assert(OffsetOf(kMadtFields, "Flags (PCAT_COMPAT)") == 40);
  static_assert(OffsetOf(kMadtLocalApicFields, "Local Apic ID") == 3);
  static_assert(OffsetOf(kMadtLocalApicFields, "Flags") == 4);
  static_assert(OffsetOf(kMadtIoApicFields, "Address") == 4);
  static_assert(OffsetOf(kMadtIoApicFields, "Interrupt") == 8);
  static_assert(OffsetOf(kMadtInterruptOverrideFields, "Interrupt") == 4);
  static_assert(OffsetOf(kMadtInterruptOverrideFields, "Flags (MPS INTI)") ==
                8);
  static_assert(OffsetOf(kMadtLocalApicNmiFields, "Interrupt Input LINT") == 5);
  static_assert(OffsetOf(kMadtLocalX2ApicFields, "Processor x2Apic ID") == 4);
  static_assert(OffsetOf(kMadtLocalX2ApicFields, "Processor UID") == 12);
  static_assert(OffsetOf(kMadtLocalX2ApicNmiFields, "Processor UID") == 4);
  static_assert(OffsetOf(kMadtLocalX2ApicNmiFields, "Interrupt Input LINT") ==
                8);
}

TEST_CASE(
    "MADT of the default cluster: 4 local APICs, I/O APIC, IRQ0->GSI2, NMI") {
  Bytes m =
      BuildMadt(cluster::DefaultClusterConfig(), MadtOptions{}, OemInfo{});
  CHECK(std::string(m.begin(), m.begin() + 4) == "APIC");
  CHECK(m[8] == 6);
  CHECK(Le(m, 4, 4) == m.size());
  CHECK(Sum(m) == 0);
  CHECK(Le(m, 36, 4) == 0xFEE00000);
  CHECK(Le(m, 40, 4) == 1);  // PCAT_COMPAT
  auto subs = Subtables(m, 44);
  REQUIRE(subs.size() == 7);
  for (uint32_t i = 0; i < 4; ++i) {
    const size_t at = subs[i].offset;
    CHECK(subs[i].type == 0);
    CHECK(subs[i].length == 8);
    CHECK(m[at + 2] == i);         // ACPI Processor UID
    CHECK(m[at + 3] == i);         // APIC ID
    CHECK(Le(m, at + 4, 4) == 1);  // Enabled
  }
  size_t io = subs[4].offset;
  CHECK(subs[4].type == 1);
  CHECK(subs[4].length == 12);
  CHECK(m[io + 2] == 0);  // I/O APIC ID
  CHECK(Le(m, io + 4, 4) == 0xFEC00000);
  CHECK(Le(m, io + 8, 4) == 0);  // GSI base
  size_t iso = subs[5].offset;
  CHECK(subs[5].type == 2);
  CHECK(subs[5].length == 10);
  CHECK(m[iso + 2] == 0);         // ISA bus
  CHECK(m[iso + 3] == 0);         // IRQ 0
  CHECK(Le(m, iso + 4, 4) == 2);  // GSI 2
  CHECK(Le(m, iso + 8, 2) == 0);  // conforms
  size_t nmi = subs[6].offset;
  CHECK(subs[6].type == 4);
  CHECK(subs[6].length == 6);
  CHECK(m[nmi + 2] == 0xFF);  // all processors
  CHECK(Le(m, nmi + 3, 2) == 0);
  CHECK(m[nmi + 5] == 1);  // LINT1
}

TEST_CASE("MADT uses x2APIC structures from APIC ID 255 on") {
  auto config = Config(Nodes(200, 100));
  Bytes m = BuildMadt(config, MadtOptions{}, OemInfo{});
  auto subs = Subtables(m, 44);
  // 255 local APIC + 45 x2APIC + I/O APIC + override + 2 NMI structures.
  REQUIRE(subs.size() == 300 + 4);
  for (uint32_t id = 0; id < 300; ++id) {
    const auto& s = subs[id];
    if (id < 255) {
      REQUIRE(s.type == 0);
      CHECK(m[s.offset + 3] == id);
    } else {
      REQUIRE(s.type == 9);
      REQUIRE(s.length == 16);
      CHECK(Le(m, s.offset + 2, 2) == 0);    // reserved
      CHECK(Le(m, s.offset + 4, 4) == id);   // x2APIC ID
      CHECK(Le(m, s.offset + 8, 4) == 1);    // enabled
      CHECK(Le(m, s.offset + 12, 4) == id);  // ACPI Processor UID
    }
  }
  const auto& x2nmi = subs.back();
  CHECK(x2nmi.type == 10);
  CHECK(x2nmi.length == 12);
  CHECK(Le(m, x2nmi.offset + 4, 4) == 0xFFFFFFFF);
  CHECK(m[x2nmi.offset + 8] == 1);
  CHECK(Sum(m) == 0);
}

TEST_CASE("MADT with exactly 255 vCPUs needs no x2APIC structure") {
  Bytes m = BuildMadt(Config(Nodes(255, 0)), MadtOptions{}, OemInfo{});
  auto subs = Subtables(m, 44);
  REQUIRE(subs.size() == 255 + 3);
  CHECK(subs[254].type == 0);
  CHECK(m[subs[254].offset + 3] == 254);
  for (const auto& s : subs) CHECK(s.type != 9);
  for (const auto& s : subs) CHECK(s.type != 10);
}

TEST_CASE("MADT honours its options") {
  MadtOptions o;
  o.local_apic_address = 0xFEE01000;
  o.pcat_compat = false;
  o.ioapic_id = 5;
  o.ioapic_address = 0xFEC01000;
  o.ioapic_gsi_base = 24;
  o.interrupt_overrides = {
      {0, 2, 0}, {9, 9, mps_inti::kActiveHigh | mps_inti::kLevelTriggered}};
  o.nmi_lint = 0;
  REQUIRE(ValidateMadtOptions(o).ok());
  Bytes m = BuildMadt(Config(Nodes(1, 0)), o, OemInfo{});
  CHECK(Le(m, 36, 4) == 0xFEE01000);
  CHECK(Le(m, 40, 4) == 0);
  auto subs = Subtables(m, 44);
  REQUIRE(subs.size() == 5);
  CHECK(m[subs[1].offset + 2] == 5);
  CHECK(Le(m, subs[1].offset + 4, 4) == 0xFEC01000);
  CHECK(Le(m, subs[1].offset + 8, 4) == 24);
  CHECK(m[subs[3].offset + 3] == 9);
  CHECK(Le(m, subs[3].offset + 4, 4) == 9);
  CHECK(Le(m, subs[3].offset + 8, 2) == 0xD);
  CHECK(m[subs[4].offset + 5] == 0);
}

TEST_CASE("MADT options are validated") {
  CHECK(ValidateMadtOptions(MadtOptions{}).ok());
  MadtOptions o;
  o.nmi_lint = 2;
  CHECK(ValidateMadtOptions(o).message().find("madt.nmi_lint") == 0);
  o = MadtOptions{};
  o.interrupt_overrides.push_back({16, 16, 0});
  CHECK(ValidateMadtOptions(o).message().find(
            "madt.interrupt_overrides[1].source") == 0);
  o = MadtOptions{};
  o.interrupt_overrides.push_back({0, 0, 0});
  CHECK(ValidateMadtOptions(o).message().find(
            "madt.interrupt_overrides[1].source") == 0);
  o = MadtOptions{};
  o.interrupt_overrides[0].flags = 0x2;  // reserved polarity
  CHECK(ValidateMadtOptions(o).message().find(
            "madt.interrupt_overrides[0].flags") == 0);
  o = MadtOptions{};
  o.ioapic_address = 0xFEC00010;
  CHECK(absl::IsInvalidArgument(ValidateMadtOptions(o)));
}

}  // namespace
}  // namespace ssihv::acpi
