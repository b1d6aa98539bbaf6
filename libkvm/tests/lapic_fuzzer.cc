// libFuzzer target (label fuzz): the register-write decoders of the local
// APIC (xAPIC MMIO, x2APIC MSRs, IA32_APIC_BASE) and the I/O APIC, driven
// by arbitrary operation sequences, with the bus and CPU sides interleaved.
// Besides what ASan/UBSan catch, it checks invariants the SDM implies.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "ssihv/kvm/ioapic.h"
#include "ssihv/kvm/lapic.h"

namespace {

using ssihv::kvm::ApicDelivery;
using ssihv::kvm::ApicMessage;
using ssihv::kvm::DeliveryMode;
using ssihv::kvm::IoApic;
using ssihv::kvm::LapicEffects;
using ssihv::kvm::LocalApic;

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint64_t Take(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes && pos_ < size_; ++i) {
      v |= uint64_t{data_[pos_++]} << (8 * i);
    }
    return v;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckInvariants(const LocalApic& a, uint64_t now) {
  const int v = a.PendingVector();
  Check(v == -1 || (v >= 16 && v <= 255 && a.irr(static_cast<uint8_t>(v))));
  if (v >= 0) Check((v & 0xf0) > (a.ppr() & 0xf0));
  Check(a.ppr() >= (a.tpr() & 0xf0));
  uint64_t count = 0;
  Check(a.timer_current_count(now) <= 0xffffffffu);
  if (a.x2apic()) {
    uint64_t id = 0;
    Check(a.ReadMsr(0x802, now, &id) && id == a.apic_id());
    Check(!a.mmio_base().has_value());
  }
  (void)count;
  if (const auto d = a.timer_deadline()) Check(*d > 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  const uint32_t id = static_cast<uint32_t>(in.Take(2));
  LocalApic apic(id, id & 1, (id & 2) != 0);
  IoApic io;
  uint64_t now = 1;
  std::vector<ApicMessage> messages;
  while (!in.empty()) {
    LapicEffects fx;
    const uint8_t op = static_cast<uint8_t>(in.Take(1));
    now += in.Take(2);  // time only moves forward
    switch (op % 10) {
      case 0: {
        const uint32_t offset = static_cast<uint32_t>(in.Take(2)) & 0xfff;
        const uint32_t len = 1u << (in.Take(1) % 4);
        apic.WriteMmio(offset, len, static_cast<uint32_t>(in.Take(4)), now,
                       &fx);
        break;
      }
      case 1: {
        const uint32_t offset = static_cast<uint32_t>(in.Take(2)) & 0xfff;
        (void)apic.ReadMmio(offset, 1u << (in.Take(1) % 4), now);
        break;
      }
      case 2: {
        const uint32_t msr = 0x800 + static_cast<uint32_t>(in.Take(1));
        (void)apic.WriteMsr(msr, in.Take(8), now, &fx);
        break;
      }
      case 3: {
        uint64_t v = 0;
        (void)apic.ReadMsr(0x800 + static_cast<uint32_t>(in.Take(1)), now, &v);
        break;
      }
      case 4:
        (void)apic.WriteApicBase(in.Take(8), &fx);
        break;
      case 5: {
        ApicDelivery d;
        d.vector = static_cast<uint8_t>(in.Take(1));
        const uint8_t bits = static_cast<uint8_t>(in.Take(1));
        d.mode = static_cast<DeliveryMode>(bits & 7);
        d.level_triggered = bits & 8;
        d.assert = bits & 16;
        apic.Accept(d);
        break;
      }
      case 6: {
        const int v = apic.AcknowledgeInterrupt();
        if (v >= 0) Check(apic.isr(static_cast<uint8_t>(v)));
        apic.TakeNmi();
        apic.TakeSipi();
        if (apic.TakeInit()) apic.Init(&fx);
        break;
      }
      case 7:
        apic.AdvanceTimer(now + in.Take(4));
        break;
      case 8: {
        const uint64_t offset = in.Take(1) & 0x7f;
        io.WriteMmio(offset, 1u << (in.Take(1) % 4),
                     static_cast<uint32_t>(in.Take(4)), &messages);
        (void)io.ReadMmio(in.Take(1) & 0x7f, 4);
        break;
      }
      case 9: {
        const uint8_t b = static_cast<uint8_t>(in.Take(1));
        if (b & 0x80) {
          io.Eoi(b, &messages);
        } else {
          io.SetLevel(b % 32, b & 0x40, &messages);
        }
        break;
      }
    }
    if (fx.ipi) Check(fx.ipi->x2apic_format == apic.x2apic());
    for (const ApicMessage& m : messages) {
      if (m.logical) Check(m.destination <= 0xff);
      Check(!m.x2apic_format && m.destination <= 0x7fff);
    }
    messages.clear();
    CheckInvariants(apic, now);
  }
  return 0;
}
