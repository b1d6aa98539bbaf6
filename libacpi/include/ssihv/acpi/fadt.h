// FADT, the Fixed ACPI Description Table (ACPI 6.5 §5.2.9, Table 5.9 "FADT
// Format"), signature "FACP", revision 6.
//
// ssihv describes a HW-reduced ACPI platform (ACPI 6.5 §4.1): no PM1/GPE
// register blocks, no SCI, no FACS. What a direct-boot VMM still needs is
// configurable: the reset register (so `reboot` reaches the VMM), the sleep
// control/status registers (so S5 power-off reaches it; the DSDT carries
// the matching \_S5 object), and the IA-PC boot architecture flags that tell
// Linux which legacy devices not to probe.
#ifndef SSIHV_ACPI_FADT_H_
#define SSIHV_ACPI_FADT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fields.h"
#include "ssihv/acpi/sdt.h"

namespace ssihv::acpi {

inline constexpr FieldFormat kGas = FieldFormat::kGas;
/// ACPI 6.5 Table 5.9, after the 36-byte header.
inline constexpr Field kFadtFields[] = {
    {"Header", 36, FieldFormat::kBytes},
    {"FIRMWARE_CTRL", 4},
    {"DSDT", 4},
    {"Reserved", 1},
    {"Preferred_PM_Profile", 1},
    {"SCI_INT", 2},
    {"SMI_CMD", 4},
    {"ACPI_ENABLE", 1},
    {"ACPI_DISABLE", 1},
    {"S4BIOS_REQ", 1},
    {"PSTATE_CNT", 1},
    {"PM1a_EVT_BLK", 4},
    {"PM1b_EVT_BLK", 4},
    {"PM1a_CNT_BLK", 4},
    {"PM1b_CNT_BLK", 4},
    {"PM2_CNT_BLK", 4},
    {"PM_TMR_BLK", 4},
    {"GPE0_BLK", 4},
    {"GPE1_BLK", 4},
    {"PM1_EVT_LEN", 1},
    {"PM1_CNT_LEN", 1},
    {"PM2_CNT_LEN", 1},
    {"PM_TMR_LEN", 1},
    {"GPE0_BLK_LEN", 1},
    {"GPE1_BLK_LEN", 1},
    {"GPE1_BASE", 1},
    {"CST_CNT", 1},
    {"P_LVL2_LAT", 2},
    {"P_LVL3_LAT", 2},
    {"FLUSH_SIZE", 2},
    {"FLUSH_STRIDE", 2},
    {"DUTY_OFFSET", 1},
    {"DUTY_WIDTH", 1},
    {"DAY_ALRM", 1},
    {"MON_ALRM", 1},
    {"CENTURY", 1},
    {"IAPC_BOOT_ARCH", 2},
    {"Reserved2", 1},
    {"Flags", 4},
    {"RESET_REG", 12, kGas},
    {"RESET_VALUE", 1},
    {"ARM_BOOT_ARCH", 2},
    {"FADT Minor Version", 1},
    {"X_FIRMWARE_CTRL", 8},
    {"X_DSDT", 8},
    {"X_PM1a_EVT_BLK", 12, kGas},
    {"X_PM1b_EVT_BLK", 12, kGas},
    {"X_PM1a_CNT_BLK", 12, kGas},
    {"X_PM1b_CNT_BLK", 12, kGas},
    {"X_PM2_CNT_BLK", 12, kGas},
    {"X_PM_TMR_BLK", 12, kGas},
    {"X_GPE0_BLK", 12, kGas},
    {"X_GPE1_BLK", 12, kGas},
    {"SLEEP_CONTROL_REG", 12, kGas},
    {"SLEEP_STATUS_REG", 12, kGas},
    {"Hypervisor Vendor Identity", 8, FieldFormat::kAscii},
};
inline constexpr size_t kFadtSize = 276;
static_assert(FieldsSize(kFadtFields) == kFadtSize);
inline constexpr uint8_t kFadtRevision = 6;
inline constexpr uint8_t kFadtMinorVersion = 5;  // ACPI 6.5

/// ACPI 6.5 §5.2.9, table "Fixed ACPI Description Table Fixed Feature Flags".
namespace fadt_flags {
inline constexpr uint32_t kWbinvd = 1u << 0;
inline constexpr uint32_t kPowerButton = 1u << 4;  // 1: control method/none
inline constexpr uint32_t kSleepButton = 1u << 5;  // 1: control method/none
inline constexpr uint32_t kResetRegSupported = 1u << 10;
inline constexpr uint32_t kHwReducedAcpi = 1u << 20;
}  // namespace fadt_flags

/// ACPI 6.5 §5.2.9.3, table "Fixed ACPI Description Table Boot IA-PC Boot
/// Architecture Flags".
struct IapcBootArch {
  bool legacy_devices = false;       // bit 0: LPC/ISA devices the OS must probe
  bool has_8042 = false;             // bit 1: an 8042 keyboard controller
  bool vga_not_present = true;       // bit 2
  bool msi_not_supported = true;     // bit 3 (no PCI yet)
  bool pcie_aspm_controls = false;   // bit 4
  bool cmos_rtc_not_present = true;  // bit 5

  uint16_t Encode() const;
};

/// What the caller (the VMM) emulates. The defaults match what ssihv-vmm
/// provides: reset by writing 0xFE to port 0x64 (the i8042 reset line, the
/// same one Linux's keyboard-controller reboot fallback pulses), and S5 via
/// 8-bit sleep registers at ports 0x600 (control) and 0x601 (status).
struct FadtOptions {
  std::optional<GenericAddress> reset_register = GenericAddress::IoPort(0x64);
  uint8_t reset_value = 0xFE;
  /// Both or neither: Linux only registers ACPI power-off on a HW-reduced
  /// platform when both addresses are non-zero.
  std::optional<GenericAddress> sleep_control_register =
      GenericAddress::IoPort(0x600);
  std::optional<GenericAddress> sleep_status_register =
      GenericAddress::IoPort(0x601);
  IapcBootArch iapc_boot_arch;
  /// ACPI 6.5 §5.2.9.1; 0 = Unspecified.
  uint8_t preferred_pm_profile = 0;
  /// FADT "Hypervisor Vendor Identity", at most 8 characters.
  std::string hypervisor_vendor = "SSIHV";
};

/// InvalidArgument naming the offending option (`fadt.reset_register: ...`).
absl::Status ValidateFadtOptions(const FadtOptions& options);

/// Builds the FADT pointing at the DSDT at `dsdt_address` (X_DSDT always;
/// the 32-bit DSDT field too when the address fits, as both must then agree).
Bytes BuildFadt(const FadtOptions& options, uint64_t dsdt_address,
                const OemInfo& oem);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_FADT_H_
