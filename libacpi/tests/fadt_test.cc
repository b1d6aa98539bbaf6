#include "ssihv/acpi/fadt.h"

#include <catch2/catch.hpp>

#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Le;
using testing::Sum;

TEST_CASE("FADT fields sit at the ACPI 6.5 Table 5.9 offsets") {
  static_assert(OffsetOf(kFadtFields, "FIRMWARE_CTRL") == 36);
  static_assert(OffsetOf(kFadtFields, "DSDT") == 40);
  static_assert(OffsetOf(kFadtFields, "Preferred_PM_Profile") == 45);
  static_assert(OffsetOf(kFadtFields, "SCI_INT") == 46);
  static_assert(OffsetOf(kFadtFields, "PM1a_EVT_BLK") == 56);
  static_assert(OffsetOf(kFadtFields, "IAPC_BOOT_ARCH") == 109);
  static_assert(OffsetOf(kFadtFields, "Flags") == 112);
  static_assert(OffsetOf(kFadtFields, "RESET_REG") == 116);
  static_assert(OffsetOf(kFadtFields, "RESET_VALUE") == 128);
  static_assert(OffsetOf(kFadtFields, "FADT Minor Version") == 131);
  static_assert(OffsetOf(kFadtFields, "X_DSDT") == 140);
  static_assert(OffsetOf(kFadtFields, "X_PM1a_EVT_BLK") == 148);
  static_assert(OffsetOf(kFadtFields, "SLEEP_CONTROL_REG") == 244);
  static_assert(OffsetOf(kFadtFields, "SLEEP_STATUS_REG") == 256);
  static_assert(OffsetOf(kFadtFields, "Hypervisor Vendor Identity") == 268);

  FadtOptions o;
  o.preferred_pm_profile = 4;
  Bytes f = BuildFadt(o, 0xE0190, OemInfo{});
  REQUIRE(f.size() == 276);
  CHECK(std::string(f.begin(), f.begin() + 4) == "FACP");
  CHECK(Le(f, 4, 4) == 276);
  CHECK(f[8] == 6);  // revision
  CHECK(Sum(f) == 0);
  CHECK(Le(f, 36, 4) == 0);        // no FACS
  CHECK(Le(f, 40, 4) == 0xE0190);  // DSDT
  CHECK(f[45] == 4);
  CHECK(Le(f, 46, 2) == 0);  // SCI_INT
  CHECK(Le(f, 48, 4) == 0);  // SMI_CMD
  // Default boot flags: VGA not present (bit 2), MSI not supported (bit 3),
  // CMOS RTC not present (bit 5); no 8042, no legacy devices.
  CHECK(Le(f, 109, 2) == 0x2C);
  // WBINVD | PWR_BUTTON | SLP_BUTTON | RESET_REG_SUP | HW_REDUCED_ACPI.
  CHECK(Le(f, 112, 4) == (1u | 1u << 4 | 1u << 5 | 1u << 10 | 1u << 20));
  // RESET_REG: 8-bit system I/O port 0x64, byte access; value 0xFE.
  CHECK(f[116] == 1);
  CHECK(f[117] == 8);
  CHECK(f[118] == 0);
  CHECK(f[119] == 1);
  CHECK(Le(f, 120, 8) == 0x64);
  CHECK(f[128] == 0xFE);
  CHECK(f[131] == 5);               // minor version (ACPI 6.5)
  CHECK(Le(f, 132, 8) == 0);        // X_FIRMWARE_CTRL
  CHECK(Le(f, 140, 8) == 0xE0190);  // X_DSDT
  for (size_t off = 148; off < 244; ++off) CHECK(f[off] == 0);
  CHECK(f[244] == 1);
  CHECK(Le(f, 248, 8) == 0x600);  // SLEEP_CONTROL_REG
  CHECK(f[256] == 1);
  CHECK(Le(f, 260, 8) == 0x601);  // SLEEP_STATUS_REG
  CHECK(std::string(f.begin() + 268, f.begin() + 273) == "SSIHV");
  CHECK(Le(f, 273, 3) == 0);
}

TEST_CASE("FADT leaves the 32-bit DSDT field zero above 4 GiB") {
  Bytes f = BuildFadt(FadtOptions{}, 0x1'0000'1000, OemInfo{});
  CHECK(Le(f, 40, 4) == 0);
  CHECK(Le(f, 140, 8) == 0x1'0000'1000);
  CHECK(Sum(f) == 0);
}

TEST_CASE("FADT without reset or sleep registers clears their fields") {
  FadtOptions o;
  o.reset_register.reset();
  o.sleep_control_register.reset();
  o.sleep_status_register.reset();
  o.iapc_boot_arch = IapcBootArch{true, true, false, false, true, false};
  REQUIRE(ValidateFadtOptions(o).ok());
  Bytes f = BuildFadt(o, 0x1000, OemInfo{});
  CHECK((Le(f, 112, 4) & (1u << 10)) == 0);
  CHECK((Le(f, 112, 4) & (1u << 20)) != 0);
  for (size_t off = 116; off < 129; ++off) CHECK(f[off] == 0);
  for (size_t off = 244; off < 268; ++off) CHECK(f[off] == 0);
  CHECK(Le(f, 109, 2) == 0x13);  // legacy | 8042 | ASPM
  CHECK(Sum(f) == 0);
}

TEST_CASE("FADT options are validated") {
  CHECK(ValidateFadtOptions(FadtOptions{}).ok());
  FadtOptions o;
  o.sleep_status_register.reset();
  CHECK(ValidateFadtOptions(o).message().find("fadt.sleep_status_register") ==
        0);
  o = FadtOptions{};
  o.reset_register->address = 0x10000;
  CHECK(ValidateFadtOptions(o).message().find("fadt.reset_register") == 0);
  o = FadtOptions{};
  o.reset_register->bit_width = 16;
  CHECK(ValidateFadtOptions(o).message().find("fadt.reset_register") == 0);
  o = FadtOptions{};
  o.sleep_control_register->address = 0;
  CHECK(ValidateFadtOptions(o).message().find("fadt.sleep_control_register") ==
        0);
  o = FadtOptions{};
  o.sleep_status_register->space_id = 2;
  CHECK(ValidateFadtOptions(o).message().find("fadt.sleep_status_register") ==
        0);
  o = FadtOptions{};
  o.hypervisor_vendor = "NINECHARS";
  CHECK(absl::IsInvalidArgument(ValidateFadtOptions(o)));
  o = FadtOptions{};
  o.reset_register =
      GenericAddress{GenericAddress::kSystemMemory, 8, 0, 1, 0xFED00000};
  CHECK(ValidateFadtOptions(o).ok());
}

}  // namespace
}  // namespace ssihv::acpi
