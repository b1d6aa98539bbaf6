// RSDP, the Root System Description Pointer (ACPI 6.5 §5.2.5.3, Table 5.3
// "RSDP Structure"), and the XSDT it points to (ACPI 6.5 §5.2.8, Table 5.8
// "Extended System Description Table Fields (XSDT)").
#ifndef SSIHV_ACPI_RSDP_H_
#define SSIHV_ACPI_RSDP_H_

#include <cstdint>

#include "absl/types/span.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fields.h"
#include "ssihv/acpi/sdt.h"

namespace ssihv::acpi {

inline constexpr Field kRsdpFields[] = {
    {"Signature", 8, FieldFormat::kAscii},
    {"Checksum", 1},
    {"Oem ID", 6, FieldFormat::kAscii},
    {"Revision", 1},
    {"RSDT Address", 4},
    {"Length", 4},
    {"XSDT Address", 8},
    {"Extended Checksum", 1},
    {"Reserved", 3},
};
inline constexpr size_t kRsdpSize = 36;
static_assert(FieldsSize(kRsdpFields) == kRsdpSize);
/// The ACPI 1.0 checksum covers only the first 20 bytes.
inline constexpr size_t kRsdpV1Size = OffsetOf(kRsdpFields, "Length");
static_assert(kRsdpV1Size == 20);
inline constexpr size_t kRsdpXsdtOffset = OffsetOf(kRsdpFields, "XSDT Address");
/// The legacy BIOS area OSPM scans for the RSDP on 16-byte boundaries
/// (ACPI 6.5 §5.2.5.1 "Finding the RSDP on IA-PC Systems").
inline constexpr uint64_t kBiosAreaStart = 0xE0000;
inline constexpr uint64_t kBiosAreaEnd = 0x100000;
inline constexpr uint64_t kRsdpAlignment = 16;

/// A revision-2 RSDP pointing at the XSDT only (RsdtAddress 0: OSPM uses the
/// XSDT whenever the revision is >= 2), with both checksums set.
Bytes BuildRsdp(uint64_t xsdt_address, const OemInfo& oem);

/// The XSDT: the header followed by one 64-bit address per table.
inline constexpr size_t kXsdtEntrySize = 8;
Bytes BuildXsdt(absl::Span<const uint64_t> table_addresses, const OemInfo& oem);
inline constexpr size_t XsdtSize(size_t num_tables) {
  return kSdtHeaderSize + kXsdtEntrySize * num_tables;
}

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_RSDP_H_
