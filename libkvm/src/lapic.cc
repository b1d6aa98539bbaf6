#include "ssihv/kvm/lapic.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ssihv::kvm {
namespace {

using namespace apic;  // NOLINT: register names read like the SDM's

// Version register: APIC version 0x14 (integrated, as KVM reports), six LVT
// entries (max LVT entry 5: timer, thermal, perf, LINT0, LINT1, error), and
// EOI-broadcast suppression supported (bit 24): the I/O APIC has an EOI
// register (version 0x20), so a guest may direct its EOIs there.
constexpr uint32_t kLapicVersion = 0x14 | (5u << 16) | (1u << 24);

// IA32_APIC_BASE bits that must be zero: 0-7, 9, and above a 52-bit
// physical address.
constexpr uint64_t kBaseReserved = 0x2ffull | (~0ull << 52);

// Bits software may set, per register; in x2APIC mode a WRMSR with any
// other bit set raises #GP ("RsvdZ", SDM 11.12.1.3), in xAPIC mode the
// other bits are ignored. Read-only status bits (delivery status, remote
// IRR) count as writable-and-ignored: Linux writes back what it read.
constexpr uint32_t kSvrWritable = 0x13ff;  // vector, enable, focus, EOI supp.
constexpr uint32_t kIcrWritable = 0x000cdfff & ~kDeliveryStatus;
constexpr uint32_t kLvtStatusBits = kDeliveryStatus | (1u << 14);
constexpr uint32_t kLvtTimerWritable = 0x300ff;  // no TSC-deadline mode
constexpr uint32_t kLvtLocalWritable = 0x107ff;  // thermal, perf: mode too
constexpr uint32_t kLvtLintWritable = 0x1a7ff;   // + polarity, trigger
constexpr uint32_t kLvtErrorWritable = 0x100ff;
constexpr uint32_t kDivideWritable = 0xb;

constexpr uint8_t kFirstLegalVector = 16;

uint32_t LvtWritable(uint32_t reg) {
  switch (reg) {
    case kLvtTimer:
      return kLvtTimerWritable;
    case kLvtThermal:
    case kLvtPerf:
      return kLvtLocalWritable;
    case kLvtLint0:
    case kLvtLint1:
      return kLvtLintWritable;
    default:
      return kLvtErrorWritable;
  }
}

bool IsLvt(uint32_t reg) { return reg >= kLvtTimer && reg <= kLvtError; }

}  // namespace

uint32_t apic::TimerDivisor(uint32_t divide_config) {
  const uint32_t code = (divide_config & 3) | ((divide_config & 8) >> 1);
  return 1u << ((code + 1) & 7);  // 0b111 divides by 1
}

LocalApic::LocalApic(uint32_t apic_id, bool bsp, bool x2apic)
    : initial_id_(apic_id),
      apic_base_(kDefaultBase | kBaseEnable | (bsp ? kBaseBsp : 0) |
                 (x2apic ? kBaseX2apic : 0)),
      xapic_id_(static_cast<uint8_t>(apic_id)) {
  ResetRegisters();
}

void LocalApic::ResetRegisters() {
  tpr_ = 0;
  ldr_ = 0;
  dfr_ = 0xffffffff;
  svr_ = 0xff;
  isr_ = {};
  tmr_ = {};
  irr_ = {};
  esr_ = esr_pending_ = 0;
  icr_ = 0;
  lvt_.fill(kLvtMasked);
  timer_initial_ = timer_divide_ = 0;
  timer_period_ns_ = 0;
  StopTimer();
}

int LocalApic::Highest(const Bits& b) {
  for (int i = 7; i >= 0; --i) {
    if (b[i] != 0) return i * 32 + 31 - __builtin_clz(b[i]);
  }
  return -1;
}

// --- IA32_APIC_BASE (SDM 11.4.4, 11.12.5 "x2APIC state transitions") ---

bool LocalApic::WriteApicBase(uint64_t value, LapicEffects* fx) {
  const bool en = value & kBaseEnable, extd = value & kBaseX2apic;
  if ((value & kBaseReserved) || (extd && !en)) return false;
  const bool was_en = hw_enabled(), was_x2 = x2apic();
  if (was_x2 && en && !extd) return false;  // x2APIC -> xAPIC
  if (!was_en && extd) return false;        // disabled -> x2APIC
  if (was_en && !en) {
    // Disabling returns every register to its power-on state; only a
    // later re-enable in xAPIC mode can follow.
    ResetRegisters();
    xapic_id_ = static_cast<uint8_t>(initial_id_);
    nmi_pending_ = init_pending_ = sipi_pending_ = false;
  }
  apic_base_ = value;
  fx->routing_changed = true;
  return true;
}

std::optional<uint64_t> LocalApic::mmio_base() const {
  if (!hw_enabled() || x2apic()) return std::nullopt;
  return apic_base_ & ~(kPageSize - 1) & ~kBaseReserved;
}

// --- Register access ---

uint32_t LocalApic::ReadMmio(uint32_t offset, uint32_t len,
                             uint64_t now_ns) const {
  const uint32_t byte = offset & 0xf;
  if ((len != 1 && len != 2 && len != 4) || byte + len > 4) return 0;
  std::optional<uint64_t> v = ReadRegister(offset & 0xff0, now_ns);
  if (!v) return 0;  // reserved offsets read as zero
  const uint64_t mask = len == 4 ? 0xffffffffull : (1ull << (8 * len)) - 1;
  return static_cast<uint32_t>((*v >> (8 * byte)) & mask);
}

void LocalApic::WriteMmio(uint32_t offset, uint32_t len, uint32_t value,
                          uint64_t now_ns, LapicEffects* fx) {
  // The APIC only takes aligned 32-bit writes (SDM 11.4.1); what does not
  // reach a writable register is dropped.
  if (len != 4 || (offset & 0xf) != 0 || offset >= kPageSize) return;
  if (!WriteRegister(offset, value, now_ns, fx) && offset != kEsr) {
    if (!ReadRegister(offset, now_ns)) Error(kEsrIllegalRegister);
  }
}

bool LocalApic::ReadMsr(uint32_t msr, uint64_t now_ns, uint64_t* value) const {
  if (!x2apic() || msr < kMsrX2apicFirst || msr > kMsrX2apicLast) {
    return false;
  }
  std::optional<uint64_t> v =
      ReadRegister((msr - kMsrX2apicFirst) << 4, now_ns);
  if (!v) return false;
  *value = *v;
  return true;
}

bool LocalApic::WriteMsr(uint32_t msr, uint64_t value, uint64_t now_ns,
                         LapicEffects* fx) {
  if (!x2apic() || msr < kMsrX2apicFirst || msr > kMsrX2apicLast) {
    return false;
  }
  const uint32_t reg = (msr - kMsrX2apicFirst) << 4;
  // Only the ICR is 64 bits wide (the destination above bit 31).
  if (reg != kIcrLow && (value >> 32) != 0) return false;
  return WriteRegister(reg, value, now_ns, fx);
}

std::optional<uint64_t> LocalApic::ReadRegister(uint32_t reg,
                                                uint64_t now_ns) const {
  const bool x2 = x2apic();
  if (reg >= kIsr && reg < kIsr + 0x80) return isr_[(reg - kIsr) >> 4];
  if (reg >= kTmr && reg < kTmr + 0x80) return tmr_[(reg - kTmr) >> 4];
  if (reg >= kIrr && reg < kIrr + 0x80) return irr_[(reg - kIrr) >> 4];
  if (IsLvt(reg)) return lvt_[(reg - kLvtTimer) >> 4];
  switch (reg) {
    case kId:
      return x2 ? initial_id_ : uint32_t{xapic_id_} << 24;
    case kVersion:
      return kLapicVersion;
    case kTpr:
      return tpr_;
    case kApr:
      if (x2) return std::nullopt;
      return apr();
    case kPpr:
      return ppr();
    case kLdr:
      return x2 ? x2apic_ldr() : ldr_;
    case kDfr:
      if (x2) return std::nullopt;
      return dfr_;
    case kSvr:
      return svr_;
    case kEsr:
      return esr_;
    case kIcrLow:
      return x2 ? icr_ : icr_ & 0xffffffff;
    case kIcrHigh:
      if (x2) return std::nullopt;
      return icr_ >> 32;
    case kTimerInitial:
      return timer_initial_;
    case kTimerCurrent:
      return timer_current_count(now_ns);
    case kTimerDivide:
      return timer_divide_;
    case kEoi:  // write-only: #GP in x2APIC mode, zero through MMIO
    case kRrd:  // remote read is gone since the Pentium 4
      if (x2) return std::nullopt;
      return 0;
    default:
      return std::nullopt;  // reserved, CMCI (not implemented), SELF IPI
  }
}

bool LocalApic::WriteRegister(uint32_t reg, uint64_t value, uint64_t now_ns,
                              LapicEffects* fx) {
  const bool x2 = x2apic();
  // x2APIC: reserved bits set raise #GP; xAPIC: they are ignored.
  auto fits = [&](uint64_t writable) {
    return !x2 || (value & ~writable) == 0;
  };
  const uint32_t v32 = static_cast<uint32_t>(value);
  if (IsLvt(reg)) {
    if (!fits(LvtWritable(reg) | kLvtStatusBits)) return false;
    return WriteLvt(reg, v32, now_ns);
  }
  switch (reg) {
    case kId:
      if (x2) return false;  // the x2APIC ID is read-only
      xapic_id_ = static_cast<uint8_t>(v32 >> 24);
      fx->routing_changed = true;
      return true;
    case kTpr:
      if (!fits(0xff)) return false;
      tpr_ = static_cast<uint8_t>(v32);
      fx->routing_changed = true;  // lowest-priority arbitration uses it
      return true;
    case kEoi:
      if (!fits(0)) return false;
      Eoi(fx);
      return true;
    case kLdr:
      if (x2) return false;  // derived from the x2APIC ID
      ldr_ = v32 & 0xff000000;
      fx->routing_changed = true;
      return true;
    case kDfr:
      if (x2) return false;
      dfr_ = v32 | 0x0fffffff;
      fx->routing_changed = true;
      return true;
    case kSvr:
      if (!fits(kSvrWritable)) return false;
      WriteSvr(v32, fx);
      return true;
    case kEsr:
      if (!fits(0)) return false;
      // A write latches the errors seen since the previous one (SDM 11.5.3).
      esr_ = esr_pending_;
      esr_pending_ = 0;
      return true;
    case kIcrLow:
      if (x2) {
        if ((value & 0xffffffff & ~uint64_t{kIcrWritable}) != 0) return false;
        icr_ = value;
      } else {
        icr_ = (icr_ & ~0xffffffffull) | (v32 & kIcrWritable);
      }
      SendIpi(icr_, fx);
      return true;
    case kIcrHigh:
      if (x2) return false;
      icr_ = (icr_ & 0xffffffff) | (uint64_t{v32 & 0xff000000} << 32);
      return true;
    case kTimerInitial:
      timer_initial_ = v32;
      StartTimer(now_ns, v32);
      return true;
    case kTimerDivide: {
      if (!fits(kDivideWritable)) return false;
      const uint32_t remaining = timer_current_count(now_ns);
      const bool running = timer_deadline_.has_value();
      timer_divide_ = v32 & kDivideWritable;
      // The count goes on from where it is, at the new rate.
      if (running) StartTimer(now_ns, remaining);
      return true;
    }
    case kSelfIpi:
      if (!x2 || !fits(0xff)) return false;
      SendIpi(uint64_t{v32 & 0xff} |
                  (static_cast<uint64_t>(Shorthand::kSelf) << 18),
              fx);
      return true;
    default:
      return false;  // read-only or reserved
  }
}

uint32_t& LocalApic::Lvt(uint32_t reg) { return lvt_[(reg - kLvtTimer) >> 4]; }

bool LocalApic::WriteLvt(uint32_t reg, uint32_t value, uint64_t now_ns) {
  uint32_t v = value & LvtWritable(reg);
  // A software-disabled APIC keeps every LVT masked (SDM 11.4.7.2).
  if (!sw_enabled()) v |= kLvtMasked;
  uint32_t& lvt = Lvt(reg);
  if (reg == kLvtTimer && ((v ^ lvt) & kLvtTimerPeriodic)) {
    // A mode change stops the count (as KVM does; the SDM leaves it open).
    timer_initial_ = 0;
    StopTimer();
  }
  (void)now_ns;
  lvt = v;
  return true;
}

void LocalApic::WriteSvr(uint32_t value, LapicEffects* fx) {
  svr_ = value & kSvrWritable;
  if (!sw_enabled()) {
    for (uint32_t& l : lvt_) l |= kLvtMasked;
  }
  fx->routing_changed = true;
}

void LocalApic::Eoi(LapicEffects* fx) {
  const int v = Highest(isr_);
  if (v < 0) return;
  Clear(isr_, static_cast<uint8_t>(v));
  // A level-triggered interrupt is done only when its source hears of the
  // EOI (SDM 11.8.5); with broadcast suppressed the OS tells the I/O APIC.
  if (Test(tmr_, static_cast<uint8_t>(v)) &&
      !(svr_ & kSvrSuppressEoiBroadcast)) {
    fx->eoi_vector = static_cast<uint8_t>(v);
  }
}

// SDM 11.6.1: the ICR fields; writing its low half (x2APIC: the MSR) sends.
void LocalApic::SendIpi(uint64_t icr, LapicEffects* fx) {
  ApicMessage m;
  m.vector = static_cast<uint8_t>(icr & kVectorMask);
  m.mode = static_cast<DeliveryMode>((icr >> kDeliveryModeShift) & 7);
  m.logical = icr & (1u << 11);
  m.assert = icr & (1u << 14);
  m.level_triggered = icr & (1u << 15);
  m.shorthand = static_cast<Shorthand>((icr >> 18) & 3);
  m.x2apic_format = x2apic();
  m.destination = m.x2apic_format ? static_cast<uint32_t>(icr >> 32)
                                  : static_cast<uint32_t>(icr >> 56);
  switch (m.mode) {
    case DeliveryMode::kFixed:
    case DeliveryMode::kLowestPriority:
      if (m.vector < kFirstLegalVector) {
        Error(kEsrSendIllegalVector);
        return;
      }
      break;
    case DeliveryMode::kInit:
      // INIT level de-assert only resynchronized arbitration IDs on old
      // APIC buses; it reaches no processor (SDM 11.6.1).
      if (m.level_triggered && !m.assert) return;
      break;
    case DeliveryMode::kNmi:
    case DeliveryMode::kStartup:
      break;
    default:
      return;  // SMI (no SMM here), ExtINT and the reserved mode
  }
  fx->ipi = m;
}

void LocalApic::Error(uint32_t esr_bit) {
  const bool fresh = !(esr_pending_ & esr_bit);
  esr_pending_ |= esr_bit;
  const uint32_t lvt = Lvt(kLvtError);
  const uint8_t vector = lvt & kVectorMask;
  if (fresh && !(lvt & kLvtMasked) && vector >= kFirstLegalVector) {
    AcceptFixed(vector, false);
  }
}

bool LocalApic::AcceptFixed(uint8_t vector, bool level) {
  if (vector < kFirstLegalVector) {
    Error(kEsrReceiveIllegalVector);
    return false;
  }
  Set(irr_, vector);
  if (level) {
    Set(tmr_, vector);
  } else {
    Clear(tmr_, vector);
  }
  return true;
}

bool LocalApic::Accept(const ApicDelivery& d) {
  switch (d.mode) {
    case DeliveryMode::kFixed:
    case DeliveryMode::kLowestPriority:
      // A software-disabled APIC takes no fixed interrupts (SDM 11.4.7.2);
      // a level-triggered de-assert message carries none.
      if (!sw_enabled() || (d.level_triggered && !d.assert)) return false;
      return AcceptFixed(d.vector, d.level_triggered);
    case DeliveryMode::kNmi:
      nmi_pending_ = true;
      return true;
    case DeliveryMode::kInit:
      if (d.level_triggered && !d.assert) return false;
      init_pending_ = true;
      sipi_pending_ = false;  // a start-up must follow this INIT
      return true;
    case DeliveryMode::kStartup:
      sipi_pending_ = true;
      sipi_vector_ = d.vector;
      return true;
    default:
      return false;  // SMI, ExtINT (no 8259 here), reserved
  }
}

// --- CPU side ---

uint8_t LocalApic::ppr() const {
  const int isrv = Highest(isr_);
  const uint8_t isr_class = isrv < 0 ? 0 : static_cast<uint8_t>(isrv & 0xf0);
  return (tpr_ & 0xf0) >= isr_class ? tpr_ : isr_class;
}

uint8_t LocalApic::apr() const {
  const int isrv = std::max(Highest(isr_), 0);
  const int irrv = std::max(Highest(irr_), 0);
  if ((tpr_ >> 4) >= (irrv >> 4) && (tpr_ >> 4) > (isrv >> 4)) return tpr_;
  return static_cast<uint8_t>(
      std::max({tpr_ & 0xf0, isrv & 0xf0, irrv & 0xf0}));
}

int LocalApic::PendingVector() const {
  if (!hw_enabled()) return -1;
  const int v = Highest(irr_);
  if (v < 0 || (v & 0xf0) <= (ppr() & 0xf0)) return -1;
  return v;
}

int LocalApic::AcknowledgeInterrupt() {
  const int v = PendingVector();
  if (v < 0) return -1;
  Clear(irr_, static_cast<uint8_t>(v));
  Set(isr_, static_cast<uint8_t>(v));
  return v;
}

bool LocalApic::TakeNmi() { return std::exchange(nmi_pending_, false); }
bool LocalApic::TakeInit() { return std::exchange(init_pending_, false); }

std::optional<uint8_t> LocalApic::TakeSipi() {
  if (!std::exchange(sipi_pending_, false)) return std::nullopt;
  return sipi_vector_;
}

void LocalApic::Init(LapicEffects* fx) {
  ResetRegisters();
  nmi_pending_ = init_pending_ = false;
  fx->routing_changed = true;
}

bool LocalApic::SetCr8(uint8_t cr8) {
  const uint8_t tpr = static_cast<uint8_t>((cr8 & 0xf) << 4);
  if ((tpr_ >> 4) == (tpr >> 4)) return false;
  tpr_ = tpr;
  return true;
}

uint32_t LocalApic::x2apic_ldr() const {
  return ((initial_id_ >> 4) << 16) | (1u << (initial_id_ & 0xf));
}

ApicRoutingEntry LocalApic::routing() const {
  ApicRoutingEntry e;
  e.x2apic_id = initial_id_;
  e.xapic_id = xapic_id_;
  e.hw_enabled = hw_enabled();
  e.sw_enabled = sw_enabled();
  e.x2apic = x2apic();
  e.ldr = x2apic() ? x2apic_ldr() : ldr_;
  e.dfr_model = static_cast<uint8_t>(dfr_ >> 28);
  e.tpr = tpr_;
  return e;
}

std::string LocalApic::Describe(uint64_t now_ns) const {
  auto vectors = [](const Bits& b) {
    std::string out;
    for (int v = 0; v < 256; ++v) {
      if (Test(b, static_cast<uint8_t>(v))) {
        out += (out.empty() ? "" : ",") + absl::StrCat(absl::Hex(v));
      }
    }
    return out.empty() ? std::string("-") : out;
  };
  std::string out =
      absl::StrCat("APIC ", initial_id_,
                   !hw_enabled() ? " disabled"
                   : x2apic()    ? " x2APIC"
                                 : " xAPIC",
                   " svr=0x", absl::Hex(svr_), " tpr=0x", absl::Hex(tpr_),
                   " ppr=0x", absl::Hex(ppr()), " isr=", vectors(isr_),
                   " irr=", vectors(irr_), " lvtt=0x", absl::Hex(lvt_[0]));
  if (timer_deadline_) {
    absl::StrAppend(&out, " timer in ",
                    static_cast<int64_t>(*timer_deadline_ - now_ns), " ns");
  }
  if (nmi_pending_) absl::StrAppend(&out, " NMI");
  if (init_pending_) absl::StrAppend(&out, " INIT");
  if (sipi_pending_) absl::StrAppend(&out, " SIPI");
  return out;
}

// --- Timer ---

void LocalApic::StartTimer(uint64_t now_ns, uint64_t count) {
  if (count == 0) {
    StopTimer();
    return;
  }
  const uint64_t tick = kBusCycleNs * TimerDivisor(timer_divide_);
  timer_period_ns_ = uint64_t{timer_initial_} * tick;
  timer_deadline_ = now_ns + count * tick;
}

std::optional<uint64_t> LocalApic::timer_deadline() const {
  return timer_deadline_;
}

uint32_t LocalApic::timer_current_count(uint64_t now_ns) const {
  if (!timer_deadline_) return 0;
  uint64_t remaining_ns = 0;
  if (now_ns < *timer_deadline_) {
    remaining_ns = *timer_deadline_ - now_ns;
  } else if ((lvt_[0] & kLvtTimerPeriodic) && timer_period_ns_ > 0) {
    // Expired periods not yet advanced: the count has reloaded.
    remaining_ns =
        timer_period_ns_ - (now_ns - *timer_deadline_) % timer_period_ns_;
  }
  const uint64_t tick = kBusCycleNs * TimerDivisor(timer_divide_);
  return static_cast<uint32_t>(
      std::min<uint64_t>((remaining_ns + tick - 1) / tick, timer_initial_));
}

bool LocalApic::AdvanceTimer(uint64_t now_ns) {
  if (!timer_deadline_ || now_ns < *timer_deadline_) return false;
  const uint32_t lvt = Lvt(kLvtTimer);
  if (!(lvt & kLvtMasked)) AcceptFixed(lvt & kVectorMask, false);
  if ((lvt & kLvtTimerPeriodic) && timer_period_ns_ > 0) {
    const uint64_t missed = (now_ns - *timer_deadline_) / timer_period_ns_;
    *timer_deadline_ += (missed + 1) * timer_period_ns_;
  } else {
    StopTimer();  // one-shot: the count stays at zero
  }
  return true;
}

}  // namespace ssihv::kvm
