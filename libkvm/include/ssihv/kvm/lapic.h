// One local APIC as a pure state machine (Intel SDM vol. 3A, ch. 11): its
// registers through the xAPIC MMIO page and the x2APIC MSRs, the IA32_APIC_BASE
// MSR, interrupt acceptance (IRR/ISR/TMR with priority classes, TPR/PPR,
// EOI), the IPIs it sends, and its timer. No KVM, threads or clocks: time
// is passed in as nanoseconds, and what a register write does beyond the
// APIC (an IPI to send, an EOI for the I/O APIC) is returned to the caller.
#ifndef SSIHV_KVM_LAPIC_H_
#define SSIHV_KVM_LAPIC_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "ssihv/kvm/apic_routing.h"

namespace ssihv::kvm {

/// Register offsets in the xAPIC page (SDM Table 11-1); the x2APIC MSR of
/// each is 0x800 + offset / 16 (Table 11-6).
namespace apic {
inline constexpr uint32_t kId = 0x20;
inline constexpr uint32_t kVersion = 0x30;
inline constexpr uint32_t kTpr = 0x80;
inline constexpr uint32_t kApr = 0x90;
inline constexpr uint32_t kPpr = 0xa0;
inline constexpr uint32_t kEoi = 0xb0;
inline constexpr uint32_t kRrd = 0xc0;
inline constexpr uint32_t kLdr = 0xd0;
inline constexpr uint32_t kDfr = 0xe0;
inline constexpr uint32_t kSvr = 0xf0;
inline constexpr uint32_t kIsr = 0x100;  // 8 registers, 32 vectors each
inline constexpr uint32_t kTmr = 0x180;
inline constexpr uint32_t kIrr = 0x200;
inline constexpr uint32_t kEsr = 0x280;
inline constexpr uint32_t kIcrLow = 0x300;
inline constexpr uint32_t kIcrHigh = 0x310;
inline constexpr uint32_t kLvtTimer = 0x320;
inline constexpr uint32_t kLvtThermal = 0x330;
inline constexpr uint32_t kLvtPerf = 0x340;
inline constexpr uint32_t kLvtLint0 = 0x350;
inline constexpr uint32_t kLvtLint1 = 0x360;
inline constexpr uint32_t kLvtError = 0x370;
inline constexpr uint32_t kTimerInitial = 0x380;
inline constexpr uint32_t kTimerCurrent = 0x390;
inline constexpr uint32_t kTimerDivide = 0x3e0;
inline constexpr uint32_t kSelfIpi = 0x3f0;  // x2APIC only

inline constexpr uint32_t kMsrApicBase = 0x1b;
inline constexpr uint32_t kMsrX2apicFirst = 0x800;
inline constexpr uint32_t kMsrX2apicLast = 0x8ff;
inline constexpr uint64_t kDefaultBase = 0xfee00000;
inline constexpr uint64_t kPageSize = 0x1000;
// IA32_APIC_BASE bits (SDM Figure 11-5).
inline constexpr uint64_t kBaseBsp = 1u << 8;
inline constexpr uint64_t kBaseX2apic = 1u << 10;
inline constexpr uint64_t kBaseEnable = 1u << 11;

// LVT and ICR fields.
inline constexpr uint32_t kVectorMask = 0xff;
inline constexpr uint32_t kDeliveryModeShift = 8;
inline constexpr uint32_t kDeliveryStatus = 1u << 12;
inline constexpr uint32_t kLvtMasked = 1u << 16;
inline constexpr uint32_t kLvtTimerPeriodic = 1u << 17;
inline constexpr uint32_t kSvrEnable = 1u << 8;
inline constexpr uint32_t kSvrSuppressEoiBroadcast = 1u << 12;

// ESR bits (SDM Figure 11-9).
inline constexpr uint32_t kEsrSendIllegalVector = 1u << 5;
inline constexpr uint32_t kEsrReceiveIllegalVector = 1u << 6;
inline constexpr uint32_t kEsrIllegalRegister = 1u << 7;

/// The APIC timer counts at this bus frequency (as KVM's: 1 GHz, one tick
/// per nanosecond) divided by the divide configuration. The guest measures
/// it; nothing depends on the value.
inline constexpr uint64_t kBusCycleNs = 1;

/// The divisor TDCR bits 0, 1 and 3 select (SDM Figure 11-10).
uint32_t TimerDivisor(uint32_t divide_config);
}  // namespace apic

/// What a register write did beyond this APIC; the owner carries it out.
struct LapicEffects {
  /// An ICR or SELF IPI write: the message to route.
  std::optional<ApicMessage> ipi;
  /// An EOI of a level-triggered vector while EOI broadcast is not
  /// suppressed: the I/O APIC(s) must clear their remote IRR for it.
  std::optional<uint8_t> eoi_vector;
  /// The routing view (routing()) changed: publish it.
  bool routing_changed = false;
};

class LocalApic {
 public:
  /// The power-on state: xAPIC mode (or x2APIC, as a firmware leaves it for
  /// more than 254 vCPUs), software-disabled, every LVT masked.
  LocalApic(uint32_t apic_id, bool bsp, bool x2apic = false);

  // --- IA32_APIC_BASE (MSR 0x1b) ---
  uint64_t apic_base() const { return apic_base_; }
  /// False when the write must raise #GP: reserved bits, or a transition
  /// the SDM forbids (disabled -> x2APIC, x2APIC -> xAPIC, EXTD without EN).
  bool WriteApicBase(uint64_t value, LapicEffects* fx);
  bool hw_enabled() const { return apic_base_ & apic::kBaseEnable; }
  bool x2apic() const { return apic_base_ & apic::kBaseX2apic; }
  bool bsp() const { return apic_base_ & apic::kBaseBsp; }
  /// Where the xAPIC page is, or nullopt when no MMIO reaches the APIC
  /// (globally disabled, or in x2APIC mode).
  std::optional<uint64_t> mmio_base() const;

  // --- xAPIC page: 32-bit registers at 16-byte aligned offsets ---
  /// Reads `len` (1, 2 or 4) bytes at `offset` in the page; an access that
  /// does not fit in one register reads as zeros.
  uint32_t ReadMmio(uint32_t offset, uint32_t len, uint64_t now_ns) const;
  /// Only aligned 32-bit writes reach a register; others are dropped.
  void WriteMmio(uint32_t offset, uint32_t len, uint32_t value, uint64_t now_ns,
                 LapicEffects* fx);

  // --- x2APIC MSRs 0x800-0x8ff; false means #GP ---
  bool ReadMsr(uint32_t msr, uint64_t now_ns, uint64_t* value) const;
  bool WriteMsr(uint32_t msr, uint64_t value, uint64_t now_ns,
                LapicEffects* fx);

  // --- The APIC bus side ---
  /// Accepts a message that resolution addressed to this APIC (SDM 11.6.2,
  /// 11.8.4): a fixed or lowest-priority vector into the IRR (TMR for
  /// level), NMI / INIT / SIPI latched for the CPU. Returns whether
  /// anything became pending.
  bool Accept(const ApicDelivery& delivery);

  // --- The CPU side ---
  /// The IRR vector the CPU may take now (its priority class above the
  /// PPR's), or -1 (SDM 11.8.3.1).
  int PendingVector() const;
  /// INTA: moves PendingVector() from the IRR to the ISR and returns it
  /// (-1 if none).
  int AcknowledgeInterrupt();
  bool TakeNmi();
  bool TakeInit();
  /// The vector of a latched start-up IPI, consumed.
  std::optional<uint8_t> TakeSipi();
  bool nmi_pending() const { return nmi_pending_; }
  bool init_pending() const { return init_pending_; }
  bool sipi_pending() const { return sipi_pending_; }
  /// INIT (SDM 11.4.7.3): every register to its power-on value but the APIC
  /// ID and IA32_APIC_BASE; pending events dropped.
  void Init(LapicEffects* fx);

  /// CR8 is TPR[7:4] (SDM 11.8.6). SetCr8 returns whether the TPR changed.
  uint8_t cr8() const { return tpr_ >> 4; }
  bool SetCr8(uint8_t cr8);

  // --- Timer (SDM 11.5.4) ---
  /// When the running timer next expires, or nullopt.
  std::optional<uint64_t> timer_deadline() const;
  /// Expires the timer if `now_ns` reached its deadline: the LVT timer
  /// vector into the IRR unless masked; periodic mode reloads (missed
  /// periods are coalesced into one interrupt). Returns whether it expired.
  bool AdvanceTimer(uint64_t now_ns);

  /// The view destination resolution needs.
  ApicRoutingEntry routing() const;

  // Introspection (tests, statistics).
  uint32_t apic_id() const { return initial_id_; }
  uint8_t tpr() const { return tpr_; }
  uint8_t ppr() const;
  uint32_t svr() const { return svr_; }
  bool irr(uint8_t v) const { return Test(irr_, v); }
  bool isr(uint8_t v) const { return Test(isr_, v); }
  bool tmr(uint8_t v) const { return Test(tmr_, v); }
  uint32_t timer_current_count(uint64_t now_ns) const;
  /// One line of state for diagnostics: mode, ID, SVR, TPR, PPR, the
  /// vectors in ISR and IRR, the timer, latched events.
  std::string Describe(uint64_t now_ns) const;

 private:
  using Bits = std::array<uint32_t, 8>;
  static bool Test(const Bits& b, uint8_t v) {
    return b[v >> 5] & (1u << (v & 31));
  }
  static void Set(Bits& b, uint8_t v) { b[v >> 5] |= 1u << (v & 31); }
  static void Clear(Bits& b, uint8_t v) { b[v >> 5] &= ~(1u << (v & 31)); }
  static int Highest(const Bits& b);

  void ResetRegisters();
  bool sw_enabled() const { return svr_ & apic::kSvrEnable; }
  uint32_t x2apic_ldr() const;
  uint8_t apr() const;
  /// Reads register `reg` (16-byte aligned); nullopt if there is none in
  /// the current mode.
  std::optional<uint64_t> ReadRegister(uint32_t reg, uint64_t now_ns) const;
  /// False if the register is absent or read-only in the current mode, or
  /// (x2APIC) the value is invalid for it.
  bool WriteRegister(uint32_t reg, uint64_t value, uint64_t now_ns,
                     LapicEffects* fx);
  bool WriteLvt(uint32_t reg, uint32_t value, uint64_t now_ns);
  void WriteSvr(uint32_t value, LapicEffects* fx);
  void Eoi(LapicEffects* fx);
  void SendIpi(uint64_t icr, LapicEffects* fx);
  void Error(uint32_t esr_bit);
  bool AcceptFixed(uint8_t vector, bool level);
  uint32_t& Lvt(uint32_t reg);
  // Timer.
  void StartTimer(uint64_t now_ns, uint64_t count);
  void StopTimer() { timer_deadline_.reset(); }

  uint32_t initial_id_;
  uint64_t apic_base_;
  uint8_t xapic_id_ = 0;
  uint8_t tpr_ = 0;
  uint32_t ldr_ = 0;  // xAPIC only (x2APIC derives it)
  uint32_t dfr_ = 0xffffffff;
  uint32_t svr_ = 0xff;
  Bits isr_{}, tmr_{}, irr_{};
  uint32_t esr_ = 0;          // what ESR reads
  uint32_t esr_pending_ = 0;  // errors since the last ESR write
  uint64_t icr_ = 0;          // low 32 bits and the destination above
  // LVT timer, thermal, perf, LINT0, LINT1, error.
  std::array<uint32_t, 6> lvt_{};
  uint32_t timer_initial_ = 0;
  uint32_t timer_divide_ = 0;
  std::optional<uint64_t> timer_deadline_;
  uint64_t timer_period_ns_ = 0;
  bool nmi_pending_ = false;
  bool init_pending_ = false;
  bool sipi_pending_ = false;
  uint8_t sipi_vector_ = 0;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_LAPIC_H_
