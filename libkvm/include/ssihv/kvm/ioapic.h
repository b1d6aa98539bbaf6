// The I/O APIC as a pure state machine: 24 redirection entries, edge and
// level inputs with remote IRR, masking, the EOI that ends a level
// interrupt. What it sends is returned as messages for destination
// resolution (apic_routing.h). Intel 82093AA datasheet (registers, remote
// IRR), with the version-0x20 EOI register of the PCH I/O APICs, and KVM's
// extended destination ID (RTE bits 55:49 = APIC ID bits 14:8, what a Linux
// guest writes once it sees KVM_FEATURE_MSI_EXT_DEST_ID).
#ifndef SSIHV_KVM_IOAPIC_H_
#define SSIHV_KVM_IOAPIC_H_

#include <array>
#include <cstdint>
#include <vector>

#include "ssihv/kvm/apic_routing.h"

namespace ssihv::kvm {

class IoApic {
 public:
  static constexpr uint32_t kPins = 24;
  /// Where the MADT puts it (libacpi's default).
  static constexpr uint64_t kDefaultBase = 0xfec00000;
  static constexpr uint64_t kMmioSize = 0x1000;
  // MMIO offsets.
  static constexpr uint32_t kRegisterSelect = 0x00;
  static constexpr uint32_t kWindow = 0x10;
  static constexpr uint32_t kEoi = 0x40;
  // Indirect registers.
  static constexpr uint32_t kRegId = 0x00;
  static constexpr uint32_t kRegVersion = 0x01;
  static constexpr uint32_t kRegArbitration = 0x02;
  static constexpr uint32_t kRegRedirection = 0x10;  // + 2 * pin (+ 1: high)
  // Redirection entry bits.
  static constexpr uint64_t kDeliveryStatus = 1u << 12;
  static constexpr uint64_t kActiveLow = 1u << 13;
  static constexpr uint64_t kRemoteIrr = 1u << 14;
  static constexpr uint64_t kLevelTriggered = 1u << 15;
  static constexpr uint64_t kMasked = 1u << 16;

  /// Power-on: every entry masked.
  IoApic();

  /// 32-bit registers at 0x00 (select), 0x10 (window), 0x40 (EOI); any
  /// other access reads as zero and writes nothing. Messages the write
  /// causes (unmasking an asserted level line) are appended to `out`.
  uint32_t ReadMmio(uint64_t offset, uint32_t len) const;
  void WriteMmio(uint64_t offset, uint32_t len, uint32_t value,
                 std::vector<ApicMessage>* out);

  /// Drives input `pin` to `level` (the electrical level; the entry's
  /// polarity says which is asserted). Edge entries send on assertion,
  /// level entries while asserted and their remote IRR is clear. Pins past
  /// kPins are ignored.
  void SetLevel(uint32_t pin, bool level, std::vector<ApicMessage>* out);

  /// An EOI for `vector` from a local APIC (or the EOI register): clears
  /// the remote IRR of the level entries with that vector; a line still
  /// asserted sends again.
  void Eoi(uint8_t vector, std::vector<ApicMessage>* out);

  uint64_t redirection(uint32_t pin) const { return entries_[pin]; }
  uint32_t register_select() const { return select_; }

 private:
  bool Asserted(uint32_t pin) const;
  void Service(uint32_t pin, std::vector<ApicMessage>* out);
  uint32_t ReadIndirect(uint32_t index) const;
  void WriteIndirect(uint32_t index, uint32_t value,
                     std::vector<ApicMessage>* out);

  uint32_t id_ = 0;
  uint32_t select_ = 0;
  std::array<uint64_t, kPins> entries_;
  std::array<bool, kPins> levels_{};
};

/// The message a redirection entry sends (exposed for tests).
ApicMessage IoApicMessage(uint64_t entry);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_IOAPIC_H_
