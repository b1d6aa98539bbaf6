// UserIrqchip without KVM: register accesses as the run loop makes them,
// routing through the ApicBus seam, the plans a vCPU gets before entry
// (INIT, SIPI, NMI, vectors, windows), HLT waits and their wake-ups, the
// I/O APIC on the MMIO bus, a fake clock for the timer.
#include "ssihv/kvm/user_irqchip.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "ssihv/kvm/bus.h"

namespace ssihv::kvm {
namespace {

constexpr uint64_t kApic = apic::kDefaultBase;

struct FakeClock {
  std::atomic<uint64_t> now{1'000'000};
  std::function<uint64_t()> fn() {
    return [this] { return now.load(); };
  }
};

UserIrqchip::Options Opts(uint32_t vcpus, ApicBus* bus = nullptr,
                          std::function<uint64_t()> clock = nullptr) {
  UserIrqchip::Options o;
  o.num_vcpus = vcpus;
  o.bus = bus;
  o.clock = std::move(clock);
  return o;
}

void MmioWrite(UserIrqchip& chip, uint32_t vcpu, uint32_t reg, uint32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  REQUIRE(chip.ApicMmio(vcpu, kApic + reg, true, absl::MakeSpan(b)));
}

uint32_t MmioRead(UserIrqchip& chip, uint32_t vcpu, uint32_t reg) {
  uint8_t b[4] = {};
  REQUIRE(chip.ApicMmio(vcpu, kApic + reg, false, absl::MakeSpan(b)));
  uint32_t v;
  std::memcpy(&v, b, 4);
  return v;
}

void Enable(UserIrqchip& chip, uint32_t vcpu) {
  MmioWrite(chip, vcpu, apic::kSvr, 0x1ff);
}

// ICR with a physical destination (xAPIC).
void SendIpi(UserIrqchip& chip, uint32_t from, uint8_t dest, uint32_t low) {
  MmioWrite(chip, from, apic::kIcrHigh, uint32_t{dest} << 24);
  MmioWrite(chip, from, apic::kIcrLow, low);
}

TEST_CASE("power-on: the BSP runs, APs wait for INIT then SIPI") {
  std::vector<uint32_t> kicks;
  UserIrqchip chip(Opts(3));
  chip.SetKicker([&](uint32_t v) { kicks.push_back(v); });
  CHECK(chip.activity(0) == VcpuActivity::kRunning);
  CHECK(chip.activity(2) == VcpuActivity::kWaitForSipi);
  EntryPlan p = chip.PlanEntry(2, true);
  CHECK(p.wait);
  // Linux's INIT, SIPI, SIPI.
  SendIpi(chip, 0, 1, 0x0000c500);  // INIT, level assert
  SendIpi(chip, 0, 1, 0x00000610);  // SIPI vector 0x10
  SendIpi(chip, 0, 1, 0x00000610);  // the second SIPI
  CHECK(kicks == std::vector<uint32_t>{1, 1, 1});
  p = chip.PlanEntry(1, false);
  CHECK(p.init);
  CHECK(p.sipi == 0x10);
  CHECK_FALSE(p.wait);
  CHECK(chip.activity(1) == VcpuActivity::kRunning);
  // A later SIPI to a running AP is ignored.
  SendIpi(chip, 0, 1, 0x00000620);
  p = chip.PlanEntry(1, false);
  CHECK_FALSE(p.sipi.has_value());
  CHECK_FALSE(p.init);
  // INIT to the BSP: nothing to run after it but a reset.
  SendIpi(chip, 1, 0, 0x00004500);
  CHECK(chip.PlanEntry(0, false).reset_machine);
  CHECK(chip.stats().ipis == 5);
}

TEST_CASE("fixed IPI: dropped by a disabled APIC, else a vector or a window") {
  UserIrqchip chip(Opts(2));
  SendIpi(chip, 0, 1, 0x00000620);
  chip.PlanEntry(1, false);         // (starts vCPU 1)
  SendIpi(chip, 0, 1, 0x00004041);  // fixed 0x41, APIC 1 software-disabled
  EntryPlan p = chip.PlanEntry(1, true);
  CHECK(p.vector == -1);
  CHECK_FALSE(p.want_window);
  Enable(chip, 1);
  SendIpi(chip, 0, 1, 0x00004041);
  p = chip.PlanEntry(1, /*can_inject=*/false);
  CHECK(p.vector == -1);
  CHECK(p.want_window);
  p = chip.PlanEntry(1, true);
  CHECK(p.vector == 0x41);
  CHECK_FALSE(p.want_window);
  // In service now: ISR bit set, PPR raised.
  CHECK(MmioRead(chip, 1, apic::kIsr + 0x20) == 1u << 1);
  CHECK(MmioRead(chip, 1, apic::kPpr) == 0x40);
  MmioWrite(chip, 1, apic::kEoi, 0);
  CHECK(MmioRead(chip, 1, apic::kPpr) == 0);
}

TEST_CASE("logical destination uses the routing table the APICs publish") {
  UserIrqchip chip(Opts(2));
  Enable(chip, 0);
  Enable(chip, 1);
  MmioWrite(chip, 1, apic::kLdr, 0x02000000);
  CHECK(chip.routing_table()[1].ldr == 0x02000000);
  CHECK(chip.routing_table()[1].sw_enabled);
  MmioWrite(chip, 0, apic::kIcrHigh, 0x02000000);
  MmioWrite(chip, 0, apic::kIcrLow, 0x00004851);  // logical, fixed, 0x51
  chip.PlanEntry(1, false);  // (wait-for-SIPI: nothing injected)
  CHECK(chip.stats().deliveries == 1);
}

TEST_CASE("HLT: the vCPU waits until an interrupt it can take arrives") {
  UserIrqchip chip(Opts(2));
  Enable(chip, 0);
  Enable(chip, 1);
  SendIpi(chip, 1, 0, 0x00004030);  // pending before the HLT
  chip.Halted(0, /*interrupts_enabled=*/true);
  EntryPlan p = chip.PlanEntry(0, true);
  CHECK_FALSE(p.wait);
  CHECK(p.vector == 0x30);
  // cli; hlt: a fixed interrupt does not wake it, an NMI does.
  chip.Halted(0, false);
  SendIpi(chip, 1, 0, 0x00004031);
  CHECK(chip.PlanEntry(0, false).wait);
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    chip.Wait(0, [] { return false; });
    woke = true;
  });
  SendIpi(chip, 1, 0, 0x00004400);  // NMI
  waiter.join();
  CHECK(woke);
  p = chip.PlanEntry(0, false);
  CHECK(p.nmi);
  CHECK_FALSE(p.wait);
  // A waiter also returns when stopped.
  chip.Halted(0, true);
  MmioWrite(chip, 0, apic::kTpr, 0xf0);  // nothing can get through
  std::atomic<bool> stop{false};
  std::thread stopped([&] { chip.Wait(0, [&] { return stop.load(); }); });
  stop = true;
  chip.WakeAll();
  stopped.join();
}

TEST_CASE("the timer raises its vector on the fake clock; HLT wakes for it") {
  FakeClock clock;
  UserIrqchip chip(Opts(1, nullptr, clock.fn()));
  Enable(chip, 0);
  MmioWrite(chip, 0, apic::kTimerDivide, 0xb);  // /1
  MmioWrite(chip, 0, apic::kLvtTimer, 0x40);
  MmioWrite(chip, 0, apic::kTimerInitial, 5000);
  EntryPlan p = chip.PlanEntry(0, true);
  CHECK(p.timer_deadline == clock.now + 5000);
  CHECK(p.vector == -1);
  CHECK(MmioRead(chip, 0, apic::kTimerCurrent) == 5000);
  clock.now += 2000;
  CHECK(MmioRead(chip, 0, apic::kTimerCurrent) == 3000);
  clock.now += 3000;
  chip.Halted(0, true);
  p = chip.PlanEntry(0, true);
  CHECK_FALSE(p.wait);
  CHECK(p.vector == 0x40);
  CHECK_FALSE(p.timer_deadline.has_value());
  CHECK(chip.stats().timer_interrupts == 1);
}

TEST_CASE("x2APIC through MSRs: enable, IPI by ICR and SELF IPI") {
  UserIrqchip chip(Opts(2));
  uint64_t base = 0;
  REQUIRE(chip.ReadMsr(0, apic::kMsrApicBase, &base));
  CHECK(base == (kApic | apic::kBaseEnable | apic::kBaseBsp));
  CHECK_FALSE(chip.ReadMsr(0, 0x808, &base));  // x2APIC MSRs: #GP in xAPIC
  REQUIRE(chip.WriteMsr(0, apic::kMsrApicBase, base | apic::kBaseX2apic));
  CHECK(chip.routing_table()[0].x2apic);
  // The xAPIC page is gone.
  uint8_t b[4] = {};
  CHECK_FALSE(chip.ApicMmio(0, kApic + apic::kTpr, false, absl::MakeSpan(b)));
  REQUIRE(chip.WriteMsr(0, 0x80f, 0x1ff));  // SVR
  REQUIRE(chip.WriteMsr(0, 0x83f, 0x66));   // SELF IPI
  EntryPlan p = chip.PlanEntry(0, true);
  CHECK(p.vector == 0x66);
  REQUIRE(chip.WriteMsr(0, 0x80b, 0));
  CHECK_FALSE(chip.WriteMsr(0, 0x80b, 1));  // non-zero EOI: #GP
  // vCPU 1 in xAPIC mode, reached by a 32-bit destination.
  MmioWrite(chip, 1, apic::kSvr, 0x1ff);
  REQUIRE(chip.WriteMsr(0, 0x830, (uint64_t{1} << 32) | 0x4077));
  CHECK(chip.stats().deliveries == 2);
  CHECK(UserIrqchip::IsApicMsr(0x1b));
  CHECK(UserIrqchip::IsApicMsr(0x8ff));
  CHECK_FALSE(UserIrqchip::IsApicMsr(0x900));
}

TEST_CASE("I/O APIC on the MMIO bus: level line, remote IRR, EOI") {
  UserIrqchip chip(Opts(1));
  Bus mmio("mmio");
  REQUIRE(chip.RegisterIoApic(mmio).ok());
  Enable(chip, 0);
  auto reg = [&](uint32_t index, uint32_t value) {
    uint8_t b[4];
    std::memcpy(b, &index, 4);
    REQUIRE(mmio.Write(IoApic::kDefaultBase, absl::MakeConstSpan(b)));
    std::memcpy(b, &value, 4);
    REQUIRE(mmio.Write(IoApic::kDefaultBase + 0x10, absl::MakeConstSpan(b)));
  };
  reg(0x10 + 2 * 5 + 1, 0);  // destination APIC 0
  reg(0x10 + 2 * 5, 0x55 | IoApic::kLevelTriggered);
  chip.SetIrq(5, true);
  EntryPlan p = chip.PlanEntry(0, true);
  CHECK(p.vector == 0x55);
  chip.SetIrq(5, true);  // remote IRR: no second message
  CHECK(chip.stats().ioapic_interrupts == 1);
  MmioWrite(chip, 0, apic::kEoi, 0);  // level: broadcast to the I/O APIC
  CHECK(chip.stats().eois_to_ioapic == 1);
  CHECK(chip.stats().ioapic_interrupts == 2);  // still asserted: again
  CHECK(chip.PlanEntry(0, true).vector == 0x55);
  chip.SetIrq(5, false);
  MmioWrite(chip, 0, apic::kEoi, 0);
  CHECK(chip.stats().ioapic_interrupts == 2);
  // The register window reads back.
  uint8_t sel[4] = {1, 0, 0, 0};
  REQUIRE(mmio.Write(IoApic::kDefaultBase, absl::MakeConstSpan(sel)));
  uint8_t ver[4] = {};
  REQUIRE(mmio.Read(IoApic::kDefaultBase + 0x10, absl::MakeSpan(ver)));
  CHECK(ver[0] == 0x20);
  CHECK(ver[2] == 23);
}

TEST_CASE("TPR and CR8: the plan carries CR8, a lower CR8 unmasks") {
  UserIrqchip chip(Opts(1));
  Enable(chip, 0);
  MmioWrite(chip, 0, apic::kTpr, 0x50);
  SendIpi(chip, 0, 0, 0x00004045);
  EntryPlan p = chip.PlanEntry(0, true);
  CHECK(p.cr8 == 5);
  CHECK(p.vector == -1);
  CHECK_FALSE(p.want_window);  // masked by priority, not by IF
  chip.SyncCr8(0, 3);
  CHECK(MmioRead(chip, 0, apic::kTpr) == 0x30);
  CHECK(chip.routing_table()[0].tpr == 0x30);
  CHECK(chip.PlanEntry(0, true).vector == 0x45);
}

TEST_CASE("APIC MMIO: only the vCPU's own page, relocatable") {
  UserIrqchip chip(Opts(1));
  uint8_t b[4] = {};
  CHECK_FALSE(chip.ApicMmio(0, kApic - 4, false, absl::MakeSpan(b)));
  CHECK_FALSE(chip.ApicMmio(0, kApic + 0x1000, false, absl::MakeSpan(b)));
  REQUIRE(chip.WriteMsr(0, apic::kMsrApicBase,
                        0xfed00000 | apic::kBaseEnable | apic::kBaseBsp));
  CHECK_FALSE(chip.ApicMmio(0, kApic + apic::kId, false, absl::MakeSpan(b)));
  CHECK(
      chip.ApicMmio(0, 0xfed00000 + apic::kVersion, false, absl::MakeSpan(b)));
  CHECK(b[0] == 0x14);
  CHECK_FALSE(chip.WriteMsr(0, apic::kMsrApicBase, 1));  // reserved bit
}

// The seam: a bus in between sees every resolved delivery and EOI.
struct RecordingBus : ApicBus {
  void Deliver(const ApicDelivery& d,
               absl::Span<const uint32_t> vcpus) override {
    deliveries.push_back(d);
    targets.emplace_back(vcpus.begin(), vcpus.end());
  }
  void EoiToIoApic(uint8_t vector) override { eois.push_back(vector); }
  std::vector<ApicDelivery> deliveries;
  std::vector<std::vector<uint32_t>> targets;
  std::vector<uint8_t> eois;
};

TEST_CASE("ApicBus seam: resolved deliveries and EOIs go through the bus") {
  RecordingBus bus;
  UserIrqchip chip(Opts(4, &bus));
  Enable(chip, 0);
  MmioWrite(chip, 0, apic::kIcrLow, 0x000c4033);  // all but self, fixed
  REQUIRE(bus.deliveries.size() == 1);
  CHECK(bus.deliveries[0] ==
        ApicDelivery{0x33, DeliveryMode::kFixed, false, true});
  CHECK(bus.targets[0] == std::vector<uint32_t>{1, 2, 3});
  // Nothing reached the local APICs: the bus decides.
  CHECK(chip.stats().deliveries == 0);
  // A bus hands this chip the deliveries for its own vCPUs.
  chip.Deliver(bus.deliveries[0], std::vector<uint32_t>{0});
  CHECK(chip.stats().deliveries == 1);
  // A level interrupt's EOI reaches the bus, not the local I/O APIC.
  chip.Deliver({0x70, DeliveryMode::kFixed, true, true},
               std::vector<uint32_t>{0});
  CHECK(chip.PlanEntry(0, true).vector == 0x70);
  MmioWrite(chip, 0, apic::kEoi, 0);
  CHECK(bus.eois == std::vector<uint8_t>{0x70});
}

}  // namespace
}  // namespace ssihv::kvm
