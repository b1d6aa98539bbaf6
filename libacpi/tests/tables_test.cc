// The full layout: pointers between tables, placement rules, validation.
#include "ssihv/acpi/tables.h"

#include <catch2/catch.hpp>

#include "ssihv/acpi/hmat.h"
#include "ssihv/acpi/slit.h"
#include "ssihv/acpi/srat.h"
#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Config;
using testing::Le;
using testing::Sum;

Bytes Slice(const Bytes& b, size_t offset, size_t length) {
  REQUIRE(offset + length <= b.size());
  return Bytes(b.begin() + offset, b.begin() + offset + length);
}

// Follows the pointers from the RSDP as an OS would, with the image copied
// to guest memory at `gpa`, and checks every table it reaches.
void CheckPointerChain(const AcpiTables& t) {
  auto at = [&](uint64_t gpa, size_t length) {
    REQUIRE(gpa >= t.gpa);
    return Slice(t.bytes, gpa - t.gpa, length);
  };
  REQUIRE(t.rsdp.size() == 36);
  CHECK(Sum(t.rsdp) == 0);
  const uint64_t xsdt_gpa = Le(t.rsdp, 24, 8);
  Bytes head = at(xsdt_gpa, 36);
  CHECK(std::string(head.begin(), head.begin() + 4) == "XSDT");
  Bytes xsdt = at(xsdt_gpa, Le(head, 4, 4));
  CHECK(Sum(xsdt) == 0);
  REQUIRE(xsdt.size() == 36 + 8 * 5);
  std::vector<std::string> seen;
  for (size_t i = 0; i < 5; ++i) {
    const uint64_t gpa = Le(xsdt, 36 + 8 * i, 8);
    CHECK(gpa % 8 == 0);
    Bytes h = at(gpa, 36);
    Bytes table = at(gpa, Le(h, 4, 4));
    CHECK(Sum(table) == 0);
    seen.emplace_back(table.begin(), table.begin() + 4);
    if (seen.back() == "FACP") {
      const uint64_t dsdt_gpa = Le(table, 140, 8);
      CHECK(Le(table, 40, 4) == (dsdt_gpa <= UINT32_MAX ? dsdt_gpa : 0));
      Bytes dh = at(dsdt_gpa, 36);
      CHECK(std::string(dh.begin(), dh.begin() + 4) == "DSDT");
      CHECK(Sum(at(dsdt_gpa, Le(dh, 4, 4))) == 0);
    }
  }
  CHECK(seen ==
        std::vector<std::string>{"FACP", "APIC", "SRAT", "SLIT", "HMAT"});
  for (const TableLocation& loc : t.tables) {
    CHECK(loc.gpa == t.gpa + loc.offset);
    CHECK(loc.offset % 8 == 0);
    CHECK(std::string(t.bytes.begin() + loc.offset,
                      t.bytes.begin() + loc.offset + 4) == loc.signature);
    CHECK(Le(t.bytes, loc.offset + 4, 4) == loc.length);
  }
}

TEST_CASE("Default placement: RSDP first at 0xE0000, tables after it") {
  auto t = BuildAcpiTables(cluster::DefaultClusterConfig(), AcpiOptions{}, {});
  REQUIRE(t.ok());
  CHECK(t->gpa == 0xE0000);
  CHECK(t->rsdp_gpa == 0xE0000);
  REQUIRE(t->rsdp_offset.has_value());
  CHECK(*t->rsdp_offset == 0);
  CHECK(Slice(t->bytes, 0, 36) == t->rsdp);
  REQUIRE(t->tables.size() == 7);
  CHECK(t->tables[0].signature == "XSDT");
  CHECK(t->tables[0].offset == 40);  // 36 rounded up to 8
  CheckPointerChain(*t);
  // The leaf tables are exactly what their builders make.
  const auto& config = cluster::DefaultClusterConfig();
  CHECK(Bytes(t->Table("SRAT").begin(), t->Table("SRAT").end()) ==
        BuildSrat(config, OemInfo{}));
  CHECK(Bytes(t->Table("SLIT").begin(), t->Table("SLIT").end()) ==
        BuildSlit(config, OemInfo{}));
  CHECK(Bytes(t->Table("HMAT").begin(), t->Table("HMAT").end()) ==
        BuildHmat(config, OemInfo{}));
  CHECK(t->Table("FACS").empty());
  CHECK(t->Find("NONE") == nullptr);
  auto size = AcpiTablesSize(config, AcpiOptions{}, true);
  REQUIRE(size.ok());
  CHECK(*size == t->bytes.size());
}

TEST_CASE("Separate RSDP: tables above 4 GiB, RSDP in the BIOS area") {
  Placement p;
  p.tables_gpa = 0x1'2345'6000;
  p.rsdp_gpa = 0xF0000;
  auto t = BuildAcpiTables(cluster::DefaultClusterConfig(), AcpiOptions{}, p);
  REQUIRE(t.ok());
  CHECK(t->gpa == 0x1'2345'6000);
  CHECK(t->rsdp_gpa == 0xF0000);
  CHECK_FALSE(t->rsdp_offset.has_value());
  CHECK(t->tables[0].offset == 0);
  CheckPointerChain(*t);
  const TableLocation* facp = t->Find("FACP");
  REQUIRE(facp != nullptr);
  CHECK(Le(t->bytes, facp->offset + 40, 4) == 0);  // DSDT above 4 GiB
  auto size =
      AcpiTablesSize(cluster::DefaultClusterConfig(), AcpiOptions{}, false);
  REQUIRE(size.ok());
  CHECK(*size == t->bytes.size());
}

TEST_CASE("Every golden topology lays out with a valid pointer chain") {
  for (const char* name : testing::kGoldenTopologies) {
    INFO(name);
    auto t = BuildAcpiTables(testing::GoldenConfig(name), AcpiOptions{}, {});
    REQUIRE(t.ok());
    CheckPointerChain(*t);
  }
}

TEST_CASE("Placement errors are InvalidArgument naming the field") {
  const auto& config = cluster::DefaultClusterConfig();
  auto err = [&](Placement p) {
    auto t = BuildAcpiTables(config, AcpiOptions{}, p);
    REQUIRE_FALSE(t.ok());
    CHECK(absl::IsInvalidArgument(t.status()));
    return std::string(t.status().message());
  };
  CHECK(err({0xE0008, std::nullopt}).find("placement.tables_gpa") == 0);
  CHECK(err({0x100000, 0xE0004}).find("placement.rsdp_gpa") == 0);
  // The RSDP inside the tables.
  CHECK(err({0x100000, 0x100010}).find("placement.rsdp_gpa") == 0);
  // Tables starting in the BIOS area must end before 1 MiB.
  CHECK(err({0xFFF00, std::nullopt}).find("placement.tables_gpa") == 0);
  CHECK(err({(uint64_t{1} << 52) - 16, std::nullopt})
            .find("placement.tables_gpa") == 0);
  CHECK(
      err({0x100000, UINT64_MAX & ~uint64_t{15}}).find("placement.rsdp_gpa") ==
      0);
  // Adjacent, not overlapping, is fine.
  auto size = AcpiTablesSize(config, AcpiOptions{}, false);
  REQUIRE(size.ok());
  Placement ok{0x100000, 0x100000 + ((*size + 15) & ~size_t{15})};
  CHECK(BuildAcpiTables(config, AcpiOptions{}, ok).ok());
}

TEST_CASE("Tables too large for the BIOS area go elsewhere") {
  auto config = Config(R"({"nodes": [
      {"id": 0, "vcpus": 2048, "memory_mib": 1024},
      {"id": 1, "vcpus": 2048, "memory_mib": 1024}]})");
  auto in_bios = BuildAcpiTables(config, AcpiOptions{}, {});
  REQUIRE_FALSE(in_bios.ok());
  CHECK(in_bios.status().message().find("BIOS area") != std::string::npos);
  auto t = BuildAcpiTables(config, AcpiOptions{},
                           {0xBFF00000, uint64_t{kBiosAreaStart}});
  REQUIRE(t.ok());
  CHECK(t->bytes.size() > kBiosAreaEnd - kBiosAreaStart);
  CheckPointerChain(*t);
}

TEST_CASE("Hand-built configs are checked with libcluster's rules") {
  cluster::ClusterConfig c = cluster::DefaultClusterConfig();
  CHECK(ValidateConfigForAcpi(c).ok());
  std::swap(c.nodes[0], c.nodes[1]);
  CHECK(ValidateConfigForAcpi(c).message().find("nodes[0].id") == 0);
  c = cluster::DefaultClusterConfig();
  c.distances[0][0] = 11;
  CHECK(ValidateConfigForAcpi(c).message().find("distances[0][0]") == 0);
  c = cluster::DefaultClusterConfig();
  c.memory_latency_ns.pop_back();
  CHECK(ValidateConfigForAcpi(c).message().find("memory_latency_ns") == 0);
  c = cluster::DefaultClusterConfig();
  c.memory_bandwidth_mbps[1][0] = 0;
  CHECK(ValidateConfigForAcpi(c).message().find(
            "memory_bandwidth_mbps[1][0]") == 0);
  c = cluster::DefaultClusterConfig();
  c.nodes[1].memory_mib = 3;
  CHECK(ValidateConfigForAcpi(c).message().find("nodes[1].memory_mib") == 0);
  c.nodes[1].memory_mib = 2;
  c.nodes[0].vcpus = c.nodes[1].vcpus = 0;
  auto t = BuildAcpiTables(c, AcpiOptions{}, {});
  CHECK(absl::IsInvalidArgument(t.status()));
}

TEST_CASE("Invalid options are rejected before anything is built") {
  AcpiOptions o;
  o.madt.nmi_lint = 9;
  auto t = BuildAcpiTables(cluster::DefaultClusterConfig(), o, {});
  CHECK(t.status().message().find("madt.nmi_lint") == 0);
  o = AcpiOptions{};
  o.oem.oem_id = "TOOLONGID";
  CHECK(ValidateAcpiOptions(o).message().find("oem.oem_id") == 0);
  o = AcpiOptions{};
  o.dsdt.s5_sleep_type = 9;
  CHECK(ValidateAcpiOptions(o).message().find("dsdt.s5_sleep_type") == 0);
  o = AcpiOptions{};
  o.fadt.sleep_control_register.reset();
  CHECK(ValidateAcpiOptions(o).message().find("fadt.") == 0);
}

}  // namespace
}  // namespace ssihv::acpi
