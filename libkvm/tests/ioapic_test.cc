// The I/O APIC model (82093AA datasheet; version 0x20 EOI register): the
// indirect register window, edge and level inputs, remote IRR, masking,
// polarity, EOI.
#include "ssihv/kvm/ioapic.h"

#include <catch2/catch.hpp>
#include <vector>

namespace ssihv::kvm {
namespace {

using Msgs = std::vector<ApicMessage>;

void WriteReg(IoApic& io, uint32_t index, uint32_t value, Msgs* out) {
  io.WriteMmio(IoApic::kRegisterSelect, 4, index, out);
  io.WriteMmio(IoApic::kWindow, 4, value, out);
}

uint32_t ReadReg(IoApic& io, uint32_t index) {
  Msgs ignored;
  io.WriteMmio(IoApic::kRegisterSelect, 4, index, &ignored);
  return io.ReadMmio(IoApic::kWindow, 4);
}

// Programs `pin`: vector, physical destination, level or edge, unmasked.
void Program(IoApic& io, uint32_t pin, uint8_t vector, uint8_t dest, bool level,
             Msgs* out) {
  WriteReg(io, IoApic::kRegRedirection + 2 * pin + 1, uint32_t{dest} << 24,
           out);
  WriteReg(io, IoApic::kRegRedirection + 2 * pin,
           vector | (level ? IoApic::kLevelTriggered : 0), out);
}

TEST_CASE("I/O APIC registers: version, ID, masked entries at power-on") {
  IoApic io;
  CHECK(ReadReg(io, IoApic::kRegVersion) == 0x00170020);  // 24 pins, v0x20
  Msgs out;
  WriteReg(io, IoApic::kRegId, 0x0a000000, &out);
  CHECK(ReadReg(io, IoApic::kRegId) == 0x0a000000);
  for (uint32_t pin = 0; pin < IoApic::kPins; ++pin) {
    CHECK(ReadReg(io, IoApic::kRegRedirection + 2 * pin) == IoApic::kMasked);
    CHECK(ReadReg(io, IoApic::kRegRedirection + 2 * pin + 1) == 0);
  }
  CHECK(ReadReg(io, IoApic::kRegRedirection + 2 * IoApic::kPins) == 0);
  CHECK(io.ReadMmio(IoApic::kRegisterSelect, 4) ==
        IoApic::kRegRedirection + 2 * IoApic::kPins);
  CHECK(io.ReadMmio(0x20, 4) == 0);
  // Read-only bits (delivery status, remote IRR) ignore writes.
  WriteReg(io, IoApic::kRegRedirection, 0xffffffff, &out);
  CHECK((ReadReg(io, IoApic::kRegRedirection) &
         (IoApic::kRemoteIrr | IoApic::kDeliveryStatus)) == 0);
  CHECK(out.empty());
}

TEST_CASE("edge input: one message per rising edge; masked edges are lost") {
  IoApic io;
  Msgs out;
  Program(io, 4, 0x34, 1, /*level=*/false, &out);
  io.SetLevel(4, true, &out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].vector == 0x34);
  CHECK(out[0].destination == 1);
  CHECK_FALSE(out[0].level_triggered);
  CHECK_FALSE(out[0].logical);
  io.SetLevel(4, true, &out);  // no edge
  CHECK(out.size() == 1);
  io.SetLevel(4, false, &out);
  io.SetLevel(4, true, &out);
  CHECK(out.size() == 2);
  // Masked: the edge is not remembered.
  WriteReg(io, IoApic::kRegRedirection + 8, 0x34 | IoApic::kMasked, &out);
  io.SetLevel(4, false, &out);
  io.SetLevel(4, true, &out);
  WriteReg(io, IoApic::kRegRedirection + 8, 0x34, &out);
  CHECK(out.size() == 2);
}

TEST_CASE("level input: remote IRR holds it until the EOI") {
  IoApic io;
  Msgs out;
  Program(io, 9, 0x59, 0, /*level=*/true, &out);
  io.SetLevel(9, true, &out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].level_triggered);
  CHECK((io.redirection(9) & IoApic::kRemoteIrr) != 0);
  // Still asserted, remote IRR set: nothing more, however often.
  io.SetLevel(9, true, &out);
  io.SetLevel(9, false, &out);
  io.SetLevel(9, true, &out);
  CHECK(out.size() == 1);
  // EOI of another vector does nothing.
  io.Eoi(0x58, &out);
  CHECK(out.size() == 1);
  // EOI while still asserted: delivered again.
  io.Eoi(0x59, &out);
  REQUIRE(out.size() == 2);
  CHECK((io.redirection(9) & IoApic::kRemoteIrr) != 0);
  // De-asserted, then EOI: remote IRR clears, nothing sent.
  io.SetLevel(9, false, &out);
  io.Eoi(0x59, &out);
  CHECK(out.size() == 2);
  CHECK((io.redirection(9) & IoApic::kRemoteIrr) == 0);
  // The version-0x20 EOI register does the same as a broadcast EOI.
  io.SetLevel(9, true, &out);
  CHECK(out.size() == 3);
  io.WriteMmio(IoApic::kEoi, 4, 0x59, &out);
  CHECK(out.size() == 4);
}

TEST_CASE("level input: unmasking an asserted line delivers it") {
  IoApic io;
  Msgs out;
  WriteReg(io, IoApic::kRegRedirection + 2 * 3,
           0x43 | IoApic::kLevelTriggered | IoApic::kMasked, &out);
  io.SetLevel(3, true, &out);
  CHECK(out.empty());
  WriteReg(io, IoApic::kRegRedirection + 2 * 3, 0x43 | IoApic::kLevelTriggered,
           &out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].vector == 0x43);
  // Switching the entry to edge clears a stale remote IRR (Linux relies on
  // it when it reprograms a line).
  WriteReg(io, IoApic::kRegRedirection + 2 * 3, 0x43, &out);
  CHECK((io.redirection(3) & IoApic::kRemoteIrr) == 0);
}

TEST_CASE("polarity: an active-low line is asserted when low") {
  IoApic io;
  Msgs out;
  WriteReg(io, IoApic::kRegRedirection + 2 * 5,
           0x25 | IoApic::kLevelTriggered | IoApic::kActiveLow, &out);
  CHECK(out.size() == 1);  // pin low = asserted, delivered on unmask
  io.Eoi(0x25, &out);
  CHECK(out.size() == 2);
  io.SetLevel(5, true, &out);  // de-asserted
  io.Eoi(0x25, &out);
  CHECK(out.size() == 2);
}

TEST_CASE("redirection entry to message: modes, logical, extended ID") {
  Msgs out;
  IoApic io;
  WriteReg(io, IoApic::kRegRedirection + 2 * 7 + 1, 0x0f000000, &out);
  WriteReg(io, IoApic::kRegRedirection + 2 * 7, 0x60 | (1u << 8) | (1u << 11),
           &out);  // lowest priority, logical
  io.SetLevel(7, true, &out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].mode == DeliveryMode::kLowestPriority);
  CHECK(out[0].logical);
  CHECK(out[0].destination == 0x0f);
  CHECK_FALSE(out[0].x2apic_format);
  // Extended destination bits apply to physical destinations only.
  const uint64_t logical_ext =
      0x60 | (1u << 11) | (uint64_t{3} << 49) | (uint64_t{0x0f} << 56);
  CHECK(IoApicMessage(logical_ext).destination == 0x0f);
  CHECK(IoApicMessage(0x60 | (uint64_t{3} << 49)).destination == 0x300);
  // Pins past 23 are ignored.
  io.SetLevel(24, true, &out);
  CHECK(out.size() == 1);
}

}  // namespace
}  // namespace ssihv::kvm
