#include "ssihv/acpi/byte_builder.h"

#include <catch2/catch.hpp>

using ssihv::acpi::ByteBuilder;
using ssihv::acpi::Bytes;

TEST_CASE("ByteBuilder appends little-endian integers") {
  ByteBuilder b;
  b.U8(0x01);
  b.U16(0x0302);
  b.U32(0x07060504);
  b.U64(0x0F0E0D0C0B0A0908);
  CHECK(b.bytes() == Bytes{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
}

TEST_CASE("ByteBuilder pads ASCII to its field width") {
  ByteBuilder b;
  b.Ascii("AB", 4);
  b.Ascii("CD", 3, '\0');
  CHECK(b.bytes() == Bytes{'A', 'B', ' ', ' ', 'C', 'D', 0});
}

TEST_CASE("ByteBuilder aligns with zeros and patches in place") {
  ByteBuilder b;
  b.U8(0xAA);
  b.AlignTo(8);
  CHECK(b.size() == 8);
  b.AlignTo(8);
  CHECK(b.size() == 8);
  b.Zeros(8);
  b.PatchU32(1, 0x44332211);
  b.PatchU64(8, 0x8877665544332211);
  b.PatchU8(0, 0x55);
  CHECK(b.bytes() == Bytes{0x55, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0x11, 0x22,
                           0x33, 0x44, 0x55, 0x66, 0x77, 0x88});
}

TEST_CASE("FixChecksum makes a range sum to zero modulo 256") {
  ByteBuilder b;
  for (int i = 0; i < 300; ++i) b.U8(static_cast<uint8_t>(i * 7));
  b.FixChecksum(10, 200, 50);
  CHECK(ssihv::acpi::ByteSum(absl::MakeConstSpan(b.bytes()).subspan(10, 190)) ==
        0);
  // Bytes outside the range are untouched and do not matter.
  CHECK(b.bytes()[9] == 63);
  CHECK(b.bytes()[200] == static_cast<uint8_t>(1400));
}

TEST_CASE("ChecksumOf is the complement of the byte sum") {
  Bytes data = {0x10, 0x20, 0xF0};  // sums to 0x120 -> 0x20
  CHECK(ssihv::acpi::ByteSum(data) == 0x20);
  CHECK(ssihv::acpi::ChecksumOf(data) == 0xE0);
  CHECK(ssihv::acpi::ChecksumOf(Bytes{}) == 0);
}

TEST_CASE("ReadLe reads what the builder wrote") {
  ByteBuilder b;
  b.U16(0xBEEF);
  b.U64(0x0123456789ABCDEF);
  CHECK(ssihv::acpi::ReadLe(b.bytes(), 0, 2) == 0xBEEF);
  CHECK(ssihv::acpi::ReadLe(b.bytes(), 2, 8) == 0x0123456789ABCDEF);
  CHECK(ssihv::acpi::ReadLe(b.bytes(), 3, 1) == 0xCD);
}
