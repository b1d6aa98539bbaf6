// The pieces every system description table shares: the 36-byte header
// (ACPI 6.5 §5.2.6, Table 5.4 "DESCRIPTION_HEADER Fields"), the identity
// strings that go in it, and the Generic Address Structure (ACPI 6.5
// §5.2.3.2, Table 5.1).
#ifndef SSIHV_ACPI_SDT_H_
#define SSIHV_ACPI_SDT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fields.h"

namespace ssihv::acpi {

/// ACPI 6.5 §5.2.6, Table 5.4: the system description table header.
inline constexpr Field kSdtHeaderFields[] = {
    {"Signature", 4, FieldFormat::kAscii},
    {"Table Length", 4},
    {"Revision", 1},
    {"Checksum", 1},
    {"Oem ID", 6, FieldFormat::kAscii},
    {"Oem Table ID", 8, FieldFormat::kAscii},
    {"Oem Revision", 4},
    {"Asl Compiler ID", 4, FieldFormat::kAscii},
    {"Asl Compiler Revision", 4},
};
inline constexpr size_t kSdtHeaderSize = 36;
static_assert(FieldsSize(kSdtHeaderFields) == kSdtHeaderSize);
inline constexpr size_t kSdtLengthOffset =
    OffsetOf(kSdtHeaderFields, "Table Length");
inline constexpr size_t kSdtChecksumOffset =
    OffsetOf(kSdtHeaderFields, "Checksum");

/// The identity written into every table header (and the RSDP's OEMID).
/// Strings shorter than their field are padded with spaces.
struct OemInfo {
  std::string oem_id = "SSIHV";           // at most 6 characters
  std::string oem_table_id = "SSIHVTBL";  // at most 8 characters
  uint32_t oem_revision = 1;
  std::string creator_id = "SSIH";  // at most 4 characters ("ASL compiler")
  uint32_t creator_revision = 1;
};

/// InvalidArgument naming the field (`oem.oem_id: ...`) if a string is too
/// long or not printable ASCII.
absl::Status ValidateOemInfo(const OemInfo& oem);

/// Appends a header with zero length and checksum; returns its offset, to be
/// handed to FinishSdt once the table body is appended.
size_t BeginSdt(ByteBuilder& b, const char (&signature)[5], uint8_t revision,
                const OemInfo& oem);

/// Patches the table length (from `start` to the end of the buffer) and the
/// checksum of the table that starts at `start`.
void FinishSdt(ByteBuilder& b, size_t start);

/// ACPI 6.5 §5.2.3.2, Table 5.1: Generic Address Structure (GAS).
inline constexpr Field kGasFields[] = {
    {"Space ID", 1},     {"Bit Width", 1}, {"Bit Offset", 1},
    {"Access Width", 1}, {"Address", 8},
};
inline constexpr size_t kGasSize = 12;
static_assert(FieldsSize(kGasFields) == kGasSize);

struct GenericAddress {
  /// Address Space ID values (ACPI 6.5 Table 5.1).
  static constexpr uint8_t kSystemMemory = 0;
  static constexpr uint8_t kSystemIo = 1;
  /// Access Size: 1 = byte ... 4 = qword.
  static constexpr uint8_t kByteAccess = 1;

  uint8_t space_id = kSystemIo;
  uint8_t bit_width = 8;
  uint8_t bit_offset = 0;
  uint8_t access_size = kByteAccess;
  uint64_t address = 0;

  /// An 8-bit register at I/O port `port`, accessed a byte at a time.
  static GenericAddress IoPort(uint16_t port) {
    return {kSystemIo, 8, 0, kByteAccess, port};
  }
  bool operator==(const GenericAddress&) const = default;
};

/// Appends a GAS; `nullptr` appends the all-zero "not present" GAS.
void AppendGas(ByteBuilder& b, const GenericAddress* gas);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_SDT_H_
