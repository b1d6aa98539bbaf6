// MADT, the Multiple APIC Description Table (ACPI 6.5 §5.2.12), signature
// "APIC": one Processor Local APIC structure per vCPU with APIC ID < 255 and
// one Processor Local x2APIC structure per vCPU from 255 on (ACPI 6.5
// §5.2.12.12: IDs >= 255 must use x2APIC structures; Linux ignores x2APIC
// entries below 255 when local APIC entries exist), the I/O APIC, interrupt
// source overrides and the local APIC NMI wiring.
#ifndef SSIHV_ACPI_MADT_H_
#define SSIHV_ACPI_MADT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fields.h"
#include "ssihv/acpi/sdt.h"
#include "ssihv/cluster/config.h"

namespace ssihv::acpi {

inline constexpr uint8_t kMadtRevision = 6;  // ACPI 6.5

/// ACPI 6.5 §5.2.12, MADT format: header, then these two, then structures.
inline constexpr Field kMadtFields[] = {
    {"Header", 36, FieldFormat::kBytes},
    {"Local Apic Address", 4},
    {"Flags (PCAT_COMPAT)", 4},
};
inline constexpr size_t kMadtFixedSize = 44;
static_assert(FieldsSize(kMadtFields) == kMadtFixedSize);

/// ACPI 6.5 §5.2.12.2, Processor Local APIC Structure (type 0).
inline constexpr Field kMadtLocalApicFields[] = {
    {"Subtable Type", 1}, {"Length", 1}, {"Processor ID", 1},
    {"Local Apic ID", 1}, {"Flags", 4},
};
inline constexpr size_t kMadtLocalApicSize = 8;
static_assert(FieldsSize(kMadtLocalApicFields) == kMadtLocalApicSize);

/// ACPI 6.5 §5.2.12.3, I/O APIC Structure (type 1).
inline constexpr Field kMadtIoApicFields[] = {
    {"Subtable Type", 1}, {"Length", 1},  {"I/O Apic ID", 1},
    {"Reserved", 1},      {"Address", 4}, {"Interrupt", 4},
};
inline constexpr size_t kMadtIoApicSize = 12;
static_assert(FieldsSize(kMadtIoApicFields) == kMadtIoApicSize);

/// ACPI 6.5 §5.2.12.5, Interrupt Source Override Structure (type 2).
inline constexpr Field kMadtInterruptOverrideFields[] = {
    {"Subtable Type", 1}, {"Length", 1},    {"Bus", 1},
    {"Source", 1},        {"Interrupt", 4}, {"Flags (MPS INTI)", 2},
};
inline constexpr size_t kMadtInterruptOverrideSize = 10;
static_assert(FieldsSize(kMadtInterruptOverrideFields) ==
              kMadtInterruptOverrideSize);

/// ACPI 6.5 §5.2.12.7, Local APIC NMI Structure (type 4).
inline constexpr Field kMadtLocalApicNmiFields[] = {
    {"Subtable Type", 1},        {"Length", 1},
    {"Processor ID", 1},         {"Flags (MPS INTI)", 2},
    {"Interrupt Input LINT", 1},
};
inline constexpr size_t kMadtLocalApicNmiSize = 6;
static_assert(FieldsSize(kMadtLocalApicNmiFields) == kMadtLocalApicNmiSize);

/// ACPI 6.5 §5.2.12.12, Processor Local x2APIC Structure (type 9).
inline constexpr Field kMadtLocalX2ApicFields[] = {
    {"Subtable Type", 1},       {"Length", 1}, {"Reserved", 2},
    {"Processor x2Apic ID", 4}, {"Flags", 4},  {"Processor UID", 4},
};
inline constexpr size_t kMadtLocalX2ApicSize = 16;
static_assert(FieldsSize(kMadtLocalX2ApicFields) == kMadtLocalX2ApicSize);

/// ACPI 6.5 §5.2.12.13, Local x2APIC NMI Structure (type 10).
inline constexpr Field kMadtLocalX2ApicNmiFields[] = {
    {"Subtable Type", 1},        {"Length", 1},
    {"Flags (MPS INTI)", 2},     {"Processor UID", 4},
    {"Interrupt Input LINT", 1}, {"Reserved", 3},
};
inline constexpr size_t kMadtLocalX2ApicNmiSize = 12;
static_assert(FieldsSize(kMadtLocalX2ApicNmiFields) == kMadtLocalX2ApicNmiSize);

namespace madt_type {
inline constexpr uint8_t kLocalApic = 0;
inline constexpr uint8_t kIoApic = 1;
inline constexpr uint8_t kInterruptOverride = 2;
inline constexpr uint8_t kLocalApicNmi = 4;
inline constexpr uint8_t kLocalX2Apic = 9;
inline constexpr uint8_t kLocalX2ApicNmi = 10;
}  // namespace madt_type

/// First APIC ID described by an x2APIC structure instead of a local APIC
/// one (0xFF is the xAPIC broadcast ID).
inline constexpr uint32_t kFirstX2ApicId = 255;
/// Processor UID meaning "all processors" in the NMI structures.
inline constexpr uint8_t kAllProcessorsUid = 0xFF;
inline constexpr uint32_t kAllProcessorsX2Uid = 0xFFFFFFFF;

/// MPS INTI flags (ACPI 6.5 §5.2.12.5, table "MPS INTI Flags").
namespace mps_inti {
inline constexpr uint16_t kConforms = 0x0;
inline constexpr uint16_t kActiveHigh = 0x1;
inline constexpr uint16_t kActiveLow = 0x3;
inline constexpr uint16_t kEdgeTriggered = 0x1 << 2;
inline constexpr uint16_t kLevelTriggered = 0x3 << 2;
}  // namespace mps_inti

/// ISA IRQ `source` is wired to global system interrupt `gsi`.
struct InterruptOverride {
  uint8_t source = 0;
  uint32_t gsi = 0;
  uint16_t flags = mps_inti::kConforms;
  bool operator==(const InterruptOverride&) const = default;
};

struct MadtOptions {
  uint32_t local_apic_address = 0xFEE00000;
  /// PCAT_COMPAT: a dual 8259 PIC is present (KVM's in-kernel irqchip has
  /// one); Linux masks it when it switches to the I/O APIC.
  bool pcat_compat = true;
  uint8_t ioapic_id = 0;
  uint32_t ioapic_address = 0xFEC00000;
  uint32_t ioapic_gsi_base = 0;
  /// The PC convention: the PIT's IRQ 0 arrives on I/O APIC pin 2. The VMM
  /// must route GSI 2 to the PIT accordingly (KVM's default GSI routing maps
  /// GSI 0 to pin 0; QEMU installs a route GSI 0 -> pin 2).
  std::vector<InterruptOverride> interrupt_overrides = {
      {0, 2, mps_inti::kConforms}};
  /// Local APIC input the NMI is wired to (LINT1 on PCs).
  uint8_t nmi_lint = 1;
};

/// InvalidArgument naming the offending option (`madt.nmi_lint: ...`).
absl::Status ValidateMadtOptions(const MadtOptions& options);

/// Builds the MADT for the vCPUs of `config` (precondition: a valid config;
/// vCPU i has APIC ID i and ACPI processor UID i).
Bytes BuildMadt(const cluster::ClusterConfig& config,
                const MadtOptions& options, const OemInfo& oem);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_MADT_H_
