// The local APIC model against the Intel SDM vol. 3A, ch. 11, case by case:
// acceptance and priority (11.8), TPR/PPR (11.8.3), EOI (11.8.5), the ICR
// (11.6.1), x2APIC registers (11.12), IA32_APIC_BASE transitions (11.12.5),
// the timer (11.5.4), ESR (11.5.3). Pure: time is a number.
#include "ssihv/kvm/lapic.h"

#include <catch2/catch.hpp>
#include <vector>

namespace ssihv::kvm {
namespace {

using namespace apic;  // NOLINT

uint32_t MsrOf(uint32_t reg) { return kMsrX2apicFirst + (reg >> 4); }

// A software-enabled xAPIC (SVR = 0x1ff).
LocalApic EnabledApic(uint32_t id = 0, bool x2apic = false) {
  LocalApic a(id, id == 0, x2apic);
  LapicEffects fx;
  if (x2apic) {
    REQUIRE(a.WriteMsr(MsrOf(kSvr), 0x1ff, 0, &fx));
  } else {
    a.WriteMmio(kSvr, 4, 0x1ff, 0, &fx);
  }
  REQUIRE(fx.routing_changed);
  return a;
}

void Fixed(LocalApic& a, uint8_t v, bool level = false) {
  a.Accept({v, DeliveryMode::kFixed, level, true});
}

uint32_t Mmio(const LocalApic& a, uint32_t reg, uint64_t now = 0) {
  return a.ReadMmio(reg, 4, now);
}

void Write(LocalApic& a, uint32_t reg, uint32_t v, uint64_t now = 0,
           LapicEffects* fx = nullptr) {
  LapicEffects local;
  a.WriteMmio(reg, 4, v, now, fx ? fx : &local);
}

TEST_CASE("LAPIC power-on state: ID, version, masked LVTs, software-disabled") {
  LocalApic a(5, false);
  CHECK(Mmio(a, kId) == 5u << 24);
  CHECK((Mmio(a, kVersion) & 0xff) == 0x14);
  CHECK(((Mmio(a, kVersion) >> 16) & 0xff) == 5);  // six LVT entries
  CHECK((Mmio(a, kVersion) & (1u << 24)) != 0);    // EOI suppression
  CHECK(Mmio(a, kSvr) == 0xff);
  CHECK(Mmio(a, kDfr) == 0xffffffff);
  for (uint32_t r = kLvtTimer; r <= kLvtError; r += 0x10) {
    CHECK(Mmio(a, r) == kLvtMasked);
  }
  CHECK(a.apic_base() == (kDefaultBase | kBaseEnable));
  CHECK(LocalApic(0, true).apic_base() ==
        (kDefaultBase | kBaseEnable | kBaseBsp));
  CHECK(a.mmio_base() == kDefaultBase);
  // A software-disabled APIC takes no fixed interrupt, but NMI and INIT.
  CHECK_FALSE(a.Accept({0x40, DeliveryMode::kFixed, false, true}));
  CHECK_FALSE(a.irr(0x40));
  CHECK(a.Accept({0, DeliveryMode::kNmi, false, true}));
  CHECK(a.TakeNmi());
  CHECK_FALSE(a.TakeNmi());
}

TEST_CASE("priority: the IRR vector is taken only above the PPR's class") {
  LocalApic a = EnabledApic();
  Fixed(a, 0x45);
  CHECK(a.PendingVector() == 0x45);
  // TPR class 4 masks class 4 and below (SDM 11.8.3.1: strictly above).
  Write(a, kTpr, 0x40);
  CHECK(a.ppr() == 0x40);
  CHECK(a.PendingVector() == -1);
  Write(a, kTpr, 0x3f);  // only the class counts
  CHECK(a.PendingVector() == 0x45);
  Write(a, kTpr, 0x50);
  Fixed(a, 0x61);
  CHECK(a.PendingVector() == 0x61);  // the highest vector first
  CHECK(a.AcknowledgeInterrupt() == 0x61);
  CHECK(a.isr(0x61));
  CHECK_FALSE(a.irr(0x61));
  // PPR = max(TPR class, ISR class): 0x60 now.
  CHECK(a.ppr() == 0x60);
  CHECK(Mmio(a, kPpr) == 0x60);
  CHECK(a.PendingVector() == -1);  // 0x45 is below both
  LapicEffects fx;
  Write(a, kEoi, 0, 0, &fx);
  CHECK_FALSE(fx.eoi_vector.has_value());  // edge: no EOI message
  CHECK(a.ppr() == 0x50);
  Write(a, kTpr, 0);
  CHECK(a.PendingVector() == 0x45);
}

TEST_CASE("ISR nesting: a higher class interrupts, EOI ends the highest") {
  LocalApic a = EnabledApic();
  Fixed(a, 0x31);
  CHECK(a.AcknowledgeInterrupt() == 0x31);
  Fixed(a, 0x35);  // same class as the one in service: held
  CHECK(a.PendingVector() == -1);
  Fixed(a, 0x82);  // a higher class nests
  CHECK(a.AcknowledgeInterrupt() == 0x82);
  CHECK(a.isr(0x31));
  CHECK(a.isr(0x82));
  Fixed(a, 0x90);
  CHECK(a.AcknowledgeInterrupt() == 0x90);
  CHECK(a.ppr() == 0x90);
  Write(a, kEoi, 0);  // ends 0x90, the highest in service
  CHECK_FALSE(a.isr(0x90));
  CHECK(a.isr(0x82));
  CHECK(a.ppr() == 0x80);
  Write(a, kEoi, 0);
  CHECK(a.ppr() == 0x30);
  CHECK(a.PendingVector() == -1);  // 0x35 still waits for 0x31's EOI
  Write(a, kEoi, 0);
  CHECK(a.PendingVector() == 0x35);
  // The ISR registers show it all: vector 0x35 is bit 21 of ISR[1].
  CHECK(a.AcknowledgeInterrupt() == 0x35);
  CHECK(Mmio(a, kIsr + 0x10) == 1u << 21);
  // One more of the same vector may wait in the IRR while it is in service.
  Fixed(a, 0x35);
  CHECK(Mmio(a, kIrr + 0x10) == 1u << 21);
}

TEST_CASE("EOI: a level vector goes to the I/O APIC, an edge one does not") {
  LocalApic a = EnabledApic();
  Fixed(a, 0x60, /*level=*/true);
  CHECK(a.tmr(0x60));
  CHECK(a.AcknowledgeInterrupt() == 0x60);
  LapicEffects fx;
  Write(a, kEoi, 0, 0, &fx);
  CHECK(fx.eoi_vector == 0x60);
  // The same vector edge-triggered clears its TMR bit: no EOI message.
  Fixed(a, 0x60, /*level=*/false);
  CHECK_FALSE(a.tmr(0x60));
  a.AcknowledgeInterrupt();
  fx = {};
  Write(a, kEoi, 0, 0, &fx);
  CHECK_FALSE(fx.eoi_vector.has_value());
  // Directed EOI: with broadcast suppressed (SVR bit 12) the OS writes the
  // I/O APIC's EOI register itself.
  Write(a, kSvr, 0x11ff);
  Fixed(a, 0x61, true);
  a.AcknowledgeInterrupt();
  fx = {};
  Write(a, kEoi, 0, 0, &fx);
  CHECK_FALSE(fx.eoi_vector.has_value());
  CHECK_FALSE(a.isr(0x61));
  // An EOI with nothing in service does nothing.
  fx = {};
  Write(a, kEoi, 0, 0, &fx);
  CHECK_FALSE(fx.eoi_vector.has_value());
  // A level de-assert message carries no interrupt.
  CHECK_FALSE(a.Accept({0x62, DeliveryMode::kFixed, true, false}));
}

TEST_CASE("illegal vectors set ESR and raise the LVT error interrupt") {
  LocalApic a = EnabledApic();
  Write(a, kLvtError, 0xfe);
  CHECK_FALSE(a.Accept({0x0f, DeliveryMode::kFixed, false, true}));
  CHECK(Mmio(a, kEsr) == 0);  // ESR shows errors only after a write
  Write(a, kEsr, 0);
  CHECK(Mmio(a, kEsr) == kEsrReceiveIllegalVector);
  CHECK(a.PendingVector() == 0xfe);
  // Sending a fixed IPI with vector < 16 sends nothing.
  LapicEffects fx;
  Write(a, kIcrLow, 0x000c4005, 0, &fx);  // all-excl-self, fixed, vector 5
  CHECK_FALSE(fx.ipi.has_value());
  Write(a, kEsr, 0);
  CHECK(Mmio(a, kEsr) == kEsrSendIllegalVector);
  Write(a, kEsr, 0);
  CHECK(Mmio(a, kEsr) == 0);
  // A write to a register that does not exist in xAPIC mode (SELF IPI).
  Write(a, kSelfIpi, 0x40);
  Write(a, kEsr, 0);
  CHECK(Mmio(a, kEsr) == kEsrIllegalRegister);
}

TEST_CASE("xAPIC ICR: the fields of the message it sends") {
  LocalApic a = EnabledApic(3);
  LapicEffects fx;
  Write(a, kIcrHigh, 0x07000000);
  CHECK_FALSE(fx.ipi.has_value());        // the high half does not send
  Write(a, kIcrLow, 0x00004841, 0, &fx);  // logical, fixed, assert, 0x41
  REQUIRE(fx.ipi.has_value());
  CHECK(fx.ipi->vector == 0x41);
  CHECK(fx.ipi->mode == DeliveryMode::kFixed);
  CHECK(fx.ipi->logical);
  CHECK(fx.ipi->destination == 0x07);
  CHECK_FALSE(fx.ipi->x2apic_format);
  CHECK(fx.ipi->shorthand == Shorthand::kNone);
  CHECK((Mmio(a, kIcrLow) & kDeliveryStatus) == 0);  // always idle
  CHECK(Mmio(a, kIcrHigh) == 0x07000000);
  // INIT (level assert), then the de-assert that reaches no one, then SIPI.
  fx = {};
  Write(a, kIcrLow, 0x0000c500, 0, &fx);
  REQUIRE(fx.ipi.has_value());
  CHECK(fx.ipi->mode == DeliveryMode::kInit);
  fx = {};
  Write(a, kIcrLow, 0x00008500, 0, &fx);
  CHECK_FALSE(fx.ipi.has_value());
  fx = {};
  Write(a, kIcrLow, 0x00000609, 0, &fx);
  REQUIRE(fx.ipi.has_value());
  CHECK(fx.ipi->mode == DeliveryMode::kStartup);
  CHECK(fx.ipi->vector == 0x09);
  // NMI to all but self; SMI is not sent (no SMM).
  fx = {};
  Write(a, kIcrLow, 0x000c0400, 0, &fx);
  REQUIRE(fx.ipi.has_value());
  CHECK(fx.ipi->mode == DeliveryMode::kNmi);
  CHECK(fx.ipi->shorthand == Shorthand::kAllExcludingSelf);
  fx = {};
  Write(a, kIcrLow, 0x00000200, 0, &fx);
  CHECK_FALSE(fx.ipi.has_value());
}

TEST_CASE("x2APIC: ICR is one 64-bit MSR with a 32-bit destination") {
  LocalApic a = EnabledApic(300, /*x2apic=*/true);
  uint64_t v = 0;
  REQUIRE(a.ReadMsr(MsrOf(kId), 0, &v));
  CHECK(v == 300);
  REQUIRE(a.ReadMsr(MsrOf(kLdr), 0, &v));
  CHECK(v == ((300u >> 4) << 16 | 1u << (300 & 15)));  // cluster 18, bit 12
  LapicEffects fx;
  REQUIRE(
      a.WriteMsr(MsrOf(kIcrLow), (uint64_t{0x1234} << 32) | 0x4052, 0, &fx));
  REQUIRE(fx.ipi.has_value());
  CHECK(fx.ipi->x2apic_format);
  CHECK(fx.ipi->destination == 0x1234);
  CHECK(fx.ipi->vector == 0x52);
  REQUIRE(a.ReadMsr(MsrOf(kIcrLow), 0, &v));
  CHECK(v == ((uint64_t{0x1234} << 32) | 0x4052));
  // SELF IPI: vector only, fixed, edge, to this APIC.
  fx = {};
  REQUIRE(a.WriteMsr(MsrOf(kSelfIpi), 0x77, 0, &fx));
  REQUIRE(fx.ipi.has_value());
  CHECK(fx.ipi->shorthand == Shorthand::kSelf);
  CHECK(fx.ipi->vector == 0x77);
  CHECK(fx.ipi->mode == DeliveryMode::kFixed);
  CHECK_FALSE(fx.ipi->level_triggered);
}

TEST_CASE("x2APIC: #GP for absent, read-only, write-only and reserved") {
  LocalApic a = EnabledApic(1, true);
  uint64_t v = 0;
  LapicEffects fx;
  // Absent in x2APIC mode: DFR, APR, RRD, ICR high, CMCI (not modeled).
  for (uint32_t reg : {kDfr, kApr, kRrd, kIcrHigh, 0x2f0u, 0x40u}) {
    INFO("register 0x" << std::hex << reg);
    CHECK_FALSE(a.ReadMsr(MsrOf(reg), 0, &v));
    CHECK_FALSE(a.WriteMsr(MsrOf(reg), 0, 0, &fx));
  }
  // Write-only.
  CHECK_FALSE(a.ReadMsr(MsrOf(kEoi), 0, &v));
  CHECK_FALSE(a.ReadMsr(MsrOf(kSelfIpi), 0, &v));
  // Read-only.
  for (uint32_t reg :
       {kId, kVersion, kPpr, kLdr, kIsr, kTmr + 0x70, kIrr, kTimerCurrent}) {
    INFO("register 0x" << std::hex << reg);
    CHECK(a.ReadMsr(MsrOf(reg), 0, &v));
    CHECK_FALSE(a.WriteMsr(MsrOf(reg), 0, 0, &fx));
  }
  // Reserved bits and non-zero EOI / ESR writes.
  CHECK_FALSE(a.WriteMsr(MsrOf(kEoi), 1, 0, &fx));
  CHECK(a.WriteMsr(MsrOf(kEoi), 0, 0, &fx));
  CHECK_FALSE(a.WriteMsr(MsrOf(kEsr), 1, 0, &fx));
  CHECK_FALSE(a.WriteMsr(MsrOf(kTpr), 0x100, 0, &fx));
  CHECK_FALSE(a.WriteMsr(MsrOf(kTpr), uint64_t{1} << 32, 0, &fx));
  CHECK_FALSE(a.WriteMsr(MsrOf(kSvr), 0x1ff | (1u << 10), 0, &fx));
  CHECK_FALSE(a.WriteMsr(MsrOf(kLvtTimer), 1u << 18, 0, &fx));  // deadline
  CHECK_FALSE(a.WriteMsr(MsrOf(kIcrLow), 1u << 20, 0, &fx));
  CHECK_FALSE(a.WriteMsr(MsrOf(kTimerDivide), 4, 0, &fx));
  // Out of the x2APIC range, and the whole range while in xAPIC mode.
  CHECK_FALSE(a.ReadMsr(0x7ff, 0, &v));
  LocalApic x(1, false);
  CHECK_FALSE(x.ReadMsr(MsrOf(kTpr), 0, &v));
  CHECK_FALSE(x.WriteMsr(MsrOf(kTpr), 0, 0, &fx));
}

TEST_CASE("IA32_APIC_BASE: the SDM's mode transitions, reserved bits") {
  LapicEffects fx;
  LocalApic a(7, false);
  const uint64_t xapic = kDefaultBase | kBaseEnable;
  const uint64_t x2apic = xapic | kBaseX2apic;
  CHECK_FALSE(a.WriteApicBase(xapic | 1, &fx));  // reserved bit 0
  CHECK_FALSE(a.WriteApicBase(xapic | (1u << 9), &fx));
  CHECK_FALSE(a.WriteApicBase(xapic | (1ull << 52), &fx));
  CHECK_FALSE(a.WriteApicBase(kDefaultBase | kBaseX2apic, &fx));  // EXTD only
  REQUIRE(a.WriteApicBase(x2apic, &fx));  // xAPIC -> x2APIC
  CHECK(a.x2apic());
  CHECK_FALSE(a.mmio_base().has_value());
  CHECK_FALSE(a.WriteApicBase(xapic, &fx));     // x2APIC -> xAPIC: #GP
  REQUIRE(a.WriteApicBase(kDefaultBase, &fx));  // -> disabled
  CHECK_FALSE(a.hw_enabled());
  CHECK_FALSE(a.WriteApicBase(x2apic, &fx));  // disabled -> x2APIC: #GP
  REQUIRE(a.WriteApicBase(xapic, &fx));       // disabled -> xAPIC
  REQUIRE(a.WriteApicBase(x2apic, &fx));
  // Relocation moves the xAPIC page.
  LocalApic b(0, true);
  REQUIRE(b.WriteApicBase(0xfed00000 | kBaseEnable | kBaseBsp, &fx));
  CHECK(b.mmio_base() == 0xfed00000);
  // Disabling resets the registers to their power-on values.
  LocalApic c = EnabledApic(2);
  Write(c, kTpr, 0x30);
  REQUIRE(c.WriteApicBase(kDefaultBase, &fx));
  REQUIRE(c.WriteApicBase(xapic, &fx));
  CHECK(Mmio(c, kTpr) == 0);
  CHECK(Mmio(c, kSvr) == 0xff);
  // A disabled APIC offers nothing to the CPU.
  LocalApic d = EnabledApic(2);
  Fixed(d, 0x50);
  REQUIRE(d.WriteApicBase(kDefaultBase, &fx));
  CHECK(d.PendingVector() == -1);
}

TEST_CASE("software disable masks every LVT and keeps it masked") {
  LocalApic a = EnabledApic();
  Write(a, kLvtLint0, 0x700);
  CHECK(Mmio(a, kLvtLint0) == 0x700);
  Write(a, kSvr, 0xff);  // software-disable
  CHECK((Mmio(a, kLvtLint0) & kLvtMasked) != 0);
  Write(a, kLvtLint0, 0x700);
  CHECK((Mmio(a, kLvtLint0) & kLvtMasked) != 0);
  // LVT writable bits: the timer has no delivery mode, LINT has polarity
  // and trigger.
  Write(a, kSvr, 0x1ff);
  Write(a, kLvtTimer, 0xffffffff);
  CHECK(Mmio(a, kLvtTimer) == 0x300ff);
  Write(a, kLvtLint1, 0xffffffff);
  CHECK(Mmio(a, kLvtLint1) == 0x1a7ff);
  Write(a, kLvtError, 0xffffffff);
  CHECK(Mmio(a, kLvtError) == 0x100ff);
}

TEST_CASE(
    "MMIO access widths: sub-register reads, only aligned 32-bit writes") {
  LocalApic a = EnabledApic(0x12);
  CHECK(a.ReadMmio(kId + 3, 1, 0) == 0x12);
  CHECK(a.ReadMmio(kId + 2, 2, 0) == 0x1200);
  CHECK(a.ReadMmio(kId + 3, 2, 0) == 0);  // crosses the register
  CHECK(a.ReadMmio(kId + 4, 4, 0) == 0);  // past the 32 bits
  CHECK(a.ReadMmio(0xff0, 4, 0) == 0);    // reserved offset
  LapicEffects fx;
  a.WriteMmio(kTpr, 1, 0x50, 0, &fx);  // byte write: dropped
  a.WriteMmio(kTpr + 4, 4, 0x50, 0, &fx);
  CHECK(Mmio(a, kTpr) == 0);
  a.WriteMmio(kTpr, 4, 0xffffff50, 0, &fx);
  CHECK(Mmio(a, kTpr) == 0x50);
  // The xAPIC ID, LDR and DFR are writable (routing follows them).
  fx = {};
  a.WriteMmio(kLdr, 4, 0x0400ffff, 0, &fx);
  CHECK(fx.routing_changed);
  CHECK(Mmio(a, kLdr) == 0x04000000);
  a.WriteMmio(kDfr, 4, 0x00000000, 0, &fx);
  CHECK(Mmio(a, kDfr) == 0x0fffffff);
  CHECK(a.routing().dfr_model == kDfrCluster);
  a.WriteMmio(kId, 4, 0x09000000, 0, &fx);
  CHECK(a.routing().xapic_id == 9);
  CHECK(a.routing().x2apic_id == 0x12);  // the initial ID stays
}

TEST_CASE("CR8 is TPR[7:4] both ways") {
  LocalApic a = EnabledApic();
  Write(a, kTpr, 0x5a);
  CHECK(a.cr8() == 5);
  CHECK_FALSE(a.SetCr8(5));  // same class: TPR untouched
  CHECK(a.tpr() == 0x5a);
  CHECK(a.SetCr8(2));
  CHECK(a.tpr() == 0x20);
  Fixed(a, 0x25);
  CHECK(a.PendingVector() == -1);
  CHECK(a.SetCr8(1));
  CHECK(a.PendingVector() == 0x25);
}

TEST_CASE("APR (arbitration priority) per SDM 11.6.2.4") {
  LocalApic a = EnabledApic();
  Write(a, kTpr, 0x35);
  CHECK(Mmio(a, kApr) == 0x35);  // TPR above IRR and ISR classes
  Fixed(a, 0x72);
  CHECK(Mmio(a, kApr) == 0x70);  // the IRR class wins
}

TEST_CASE("INIT, SIPI and NMI are latched for the CPU") {
  LocalApic a = EnabledApic(1);
  Write(a, kTpr, 0x20);
  Fixed(a, 0x40);
  CHECK(a.Accept({0x12, DeliveryMode::kStartup, false, true}));
  CHECK(a.Accept({0, DeliveryMode::kInit, true, true}));
  CHECK_FALSE(a.sipi_pending());  // an earlier SIPI is dropped by INIT
  CHECK_FALSE(a.Accept({0, DeliveryMode::kInit, true, false}));  // de-assert
  CHECK(a.Accept({0x09, DeliveryMode::kStartup, false, true}));
  CHECK(a.TakeInit());
  LapicEffects fx;
  a.Init(&fx);
  CHECK(fx.routing_changed);
  CHECK(a.tpr() == 0);
  CHECK_FALSE(a.irr(0x40));
  CHECK(Mmio(a, kSvr) == 0xff);
  CHECK(Mmio(a, kId) == 1u << 24);
  CHECK(a.TakeSipi() == 0x09);  // the SIPI after the INIT survives it
  CHECK_FALSE(a.TakeSipi().has_value());
  CHECK_FALSE(a.Accept({0, DeliveryMode::kSmi, false, true}));
  CHECK_FALSE(a.Accept({0, DeliveryMode::kExtInt, false, true}));
}

// One-shot count-down at every divider: TMCCT = TMICT - elapsed / divisor.
TEST_CASE("timer: one-shot counts down at bus/divisor for each divider") {
  const std::vector<std::pair<uint32_t, uint32_t>> dividers = {
      {0x0, 2},  {0x1, 4},  {0x2, 8},   {0x3, 16},
      {0x8, 32}, {0x9, 64}, {0xa, 128}, {0xb, 1}};
  for (auto [config, divisor] : dividers) {
    INFO("TDCR 0x" << std::hex << config);
    CHECK(TimerDivisor(config) == divisor);
    LocalApic a = EnabledApic();
    const uint64_t t0 = 1'000'000;
    Write(a, kTimerDivide, config, t0);
    Write(a, kLvtTimer, 0x40, t0);
    Write(a, kTimerInitial, 1000, t0);
    CHECK(Mmio(a, kTimerCurrent, t0) == 1000);
    CHECK(a.timer_deadline() == t0 + 1000ull * divisor * kBusCycleNs);
    CHECK(Mmio(a, kTimerCurrent, t0 + 250ull * divisor) == 750);
    CHECK_FALSE(a.AdvanceTimer(t0 + 999ull * divisor));
    CHECK(Mmio(a, kTimerCurrent, t0 + 999ull * divisor) == 1);
    CHECK(a.AdvanceTimer(t0 + 1000ull * divisor));
    CHECK(a.PendingVector() == 0x40);
    // One-shot: stopped at zero, fires once.
    CHECK(Mmio(a, kTimerCurrent, t0 + 5000ull * divisor) == 0);
    CHECK_FALSE(a.timer_deadline().has_value());
    CHECK_FALSE(a.AdvanceTimer(t0 + 9000ull * divisor));
  }
}

TEST_CASE("timer: periodic reloads, coalesces missed periods, stops") {
  LocalApic a = EnabledApic();
  Write(a, kTimerDivide, 0xb);  // divide by 1
  Write(a, kLvtTimer, kLvtTimerPeriodic | 0x41);
  Write(a, kTimerInitial, 100, 0);
  CHECK(a.AdvanceTimer(100));
  CHECK(a.timer_deadline() == 200);
  CHECK(a.AcknowledgeInterrupt() == 0x41);
  Write(a, kEoi, 0);
  CHECK(Mmio(a, kTimerCurrent, 150) == 50);
  // Expired but not advanced yet: the count has already reloaded.
  CHECK(Mmio(a, kTimerCurrent, 230) == 70);
  // Three periods late: one interrupt, the next deadline on the grid.
  CHECK(a.AdvanceTimer(530));
  CHECK(a.timer_deadline() == 600);
  CHECK(a.PendingVector() == 0x41);
  // Masked: it keeps counting but raises nothing.
  CHECK(a.AcknowledgeInterrupt() == 0x41);
  Write(a, kEoi, 0);
  Write(a, kLvtTimer, kLvtTimerPeriodic | kLvtMasked | 0x41);
  CHECK(a.AdvanceTimer(600));
  CHECK(a.PendingVector() == -1);
  CHECK(a.timer_deadline() == 700);
  // A mode change stops it; TMICT = 0 stops it.
  Write(a, kLvtTimer, 0x41);
  CHECK_FALSE(a.timer_deadline().has_value());
  Write(a, kTimerInitial, 10, 1000);
  CHECK(a.timer_deadline() == 1010);
  Write(a, kTimerInitial, 0, 1005);
  CHECK_FALSE(a.timer_deadline().has_value());
}

TEST_CASE("timer: a new divider applies to the rest of the count") {
  LocalApic a = EnabledApic();
  Write(a, kTimerDivide, 0xb);  // /1
  Write(a, kLvtTimer, 0x40);
  Write(a, kTimerInitial, 1000, 0);
  Write(a, kTimerDivide, 0x0, 400);  // /2 with 600 ticks left
  CHECK(Mmio(a, kTimerCurrent, 400) == 600);
  CHECK(a.timer_deadline() == 400 + 1200);
}

TEST_CASE("routing view follows the mode") {
  LocalApic a(0x23, false);
  ApicRoutingEntry e = a.routing();
  CHECK(e.x2apic_id == 0x23);
  CHECK(e.xapic_id == 0x23);
  CHECK_FALSE(e.sw_enabled);
  LapicEffects fx;
  REQUIRE(a.WriteApicBase(kDefaultBase | kBaseEnable | kBaseX2apic, &fx));
  e = a.routing();
  CHECK(e.x2apic);
  CHECK(e.ldr == ((0x23u >> 4) << 16 | 1u << 3));
}

}  // namespace
}  // namespace ssihv::kvm
