// The AML encoder against hand-assembled bytes from the ACPI 6.5 §20.2
// grammar, and the DSDT built from it.
#include "ssihv/acpi/dsdt.h"

#include <catch2/catch.hpp>

#include "aml.h"
#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Le;
using testing::Sum;

TEST_CASE("PkgLength counts its own bytes and widens at the limits") {
  CHECK(aml::PkgLength(0) == Bytes{0x01});
  CHECK(aml::PkgLength(62) == Bytes{0x3F});
  CHECK(aml::PkgLength(63) == Bytes{0x41, 0x04});             // 65 = 0x041
  CHECK(aml::PkgLength(4093) == Bytes{0x4F, 0xFF});           // 4095 = 0xFFF
  CHECK(aml::PkgLength(4094) == Bytes{0x81, 0x00, 0x01});     // 4097
  CHECK(aml::PkgLength(1048572) == Bytes{0x8F, 0xFF, 0xFF});  // 0xFFFFF
  CHECK(aml::PkgLength(1048573) == Bytes{0xC1, 0x00, 0x00, 0x01});
}

TEST_CASE("NameString pads segments and encodes prefixes") {
  CHECK(aml::NameString("_S5") == Bytes{'_', 'S', '5', '_'});
  CHECK(aml::NameString("\\_SB") == Bytes{'\\', '_', 'S', 'B', '_'});
  CHECK(aml::NameString("\\_SB.COM1") ==
        Bytes{'\\', 0x2E, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'});
}

TEST_CASE("Integers use the shortest AML encoding") {
  CHECK(aml::Integer(0) == Bytes{0x00});
  CHECK(aml::Integer(1) == Bytes{0x01});
  CHECK(aml::Integer(2) == Bytes{0x0A, 0x02});
  CHECK(aml::Integer(0xFF) == Bytes{0x0A, 0xFF});
  CHECK(aml::Integer(0x100) == Bytes{0x0B, 0x00, 0x01});
  CHECK(aml::Integer(0x10000) == Bytes{0x0C, 0x00, 0x00, 0x01, 0x00});
  CHECK(aml::Integer(0x100000000) == Bytes{0x0E, 0, 0, 0, 0, 1, 0, 0, 0});
  CHECK(aml::Integer(UINT64_MAX) == Bytes{0xFF});
}

TEST_CASE("EisaId compresses PNP IDs as ASL does") {
  CHECK(aml::EisaId("PNP0501") == Bytes{0x0C, 0x41, 0xD0, 0x05, 0x01});
  CHECK(aml::EisaId("PNP0A03") == Bytes{0x0C, 0x41, 0xD0, 0x0A, 0x03});
}

TEST_CASE("The default DSDT is the hand-assembled AML") {
  Bytes d = BuildDsdt(DsdtOptions{}, OemInfo{});
  const Bytes body = {// Name (_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })
                      0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, 0x05,
                      0x0A, 0x05, 0x00, 0x00,
                      // Scope (_SB) { Device (COM1) {
                      0x10, 0x32, '_', 'S', 'B', '_', 0x5B, 0x82, 0x2B, 'C',
                      'O', 'M', '1',
                      //   Name (_HID, EisaId ("PNP0501"))
                      0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01,
                      //   Name (_UID, One)
                      0x08, '_', 'U', 'I', 'D', 0x01,
                      //   Name (_CRS, ResourceTemplate () {
                      0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0A, 0x0D,
                      //     IO (Decode16, 0x3F8, 0x3F8, 0x00, 0x08)
                      0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x00, 0x08,
                      //     IRQNoFlags () {4}, then the End Tag
                      0x22, 0x10, 0x00, 0x79, 0x00};
  REQUIRE(d.size() == 36 + body.size());
  CHECK(std::string(d.begin(), d.begin() + 4) == "DSDT");
  CHECK(d[8] == 2);  // revision 2: 64-bit integers
  CHECK(Le(d, 4, 4) == d.size());
  CHECK(Sum(d) == 0);
  CHECK(Bytes(d.begin() + 36, d.end()) == body);
}

TEST_CASE("DSDT options: sleep type and serial ports") {
  DsdtOptions o;
  o.s5_sleep_type = 7;
  o.serial_ports = {};
  Bytes d = BuildDsdt(o, OemInfo{});
  CHECK(Bytes(d.begin() + 36, d.end()) == Bytes{0x08, '_', 'S', '5', '_', 0x12,
                                                0x08, 0x04, 0x0A, 0x07, 0x0A,
                                                0x07, 0x00, 0x00});
  o.s5_sleep_type = 0;
  o.serial_ports = {{0x3F8, 4}, {0x2F8, 3}};
  d = BuildDsdt(o, OemInfo{});
  CHECK(Sum(d) == 0);
  const std::string text(d.begin(), d.end());
  CHECK(text.find("COM1") != std::string::npos);
  CHECK(text.find("COM2") != std::string::npos);
  // COM2's IRQ mask (bit 3) and _UID 2.
  CHECK(text.find(std::string("\x22\x08\x00", 3)) != std::string::npos);
  CHECK(text.find(std::string("_UID\x0A\x02", 6)) != std::string::npos);
}

TEST_CASE("DSDT options are validated") {
  CHECK(ValidateDsdtOptions(DsdtOptions{}).ok());
  DsdtOptions o;
  o.s5_sleep_type = 8;
  CHECK(ValidateDsdtOptions(o).message().find("dsdt.s5_sleep_type") == 0);
  o = DsdtOptions{};
  o.serial_ports.push_back({0x2F8, 16});
  CHECK(ValidateDsdtOptions(o).message().find("dsdt.serial_ports[1].irq") == 0);
  o = DsdtOptions{};
  o.serial_ports.assign(5, SerialPort{});
  CHECK(absl::IsInvalidArgument(ValidateDsdtOptions(o)));
}

}  // namespace
}  // namespace ssihv::acpi
