// A readable decode of ssihv's ACPI tables in the style of `iasl -d`
// ("[offset decimal length] Field Name : value"), for `acpi-gen --dump` and
// for debugging a guest. It is a decoder of bytes, independent of the
// encoders, so a wrong encoder shows up as a wrong dump.
#ifndef SSIHV_ACPI_DUMP_H_
#define SSIHV_ACPI_DUMP_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ssihv::acpi {

/// Decodes one table: the RSDP ("RSD PTR ") or a system description table.
/// Known tables (XSDT, FACP, APIC, SRAT, SLIT, HMAT, DSDT) are decoded field
/// by field, others as header plus hex. Checksums are verified and a bad one
/// is flagged in the text. InvalidArgument if the bytes are too short for
/// the header, the declared length disagrees with the buffer, or a subtable
/// length runs past the end of the table.
absl::StatusOr<std::string> DumpTable(absl::Span<const uint8_t> table);

/// Decodes the AML of a DSDT/SSDT body into ASL-like text (the subset ssihv
/// emits: Name, Scope, Device, Package, Buffer, integers, strings); anything
/// else is shown as hex.
std::string DumpAml(absl::Span<const uint8_t> aml);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_DUMP_H_
