#include "ssihv/acpi/fadt.h"

#include <cassert>

#include "absl/strings/str_cat.h"

namespace ssihv::acpi {
namespace {

absl::Status CheckGas(absl::string_view key, const GenericAddress& gas) {
  if (gas.space_id != GenericAddress::kSystemIo &&
      gas.space_id != GenericAddress::kSystemMemory) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, ": space_id must be 0 (system memory) or 1 (system I/O)"));
  }
  if (gas.address == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": address 0 means \"not present\"; omit it"));
  }
  if (gas.space_id == GenericAddress::kSystemIo && gas.address > 0xffff) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": I/O port must be in 1..0xffff"));
  }
  return absl::OkStatus();
}

}  // namespace

uint16_t IapcBootArch::Encode() const {
  return static_cast<uint16_t>(
      (legacy_devices ? 1u << 0 : 0) | (has_8042 ? 1u << 1 : 0) |
      (vga_not_present ? 1u << 2 : 0) | (msi_not_supported ? 1u << 3 : 0) |
      (pcie_aspm_controls ? 1u << 4 : 0) |
      (cmos_rtc_not_present ? 1u << 5 : 0));
}

absl::Status ValidateFadtOptions(const FadtOptions& options) {
  if (options.reset_register) {
    absl::Status st = CheckGas("fadt.reset_register", *options.reset_register);
    if (!st.ok()) return st;
    // OSPM writes RESET_VALUE as one byte (ACPI 6.5 §4.8.3.6).
    if (options.reset_register->bit_width != 8) {
      return absl::InvalidArgumentError(
          "fadt.reset_register: must be an 8-bit register");
    }
  }
  if (options.sleep_control_register.has_value() !=
      options.sleep_status_register.has_value()) {
    return absl::InvalidArgumentError(
        "fadt.sleep_status_register: sleep control and status registers "
        "must both be present or both absent");
  }
  if (options.sleep_control_register) {
    absl::Status st = CheckGas("fadt.sleep_control_register",
                               *options.sleep_control_register);
    if (st.ok()) {
      st = CheckGas("fadt.sleep_status_register",
                    *options.sleep_status_register);
    }
    if (!st.ok()) return st;
  }
  if (options.hypervisor_vendor.size() > 8) {
    return absl::InvalidArgumentError(
        "fadt.hypervisor_vendor: at most 8 characters");
  }
  if (options.preferred_pm_profile > 8) {
    return absl::InvalidArgumentError(
        "fadt.preferred_pm_profile: must be in 0..8 (ACPI 6.5 §5.2.9.1)");
  }
  return absl::OkStatus();
}

Bytes BuildFadt(const FadtOptions& options, uint64_t dsdt_address,
                const OemInfo& oem) {
  ByteBuilder b;
  size_t start = BeginSdt(b, "FACP", kFadtRevision, oem);
  b.U32(0);  // FIRMWARE_CTRL: no FACS on a HW-reduced platform
  // DSDT: the 32-bit copy is used only when X_DSDT is zero; when both are
  // set they must agree, so write it only when the address fits.
  b.U32(dsdt_address <= UINT32_MAX ? static_cast<uint32_t>(dsdt_address) : 0);
  b.U8(0);                             // Reserved (INT_MODEL in ACPI 1.0)
  b.U8(options.preferred_pm_profile);  // Preferred_PM_Profile
  b.U16(0);                            // SCI_INT: HW-reduced ACPI has no SCI
  b.U32(0);  // SMI_CMD: no SMM, ACPI is always enabled
  b.U8(0);   // ACPI_ENABLE
  b.U8(0);   // ACPI_DISABLE
  b.U8(0);   // S4BIOS_REQ
  b.U8(0);   // PSTATE_CNT
  // PM1a_EVT_BLK .. GPE1_BLK: no fixed hardware register blocks.
  b.Zeros(8 * 4);
  // PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN, GPE0_BLK_LEN,
  // GPE1_BLK_LEN, GPE1_BASE, CST_CNT.
  b.Zeros(8);
  b.U16(0);  // P_LVL2_LAT
  b.U16(0);  // P_LVL3_LAT
  b.U16(0);  // FLUSH_SIZE
  b.U16(0);  // FLUSH_STRIDE
  b.U8(0);   // DUTY_OFFSET
  b.U8(0);   // DUTY_WIDTH
  b.U8(0);   // DAY_ALRM
  b.U8(0);   // MON_ALRM
  b.U8(0);   // CENTURY: no CMOS RTC century register
  b.U16(options.iapc_boot_arch.Encode());  // IAPC_BOOT_ARCH
  b.U8(0);                                 // Reserved
  uint32_t flags = fadt_flags::kWbinvd | fadt_flags::kPowerButton |
                   fadt_flags::kSleepButton | fadt_flags::kHwReducedAcpi;
  if (options.reset_register) flags |= fadt_flags::kResetRegSupported;
  b.U32(flags);  // Flags
  AppendGas(b, options.reset_register ? &*options.reset_register : nullptr);
  b.U8(options.reset_register ? options.reset_value : 0);  // RESET_VALUE
  b.U16(0);                                                // ARM_BOOT_ARCH
  b.U8(kFadtMinorVersion);                                 // FADT Minor Version
  b.U64(0);             // X_FIRMWARE_CTRL: no FACS
  b.U64(dsdt_address);  // X_DSDT
  // X_PM1a_EVT_BLK .. X_GPE1_BLK: absent on a HW-reduced platform.
  b.Zeros(8 * kGasSize);
  AppendGas(b, options.sleep_control_register ? &*options.sleep_control_register
                                              : nullptr);  // SLEEP_CONTROL_REG
  AppendGas(b, options.sleep_status_register ? &*options.sleep_status_register
                                             : nullptr);  // SLEEP_STATUS_REG
  b.Ascii(options.hypervisor_vendor, 8, '\0');  // Hypervisor Vendor Identity
  FinishSdt(b, start);
  assert(b.size() == kFadtSize);
  return std::move(b).Take();
}

}  // namespace ssihv::acpi
