#include "aml.h"

#include <cassert>

namespace ssihv::acpi::aml {
namespace {

Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Op [ExtOp] PkgLength <head> <body>: the PkgLength covers head and body.
Bytes Container(std::initializer_list<uint8_t> opcode, const Bytes& head,
                const Bytes& body) {
  Bytes out(opcode);
  Bytes len = PkgLength(head.size() + body.size());
  out.insert(out.end(), len.begin(), len.end());
  out.insert(out.end(), head.begin(), head.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void AppendNameSeg(Bytes& out, std::string_view seg) {
  assert(!seg.empty() && seg.size() <= 4);
  out.insert(out.end(), seg.begin(), seg.end());
  out.insert(out.end(), 4 - seg.size(), '_');
}

}  // namespace

Bytes PkgLength(size_t body_size) {
  // One byte holds lengths < 64 (bits 5:0). Longer lengths use 1..3 extra
  // bytes: the lead byte carries the byte count in bits 7:6 and the low
  // nibble in bits 3:0; the following bytes carry the rest, 8 bits each.
  for (size_t extra = 0; extra <= 3; ++extra) {
    const size_t total = body_size + 1 + extra;
    const size_t limit = extra == 0 ? 64 : size_t{1} << (4 + 8 * extra);
    if (total >= limit) continue;
    Bytes out;
    if (extra == 0) {
      out.push_back(static_cast<uint8_t>(total));
      return out;
    }
    out.push_back(static_cast<uint8_t>((extra << 6) | (total & 0x0F)));
    for (size_t i = 0; i < extra; ++i) {
      out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
    }
    return out;
  }
  assert(false && "AML package longer than 2^28 bytes");
  return {};
}

Bytes NameString(std::string_view path) {
  Bytes out;
  if (!path.empty() && path.front() == '\\') {
    out.push_back(kRootChar);
    path.remove_prefix(1);
  }
  size_t dot = path.find('.');
  if (dot == std::string_view::npos) {
    AppendNameSeg(out, path);
    return out;
  }
  assert(path.find('.', dot + 1) == std::string_view::npos);
  out.push_back(kDualNamePrefix);
  AppendNameSeg(out, path.substr(0, dot));
  AppendNameSeg(out, path.substr(dot + 1));
  return out;
}

Bytes Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  if (value == UINT64_MAX) return {kOnesOp};
  ByteBuilder b;
  if (value <= 0xFF) {
    b.U8(kBytePrefix);
    b.U8(static_cast<uint8_t>(value));
  } else if (value <= 0xFFFF) {
    b.U8(kWordPrefix);
    b.U16(static_cast<uint16_t>(value));
  } else if (value <= 0xFFFFFFFF) {
    b.U8(kDWordPrefix);
    b.U32(static_cast<uint32_t>(value));
  } else {
    b.U8(kQWordPrefix);
    b.U64(value);
  }
  return std::move(b).Take();
}

Bytes Name(std::string_view name, const Bytes& data) {
  return Concat({{kNameOp}, NameString(name), data});
}

Bytes Package(std::initializer_list<Bytes> elements) {
  assert(elements.size() <= 255);
  return Container({kPackageOp},
                   {static_cast<uint8_t>(elements.size())},  // NumElements
                   Concat(elements));
}

Bytes Buffer(const Bytes& contents) {
  return Container({kBufferOp}, Integer(contents.size()), contents);
}

Bytes Scope(std::string_view name, const Bytes& terms) {
  return Container({kScopeOp}, NameString(name), terms);
}

Bytes Device(std::string_view name, const Bytes& terms) {
  return Container({kExtOpPrefix, kDeviceOp}, NameString(name), terms);
}

Bytes EisaId(std::string_view id) {
  // Three letters, 5 bits each ('A' = 1), then four hex digits; the 32-bit
  // result is stored byte-swapped (big-endian), as the EISA ID format says.
  assert(id.size() == 7);
  auto hex = [](char c) -> uint32_t {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
  };
  uint32_t v = ((id[0] - '@') & 0x1F) << 26 | ((id[1] - '@') & 0x1F) << 21 |
               ((id[2] - '@') & 0x1F) << 16 | hex(id[3]) << 12 |
               hex(id[4]) << 8 | hex(id[5]) << 4 | hex(id[6]);
  uint32_t swapped =
      (v >> 24) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | (v << 24);
  ByteBuilder b;
  b.U8(kDWordPrefix);
  b.U32(swapped);
  return std::move(b).Take();
}

Bytes Terms(std::initializer_list<Bytes> terms) { return Concat(terms); }

Bytes IoPortDescriptor(uint16_t min, uint16_t max, uint8_t alignment,
                       uint8_t length) {
  ByteBuilder b;
  b.U8(0x47);       // Small item, type 0x08 (I/O port), length 7
  b.U8(0x01);       // Information: bit 0 = decodes 16-bit addresses
  b.U16(min);       // Range minimum base address
  b.U16(max);       // Range maximum base address
  b.U8(alignment);  // Base alignment
  b.U8(length);     // Range length
  return std::move(b).Take();
}

Bytes IrqNoFlagsDescriptor(uint16_t irq_mask) {
  ByteBuilder b;
  b.U8(0x22);       // Small item, type 0x04 (IRQ), length 2: edge, active high
  b.U16(irq_mask);  // IRQ mask, bit n = IRQn
  return std::move(b).Take();
}

Bytes EndTag() {
  // Small item, type 0x0F (End Tag), length 1; checksum 0 means "the
  // resource data is treated as if the checksum were valid".
  return {0x79, 0x00};
}

}  // namespace ssihv::acpi::aml
