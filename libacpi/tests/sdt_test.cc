// The shared header, the GAS, the RSDP and the XSDT: field offsets as the
// spec tables give them, and checksums.
#include "ssihv/acpi/sdt.h"

#include <catch2/catch.hpp>

#include "ssihv/acpi/rsdp.h"
#include "test_util.h"

namespace ssihv::acpi {
namespace {

using testing::Le;
using testing::Sum;

OemInfo TestOem() {
  OemInfo oem;
  oem.oem_id = "OEMID";
  oem.oem_table_id = "TABLEID";
  oem.oem_revision = 0x11223344;
  oem.creator_id = "CRTR";
  oem.creator_revision = 0x55667788;
  return oem;
}

TEST_CASE("SDT header fields sit at the ACPI 6.5 Table 5.4 offsets") {
  static_assert(OffsetOf(kSdtHeaderFields, "Signature") == 0);
  static_assert(OffsetOf(kSdtHeaderFields, "Table Length") == 4);
  static_assert(OffsetOf(kSdtHeaderFields, "Revision") == 8);
  static_assert(OffsetOf(kSdtHeaderFields, "Checksum") == 9);
  static_assert(OffsetOf(kSdtHeaderFields, "Oem ID") == 10);
  static_assert(OffsetOf(kSdtHeaderFields, "Oem Table ID") == 16);
  static_assert(OffsetOf(kSdtHeaderFields, "Oem Revision") == 24);
  static_assert(OffsetOf(kSdtHeaderFields, "Asl Compiler ID") == 28);
  static_assert(OffsetOf(kSdtHeaderFields, "Asl Compiler Revision") == 32);

  ByteBuilder b;
  b.U8(0xEE);  // a table need not start at offset 0 of the buffer
  size_t start = BeginSdt(b, "TEST", 7, TestOem());
  b.U32(0xCAFEF00D);
  FinishSdt(b, start);
  Bytes t(b.bytes().begin() + 1, b.bytes().end());
  REQUIRE(t.size() == 40);
  CHECK(std::string(t.begin(), t.begin() + 4) == "TEST");
  CHECK(Le(t, 4, 4) == 40);
  CHECK(t[8] == 7);
  CHECK(std::string(t.begin() + 10, t.begin() + 16) == "OEMID ");
  CHECK(std::string(t.begin() + 16, t.begin() + 24) == "TABLEID ");
  CHECK(Le(t, 24, 4) == 0x11223344);
  CHECK(std::string(t.begin() + 28, t.begin() + 32) == "CRTR");
  CHECK(Le(t, 32, 4) == 0x55667788);
  CHECK(Le(t, 36, 4) == 0xCAFEF00D);
  CHECK(Sum(t) == 0);
}

TEST_CASE("OEM strings are validated for width and printability") {
  CHECK(ValidateOemInfo(OemInfo{}).ok());
  OemInfo oem;
  oem.oem_id = "SEVENCH";
  absl::Status st = ValidateOemInfo(oem);
  CHECK(absl::IsInvalidArgument(st));
  CHECK(st.message().find("oem.oem_id") == 0);
  oem = OemInfo{};
  oem.oem_table_id = "NINECHARS";
  CHECK(ValidateOemInfo(oem).message().find("oem.oem_table_id") == 0);
  oem = OemInfo{};
  oem.creator_id = std::string("A\x01", 2);
  CHECK(ValidateOemInfo(oem).message().find("oem.creator_id") == 0);
}

TEST_CASE("GAS fields sit at the ACPI 6.5 Table 5.1 offsets") {
  ByteBuilder b;
  GenericAddress gas{GenericAddress::kSystemMemory, 32, 4, 3,
                     0x1122334455667788};
  AppendGas(b, &gas);
  AppendGas(b, nullptr);
  const Bytes& t = b.bytes();
  REQUIRE(t.size() == 2 * kGasSize);
  CHECK(t[0] == 0);   // Address Space ID
  CHECK(t[1] == 32);  // Register Bit Width
  CHECK(t[2] == 4);   // Register Bit Offset
  CHECK(t[3] == 3);   // Access Size
  CHECK(Le(t, 4, 8) == 0x1122334455667788);
  CHECK(Bytes(t.begin() + 12, t.end()) == Bytes(12, 0));
  CHECK(GenericAddress::IoPort(0x64) ==
        GenericAddress{GenericAddress::kSystemIo, 8, 0, 1, 0x64});
}

TEST_CASE("RSDP has both checksums and points at the XSDT") {
  Bytes r = BuildRsdp(0x123456789A, TestOem());
  REQUIRE(r.size() == 36);
  CHECK(std::string(r.begin(), r.begin() + 8) == "RSD PTR ");
  CHECK(std::string(r.begin() + 9, r.begin() + 15) == "OEMID ");
  CHECK(r[15] == 2);                    // Revision
  CHECK(Le(r, 16, 4) == 0);             // RsdtAddress: none
  CHECK(Le(r, 20, 4) == 36);            // Length
  CHECK(Le(r, 24, 8) == 0x123456789A);  // XsdtAddress
  CHECK(Le(r, 33, 3) == 0);             // Reserved
  // ACPI 1.0 checksum over bytes 0..19, extended checksum over all 36.
  CHECK(Sum(Bytes(r.begin(), r.begin() + 20)) == 0);
  CHECK(Sum(r) == 0);
  // Each checksum byte is what it is: corrupting it breaks its sum.
  Bytes bad = r;
  bad[8] ^= 1;
  CHECK(Sum(Bytes(bad.begin(), bad.begin() + 20)) != 0);
}

TEST_CASE("XSDT lists 64-bit table addresses after the header") {
  const uint64_t addrs[] = {0x1000, 0xFFFFFFFF00000008, 0xE0040};
  Bytes x = BuildXsdt(addrs, TestOem());
  REQUIRE(x.size() == XsdtSize(3));
  REQUIRE(x.size() == 36 + 24);
  CHECK(std::string(x.begin(), x.begin() + 4) == "XSDT");
  CHECK(x[8] == 1);
  CHECK(Le(x, 4, 4) == x.size());
  CHECK(Le(x, 36, 8) == 0x1000);
  CHECK(Le(x, 44, 8) == 0xFFFFFFFF00000008);
  CHECK(Le(x, 52, 8) == 0xE0040);
  CHECK(Sum(x) == 0);
  CHECK(BuildXsdt({}, TestOem()).size() == 36);
}

}  // namespace
}  // namespace ssihv::acpi
