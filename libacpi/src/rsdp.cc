#include "ssihv/acpi/rsdp.h"

#include <cassert>

namespace ssihv::acpi {

Bytes BuildRsdp(uint64_t xsdt_address, const OemInfo& oem) {
  ByteBuilder b;
  b.Ascii("RSD PTR ", 8);  // Signature (the trailing blank is part of it)
  b.U8(0);                 // Checksum over bytes 0..19: fixed below
  b.Ascii(oem.oem_id, 6);  // OEMID
  b.U8(2);                 // Revision: 2 = ACPI 2.0 and later
  b.U32(0);                // RsdtAddress: no RSDT, the XSDT supersedes it
  b.U32(kRsdpSize);        // Length of the whole structure
  b.U64(xsdt_address);     // XsdtAddress
  b.U8(0);                 // Extended Checksum over all 36 bytes: below
  b.Zeros(3);              // Reserved
  assert(b.size() == kRsdpSize);
  b.FixChecksum(0, kRsdpV1Size, OffsetOf(kRsdpFields, "Checksum"));
  b.FixChecksum(0, kRsdpSize, OffsetOf(kRsdpFields, "Extended Checksum"));
  return std::move(b).Take();
}

Bytes BuildXsdt(absl::Span<const uint64_t> table_addresses,
                const OemInfo& oem) {
  ByteBuilder b;
  size_t start = BeginSdt(b, "XSDT", 1, oem);               // Revision 1
  for (uint64_t address : table_addresses) b.U64(address);  // Entry[n]
  FinishSdt(b, start);
  assert(b.size() == XsdtSize(table_addresses.size()));
  return std::move(b).Take();
}

}  // namespace ssihv::acpi
