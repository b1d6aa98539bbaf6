#include "ssihv/acpi/byte_builder.h"

#include <cassert>

namespace ssihv::acpi {

uint8_t ByteSum(absl::Span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return sum;
}

void ByteBuilder::Ascii(absl::string_view text, size_t width, char pad) {
  assert(text.size() <= width);
  bytes_.insert(bytes_.end(), text.begin(), text.end());
  bytes_.insert(bytes_.end(), width - text.size(), static_cast<uint8_t>(pad));
}

void ByteBuilder::AlignTo(size_t alignment) {
  assert(alignment != 0 && (alignment & (alignment - 1)) == 0);
  Zeros((alignment - bytes_.size() % alignment) % alignment);
}

void ByteBuilder::FixChecksum(size_t begin, size_t end,
                              size_t checksum_offset) {
  assert(begin <= checksum_offset && checksum_offset < end &&
         end <= bytes_.size());
  bytes_[checksum_offset] = 0;
  bytes_[checksum_offset] =
      ChecksumOf(absl::MakeConstSpan(bytes_.data() + begin, end - begin));
}

void ByteBuilder::AppendLe(uint64_t v, int width) {
  for (int i = 0; i < width; ++i) {
    bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
}

void ByteBuilder::PatchLe(size_t offset, uint64_t v, int width) {
  assert(offset + width <= bytes_.size());
  for (int i = 0; i < width; ++i) {
    bytes_[offset + i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

uint64_t ReadLe(absl::Span<const uint8_t> bytes, size_t offset, int width) {
  assert(offset + width <= bytes.size());
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | bytes[offset + i];
  return v;
}

}  // namespace ssihv::acpi
