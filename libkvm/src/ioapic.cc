#include "ssihv/kvm/ioapic.h"

namespace ssihv::kvm {
namespace {

// Version 0x20 (has the EOI register), maximum redirection entry 23.
constexpr uint32_t kIoApicVersion = 0x20 | ((IoApic::kPins - 1) << 16);
// Bits of an entry software cannot write.
constexpr uint64_t kReadOnly = IoApic::kDeliveryStatus | IoApic::kRemoteIrr;

}  // namespace

ApicMessage IoApicMessage(uint64_t entry) {
  ApicMessage m;
  m.vector = static_cast<uint8_t>(entry & 0xff);
  m.mode = static_cast<DeliveryMode>((entry >> 8) & 7);
  m.logical = entry & (1u << 11);
  m.level_triggered = entry & IoApic::kLevelTriggered;
  m.assert = true;
  m.destination = static_cast<uint32_t>(entry >> 56);
  if (!m.logical) {
    // KVM_FEATURE_MSI_EXT_DEST_ID: bits 55:49 carry APIC ID bits 14:8.
    m.destination |= static_cast<uint32_t>((entry >> 49) & 0x7f) << 8;
  }
  return m;
}

IoApic::IoApic() { entries_.fill(kMasked); }

bool IoApic::Asserted(uint32_t pin) const {
  return levels_[pin] != static_cast<bool>(entries_[pin] & kActiveLow);
}

void IoApic::Service(uint32_t pin, std::vector<ApicMessage>* out) {
  uint64_t& e = entries_[pin];
  if (e & kMasked) return;
  if (e & kLevelTriggered) {
    // One level interrupt in flight per entry until its EOI.
    if (e & kRemoteIrr) return;
    e |= kRemoteIrr;
  }
  out->push_back(IoApicMessage(e));
}

void IoApic::SetLevel(uint32_t pin, bool level, std::vector<ApicMessage>* out) {
  if (pin >= kPins) return;
  const bool was = Asserted(pin);
  levels_[pin] = level;
  const bool now = Asserted(pin);
  if (entries_[pin] & kLevelTriggered) {
    if (now) Service(pin, out);
  } else if (now && !was) {
    Service(pin, out);  // a masked edge is lost, as on the 82093AA
  }
}

void IoApic::Eoi(uint8_t vector, std::vector<ApicMessage>* out) {
  for (uint32_t pin = 0; pin < kPins; ++pin) {
    uint64_t& e = entries_[pin];
    if ((e & 0xff) != vector || !(e & kLevelTriggered) || !(e & kRemoteIrr)) {
      continue;
    }
    e &= ~kRemoteIrr;
    if (Asserted(pin)) Service(pin, out);
  }
}

uint32_t IoApic::ReadIndirect(uint32_t index) const {
  switch (index) {
    case kRegId:
    case kRegArbitration:
      return id_;
    case kRegVersion:
      return kIoApicVersion;
    default:
      break;
  }
  if (index >= kRegRedirection && index < kRegRedirection + 2 * kPins) {
    const uint64_t e = entries_[(index - kRegRedirection) / 2];
    return static_cast<uint32_t>((index & 1) ? e >> 32 : e);
  }
  return 0;
}

void IoApic::WriteIndirect(uint32_t index, uint32_t value,
                           std::vector<ApicMessage>* out) {
  if (index == kRegId) {
    id_ = value & 0x0f000000;
    return;
  }
  if (index < kRegRedirection || index >= kRegRedirection + 2 * kPins) return;
  const uint32_t pin = (index - kRegRedirection) / 2;
  uint64_t& e = entries_[pin];
  if (index & 1) {
    e = (e & 0xffffffffull) | (uint64_t{value} << 32);
    return;
  }
  e = (e & ~0xffffffffull) | (value & ~kReadOnly) | (e & kReadOnly);
  // Linux expects an entry switched to edge to have no remote IRR left (KVM
  // does the same).
  if (!(e & kLevelTriggered)) e &= ~kRemoteIrr;
  // Unmasking (or reprogramming) an asserted level line delivers it now.
  if ((e & kLevelTriggered) && Asserted(pin)) Service(pin, out);
}

uint32_t IoApic::ReadMmio(uint64_t offset, uint32_t len) const {
  const uint64_t reg = offset & ~uint64_t{3};
  const uint32_t byte = static_cast<uint32_t>(offset & 3);
  if (len == 0 || len > 4 || byte + len > 4) return 0;
  uint32_t v = 0;
  if (reg == kRegisterSelect) {
    v = select_;
  } else if (reg == kWindow) {
    v = ReadIndirect(select_);
  }
  v >>= 8 * byte;
  return len == 4 ? v : v & ((1u << (8 * len)) - 1);
}

void IoApic::WriteMmio(uint64_t offset, uint32_t len, uint32_t value,
                       std::vector<ApicMessage>* out) {
  if (len == 0 || len > 4 || (offset & 3) != 0) return;
  switch (offset) {
    case kRegisterSelect:
      select_ = value & 0xff;
      break;
    case kWindow:
      if (len == 4) WriteIndirect(select_, value, out);
      break;
    case kEoi:
      Eoi(static_cast<uint8_t>(value), out);
      break;
    default:
      break;
  }
}

}  // namespace ssihv::kvm
