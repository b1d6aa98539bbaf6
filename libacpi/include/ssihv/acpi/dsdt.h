// DSDT, the Differentiated System Description Table (ACPI 6.5 §5.2.11.1),
// revision 2 (64-bit AML integers): a minimal, hand-encoded AML namespace
// holding what a direct-boot Linux guest needs from it:
//   - \_S5, the soft-off sleep type (ACPI 6.5 §7.4.2 "\_Sx (System States)"):
//     without it Linux does not register ACPI power-off;
//   - one PNP0501 (16550 UART) device per legacy serial port with its I/O
//     range and IRQ, so the serial driver binds through ACPI.
#ifndef SSIHV_ACPI_DSDT_H_
#define SSIHV_ACPI_DSDT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/sdt.h"

namespace ssihv::acpi {

inline constexpr uint8_t kDsdtRevision = 2;

struct SerialPort {
  uint16_t io_base = 0x3F8;
  uint8_t irq = 4;
  bool operator==(const SerialPort&) const = default;
};

struct DsdtOptions {
  /// SLP_TYPa/SLP_TYPb of \_S5. On a HW-reduced platform OSPM writes
  /// (SLP_TYP << 2) | SLP_EN (bit 5) to the FADT sleep control register, so
  /// the default 5 arrives as the byte 0x34.
  uint8_t s5_sleep_type = 5;
  /// Declared as \_SB.COM1, \_SB.COM2, ... (at most 4), _UID 1, 2, ...
  std::vector<SerialPort> serial_ports = {SerialPort{0x3F8, 4}};
};

/// InvalidArgument naming the option (`dsdt.s5_sleep_type: ...`).
absl::Status ValidateDsdtOptions(const DsdtOptions& options);

Bytes BuildDsdt(const DsdtOptions& options, const OemInfo& oem);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_DSDT_H_
