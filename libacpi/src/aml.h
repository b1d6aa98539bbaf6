// A minimal AML encoder: just the terms the ssihv DSDT uses, each citing its
// grammar rule in ACPI 6.5 §20.2 "AML Grammar Definition". Terms are built
// bottom-up as byte strings; containers (Scope, Device, Package, Buffer)
// prefix their body with its PkgLength.
#ifndef SSIHV_ACPI_SRC_AML_H_
#define SSIHV_ACPI_SRC_AML_H_

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "ssihv/acpi/byte_builder.h"

namespace ssihv::acpi::aml {

/// Opcodes (ACPI 6.5 §20.3 "AML Byte Stream Byte Values").
inline constexpr uint8_t kZeroOp = 0x00;
inline constexpr uint8_t kOneOp = 0x01;
inline constexpr uint8_t kNameOp = 0x08;
inline constexpr uint8_t kBytePrefix = 0x0A;
inline constexpr uint8_t kWordPrefix = 0x0B;
inline constexpr uint8_t kDWordPrefix = 0x0C;
inline constexpr uint8_t kStringPrefix = 0x0D;
inline constexpr uint8_t kQWordPrefix = 0x0E;
inline constexpr uint8_t kScopeOp = 0x10;
inline constexpr uint8_t kBufferOp = 0x11;
inline constexpr uint8_t kPackageOp = 0x12;
inline constexpr uint8_t kExtOpPrefix = 0x5B;
inline constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
inline constexpr uint8_t kRootChar = 0x5C;  // '\'
inline constexpr uint8_t kDualNamePrefix = 0x2E;
inline constexpr uint8_t kOnesOp = 0xFF;

/// PkgLength (§20.2.4 "Package Length Encoding") of a body of `body_size`
/// bytes: the encoded length counts its own 1..4 bytes.
Bytes PkgLength(size_t body_size);

/// NameString (§20.2.2 "Name Objects Encoding"): "\" prefix optional, then
/// one or two 4-character NameSegs separated by '.', e.g. "\_SB.COM1".
/// Segments shorter than 4 are padded with '_' as ASL does.
Bytes NameString(std::string_view path);

/// ComputationalData integer (§20.2.3 "Data Objects Encoding") in its
/// shortest form: ZeroOp, OneOp, OnesOp (all ones), or Byte/Word/DWord/
/// QWordConst.
Bytes Integer(uint64_t value);

/// DefName := NameOp NameString DataRefObject (§20.2.5.1).
Bytes Name(std::string_view name, const Bytes& data);

/// DefPackage := PackageOp PkgLength NumElements PackageElementList
/// (§20.2.5.4).
Bytes Package(std::initializer_list<Bytes> elements);

/// DefBuffer := BufferOp PkgLength BufferSize ByteList (§20.2.5.4).
Bytes Buffer(const Bytes& contents);

/// DefScope := ScopeOp PkgLength NameString TermList (§20.2.5.1).
Bytes Scope(std::string_view name, const Bytes& terms);

/// DefDevice := DeviceOp PkgLength NameString TermList (§20.2.5.2).
Bytes Device(std::string_view name, const Bytes& terms);

/// The 32-bit compressed EISA ID of a "PNPxxxx"-style ID, as ASL's EISAID()
/// macro encodes it (ACPI 6.5 §19.6, "EISAID"), as a DWordConst.
Bytes EisaId(std::string_view id);

/// Concatenates terms into a TermList.
Bytes Terms(std::initializer_list<Bytes> terms);

/// Small resource descriptors (ACPI 6.5 §6.4.2) and the End Tag; a
/// ResourceTemplate is Buffer(descriptors + EndTag()).
Bytes IoPortDescriptor(uint16_t min, uint16_t max, uint8_t alignment,
                       uint8_t length);         // §6.4.2.5, 16-bit decode
Bytes IrqNoFlagsDescriptor(uint16_t irq_mask);  // §6.4.2.1, 2-byte form
Bytes EndTag();                                 // §6.4.2.9

}  // namespace ssihv::acpi::aml

#endif  // SSIHV_ACPI_SRC_AML_H_
