#include "ssihv/acpi/dump.h"

#include <catch2/catch.hpp>

#include "ssihv/acpi/tables.h"
#include "test_util.h"

namespace ssihv::acpi {
namespace {

bool Has(const std::string& text, const std::string& needle) {
  INFO("looking for: " << needle);
  return text.find(needle) != std::string::npos;
}

AcpiTables Default() {
  auto t = BuildAcpiTables(cluster::DefaultClusterConfig(), AcpiOptions{}, {});
  REQUIRE(t.ok());
  return *std::move(t);
}

std::string Dump(absl::Span<const uint8_t> table) {
  auto d = DumpTable(table);
  INFO(d.status().ToString());
  REQUIRE(d.ok());
  return *d;
}

TEST_CASE("Dump decodes every table of the default cluster") {
  AcpiTables t = Default();
  std::string rsdp = Dump(t.rsdp);
  CHECK(Has(rsdp, "XSDT Address : 00000000000E0028"));
  CHECK(Has(rsdp, "extended checksum: valid"));

  std::string srat = Dump(t.Table("SRAT"));
  CHECK(Has(srat, "Signature : \"SRAT\""));
  CHECK(Has(srat, "Checksum of the whole table: valid"));
  CHECK(Has(srat, "[098h 0152   1]                  Subtable Type : 01"));
  CHECK(Has(srat, "Base Address : 0000000040000000"));

  std::string slit = Dump(t.Table("SLIT"));
  CHECK(Has(slit, "Locality   0 : 0A 14"));
  CHECK(Has(slit, "Locality   1 : 14 0A"));

  std::string hmat = Dump(t.Table("HMAT"));
  CHECK(Has(hmat, "Entry : 0032  (PD 0 -> 1: 5000 ns)"));
  CHECK(Has(hmat, "Entry : 0014  (PD 1 -> 1: 20000 MB/s)"));

  std::string madt = Dump(t.Table("APIC"));
  CHECK(Has(madt, "[I/O APIC]"));
  CHECK(Has(madt, "Address : FEC00000"));

  std::string facp = Dump(t.Table("FACP"));
  CHECK(Has(facp, "HW_REDUCED_ACPI=1 RESET_REG_SUP=1"));
  CHECK(Has(facp, "Address : 0000000000000600"));

  std::string dsdt = Dump(t.Table("DSDT"));
  CHECK(Has(dsdt, "Name (_S5, Package (0x04) { 0x5, 0x5, Zero, Zero })"));
  CHECK(Has(dsdt, "Device (COM1)"));
  CHECK(Has(dsdt, "Name (_HID, EisaId (\"PNP0501\"))"));

  std::string xsdt = Dump(t.Table("XSDT"));
  CHECK(Has(xsdt, "ACPI Table Address : 00000000000E0078"));
}

TEST_CASE("Dump flags a bad checksum") {
  AcpiTables t = Default();
  Bytes srat(t.Table("SRAT").begin(), t.Table("SRAT").end());
  srat[60] ^= 0x40;
  CHECK(Has(Dump(srat), "Checksum of the whole table: INVALID"));
  Bytes rsdp = t.rsdp;
  rsdp[25] ^= 1;
  CHECK(Has(Dump(rsdp), "valid; extended checksum: INVALID"));
}

TEST_CASE("Dump rejects malformed tables without reading out of bounds") {
  AcpiTables t = Default();
  Bytes srat(t.Table("SRAT").begin(), t.Table("SRAT").end());
  CHECK_FALSE(DumpTable(Bytes(srat.begin(), srat.begin() + 20)).ok());
  // Declared length disagrees with the buffer.
  Bytes shorter(srat.begin(), srat.end() - 1);
  CHECK(absl::IsInvalidArgument(DumpTable(shorter).status()));
  // A subtable length of 0 and one running past the end.
  Bytes zero = srat;
  zero[49] = 0;
  CHECK(DumpTable(zero).status().message().find("SRAT: at offset 0x30") == 0);
  Bytes past = srat;
  past[0x71] = 0xF0;
  CHECK_FALSE(DumpTable(past).ok());
  Bytes hmat(t.Table("HMAT").begin(), t.Table("HMAT").end());
  hmat[0x84] = 0x40;  // initiator count no longer matches the length
  CHECK_FALSE(DumpTable(hmat).ok());
  CHECK_FALSE(DumpTable(Bytes{'R', 'S', 'D', ' ', 'P', 'T', 'R', ' ', 0}).ok());
}

TEST_CASE("AML dump stops cleanly at anything it does not know") {
  // A method opcode (0x14) ssihv never emits.
  std::string text = DumpAml(Bytes{0x14, 0x05, 'M', 'T', 'H', 'D'});
  CHECK(Has(text, "unsupported AML opcode 0x14 at AML offset 0x0"));
  // A package whose length runs past the end.
  text = DumpAml(Bytes{0x08, '_', 'S', '5', '_', 0x12, 0x3F, 0x04});
  CHECK(Has(text, "bad Name data"));
  // Every truncation of a valid DSDT body decodes without crashing.
  AcpiTables t = Default();
  auto dsdt = t.Table("DSDT").subspan(36);
  for (size_t n = 0; n < dsdt.size(); ++n) {
    std::string partial = DumpAml(dsdt.subspan(0, n));
    // Cut inside the first term (Name (_S5, ...), 14 bytes): reported.
    if (n > 0 && n < 14) CHECK(Has(partial, "at AML offset"));
  }
}

}  // namespace
}  // namespace ssihv::acpi
