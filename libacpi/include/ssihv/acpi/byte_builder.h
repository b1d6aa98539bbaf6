// Little-endian byte appends and the ACPI byte checksum. Every table encoder
// writes through this, so the byte order is decided in exactly one place
// (ACPI 6.5 §5.2: "All numeric values in ACPI-defined tables ... are stored
// in little-endian format").
#ifndef SSIHV_ACPI_BYTE_BUILDER_H_
#define SSIHV_ACPI_BYTE_BUILDER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ssihv::acpi {

using Bytes = std::vector<uint8_t>;

/// Sum of all bytes modulo 256. An ACPI table is valid when its bytes sum to
/// zero (ACPI 6.5 §5.2.6, Table 5.4 "Checksum").
uint8_t ByteSum(absl::Span<const uint8_t> bytes);

/// The checksum byte that makes `bytes` (with that byte counted as zero) sum
/// to zero.
inline uint8_t ChecksumOf(absl::Span<const uint8_t> bytes) {
  return static_cast<uint8_t>(0x100 - ByteSum(bytes));
}

/// Appends little-endian integers, fixed-width ASCII and zero padding to a
/// growing buffer; patches values in place once offsets are known.
class ByteBuilder {
 public:
  ByteBuilder() = default;

  void U8(uint8_t v) { bytes_.push_back(v); }
  void U16(uint16_t v) { AppendLe(v, 2); }
  void U32(uint32_t v) { AppendLe(v, 4); }
  void U64(uint64_t v) { AppendLe(v, 8); }
  void Zeros(size_t n) { bytes_.insert(bytes_.end(), n, 0); }
  void Append(absl::Span<const uint8_t> data) {
    bytes_.insert(bytes_.end(), data.begin(), data.end());
  }
  /// Appends `text` padded with `pad` to exactly `width` bytes. `text` must
  /// not be longer than `width` (callers validate user-supplied strings).
  void Ascii(absl::string_view text, size_t width, char pad = ' ');
  /// Zero bytes until size() is a multiple of `alignment` (a power of two).
  void AlignTo(size_t alignment);

  void PatchU8(size_t offset, uint8_t v) { bytes_.at(offset) = v; }
  void PatchU32(size_t offset, uint32_t v) { PatchLe(offset, v, 4); }
  void PatchU64(size_t offset, uint64_t v) { PatchLe(offset, v, 8); }

  /// Stores at `checksum_offset` the byte that makes [begin, end) sum to 0.
  void FixChecksum(size_t begin, size_t end, size_t checksum_offset);

  size_t size() const { return bytes_.size(); }
  const Bytes& bytes() const { return bytes_; }
  Bytes Take() && { return std::move(bytes_); }

 private:
  void AppendLe(uint64_t v, int width);
  void PatchLe(size_t offset, uint64_t v, int width);

  Bytes bytes_;
};

/// Reads a little-endian integer of `width` bytes at `offset` (bounds are the
/// caller's: asserted).
uint64_t ReadLe(absl::Span<const uint8_t> bytes, size_t offset, int width);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_BYTE_BUILDER_H_
