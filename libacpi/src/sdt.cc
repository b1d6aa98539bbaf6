#include "ssihv/acpi/sdt.h"

#include <cassert>

#include "absl/strings/str_cat.h"

namespace ssihv::acpi {
namespace {

absl::Status CheckText(absl::string_view key, absl::string_view text,
                       size_t width) {
  if (text.size() > width) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, ": at most ", width, " characters (got \"", text, "\")"));
  }
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": must be printable ASCII"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateOemInfo(const OemInfo& oem) {
  for (auto [key, text, width] :
       {std::tuple<absl::string_view, absl::string_view, size_t>{"oem.oem_id",
                                                                 oem.oem_id, 6},
        {"oem.oem_table_id", oem.oem_table_id, 8},
        {"oem.creator_id", oem.creator_id, 4}}) {
    absl::Status st = CheckText(key, text, width);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

size_t BeginSdt(ByteBuilder& b, const char (&signature)[5], uint8_t revision,
                const OemInfo& oem) {
  const size_t start = b.size();
  b.Ascii(signature, 4);         // Signature
  b.U32(0);                      // Length: patched by FinishSdt
  b.U8(revision);                // Revision
  b.U8(0);                       // Checksum: patched by FinishSdt
  b.Ascii(oem.oem_id, 6);        // OEMID
  b.Ascii(oem.oem_table_id, 8);  // OEM Table ID
  b.U32(oem.oem_revision);       // OEM Revision
  b.Ascii(oem.creator_id, 4);    // Creator ID
  b.U32(oem.creator_revision);   // Creator Revision
  assert(b.size() - start == kSdtHeaderSize);
  return start;
}

void FinishSdt(ByteBuilder& b, size_t start) {
  const size_t end = b.size();
  b.PatchU32(start + kSdtLengthOffset, static_cast<uint32_t>(end - start));
  b.FixChecksum(start, end, start + kSdtChecksumOffset);
}

void AppendGas(ByteBuilder& b, const GenericAddress* gas) {
  if (gas == nullptr) {
    b.Zeros(kGasSize);
    return;
  }
  b.U8(gas->space_id);     // Address Space ID
  b.U8(gas->bit_width);    // Register Bit Width
  b.U8(gas->bit_offset);   // Register Bit Offset
  b.U8(gas->access_size);  // Access Size
  b.U64(gas->address);     // Address
}

}  // namespace ssihv::acpi
