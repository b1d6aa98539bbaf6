// Compile-time field layouts of ACPI structures. Each table header declares
// its structures as arrays of {name, size}; the sizes are static_assert'ed
// against the lengths the spec gives, pointer offsets are looked up by name
// (so the layout patches exactly the field the spec names), and the decoder
// behind `acpi-gen --dump` walks the same arrays.
#ifndef SSIHV_ACPI_FIELDS_H_
#define SSIHV_ACPI_FIELDS_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ssihv::acpi {

/// How the decoder prints a field.
enum class FieldFormat : uint8_t {
  kHex,    // little-endian integer, zero-padded hex
  kAscii,  // fixed-width text (signatures, OEM IDs)
  kGas,    // 12-byte Generic Address Structure, expanded
  kBytes,  // raw bytes, printed as a hex list
};

struct Field {
  std::string_view name;
  uint16_t size;
  FieldFormat format = FieldFormat::kHex;
};

/// Total size in bytes of a field list.
template <size_t N>
constexpr size_t FieldsSize(const Field (&fields)[N]) {
  size_t total = 0;
  for (const Field& f : fields) total += f.size;
  return total;
}

/// Byte offset of the field called `name`; a name that is not in the list
/// does not compile when used in a constant expression.
template <size_t N>
constexpr size_t OffsetOf(const Field (&fields)[N], std::string_view name) {
  size_t offset = 0;
  for (const Field& f : fields) {
    if (f.name == name) return offset;
    offset += f.size;
  }
  throw "ssihv::acpi::OffsetOf: no such field";
}

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_FIELDS_H_
