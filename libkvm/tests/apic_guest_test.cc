// The user irqchip proven by guest programs on real KVM (part of
// kvm_guest_test, label kvm; apic_payloads.S): the APIC timer one-shot and
// periodic at the programmed count, IPIs by physical and logical
// destination, INIT+SIPI starting an AP at the vector's page, TPR and CR8
// holding back a lower class, NMI with IF = 0, a level-triggered I/O APIC
// line delivered again only after EOI, x2APIC IPIs and SELF IPI by MSR, and
// MSRs KVM refuses reflected as #GP.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "apic_guest_layout.h"
#include "ssihv/kvm/run_loop.h"
#include "ssihv/kvm/user_irqchip.h"
#include "ssihv/kvm/x86_boot.h"
#include "ssihv/kvm/x86_vcpu.h"
#include "test_vm.h"

SSIHV_DECLARE_PAYLOAD(apic_code)
SSIHV_DECLARE_PAYLOAD(apic_trampoline)
extern "C" const uint8_t apic_isr_stubs[], apic_isr_nmi[], apic_isr_gp[];
extern "C" const uint8_t apic_timer_main[], apic_ipi_main[], apic_ap_xapic[],
    apic_tpr_main[], apic_nmi_main[], apic_level_main[], apic_x2apic_main[],
    apic_ap_x2apic[], apic_trampoline_probe[];

namespace ssihv::kvm {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Unwrap;

// Guest address of a symbol in apic_code.
uint64_t CodeAddr(const uint8_t* symbol) {
  return AT_CODE + static_cast<uint64_t>(symbol - apic_code_start);
}

// A 64-bit interrupt gate (present, DPL 0) to `handler` in the boot CS.
std::array<uint8_t, 16> Gate(uint64_t handler) {
  std::array<uint8_t, 16> g{};
  const uint16_t lo = handler & 0xffff, cs = kBootCsSelector;
  const uint16_t mid = (handler >> 16) & 0xffff;
  const uint32_t hi = static_cast<uint32_t>(handler >> 32);
  std::memcpy(&g[0], &lo, 2);
  std::memcpy(&g[2], &cs, 2);
  g[5] = 0x8e;
  std::memcpy(&g[6], &mid, 2);
  std::memcpy(&g[8], &hi, 4);
  return g;
}

// What a vCPU reported on its data port.
struct Event {
  uint32_t vcpu;
  uint32_t kind;
  uint32_t value;  // the raw 32 bits for EV_VAL32
  Clock::time_point time;
};

// Writes an I/O APIC input from port AT_LINE_PORT: bit 7 level, 4:0 pin.
class LineDevice : public BusDevice {
 public:
  explicit LineDevice(UserIrqchip* chip) : chip_(chip) {}
  void Read(uint64_t, absl::Span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());
  }
  void Write(uint64_t, absl::Span<const uint8_t> data) override {
    chip_->SetIrq(data[0] & 0x1f, data[0] & AT_LINE_LEVEL);
  }

 private:
  UserIrqchip* chip_;
};

UserIrqchip::Options ChipOptions(uint32_t vcpus) {
  UserIrqchip::Options o;
  o.num_vcpus = vcpus;
  return o;
}

// A VM with the user irqchip, guest RAM [0, 1 MiB) holding the code, IDT,
// GDT and page tables, vCPU 0 in long mode at an entry of apic_code, the
// others waiting for SIPI (the trampoline takes them to `ap_entry`).
struct ApicGuest {
  explicit ApicGuest(uint32_t num_vcpus)
      : t(VmOptions{.irqchip = false, .pit = false, .user_apic_msrs = true},
          AT_RAM),
        chip(ChipOptions(num_vcpus)) {
    const GuestMemory& mem = t.vm.memory();
    REQUIRE(mem.Write(AT_CODE, SSIHV_PAYLOAD(apic_code)).ok());
    REQUIRE(mem.Write(AT_TRAMPOLINE, SSIHV_PAYLOAD(apic_trampoline)).ok());
    REQUIRE(WriteIdentityPageTables(mem, AT_PML4).ok());
    boot.gdt_limit = Unwrap(WriteBootGdt(mem, AT_GDT));
    boot.page_tables = AT_PML4;
    for (uint32_t v = 0x20; v < 0x100; ++v) {
      WriteGate(v, CodeAddr(apic_isr_stubs) + 16 * (v - 0x20));
    }
    WriteGate(2, CodeAddr(apic_isr_nmi));
    WriteGate(13, CodeAddr(apic_isr_gp));
    const uint16_t gdt_limit = static_cast<uint16_t>(boot.gdt_limit);
    const uint64_t gdt_base = AT_GDT, idt_base = AT_IDT;
    const uint16_t idt_limit = 0xfff;
    REQUIRE(mem.WriteObject(AT_GDTR, gdt_limit).ok());
    REQUIRE(mem.WriteObject(AT_GDTR + 2, gdt_base).ok());
    REQUIRE(mem.WriteObject(AT_IDTR, idt_limit).ok());
    REQUIRE(mem.WriteObject(AT_IDTR + 2, idt_base).ok());
    REQUIRE(chip.RegisterIoApic(t.mmio).ok());
    REQUIRE(t.pio.Register(AT_LINE_PORT, 1, std::make_shared<LineDevice>(&chip))
                .ok());
    for (uint32_t i = 0; i < num_vcpus; ++i) {
      vcpus.push_back(Unwrap(t.vm.CreateVcpu(i)));
      REQUIRE(ConfigureX86Vcpu(vcpus.back(), t.vm.supported_cpuid(),
                               {.apic_id = i, .node = 0}, IrqchipKind::kUser)
                  .ok());
    }
  }

  void WriteGate(uint32_t vector, uint64_t handler) {
    REQUIRE(
        t.vm.memory().WriteObject(AT_IDT + 16 * vector, Gate(handler)).ok());
  }

  // Runs vCPU 0 from `entry` (and APs, once started, from `ap_entry`) until
  // it reports done on AT_DONE_PORT; a watchdog stops a guest that hangs.
  StopEvent Run(const uint8_t* entry, const uint8_t* ap_entry = nullptr) {
    if (ap_entry != nullptr) {
      REQUIRE(t.vm.memory().WriteObject(AT_AP_ENTRY, CodeAddr(ap_entry)).ok());
    }
    const Vcpu& bsp = vcpus[0];
    kvm_sregs s = LongModeSregs(Unwrap(bsp.GetSregs()), boot);
    s.idt.base = AT_IDT;
    s.idt.limit = 0xfff;
    REQUIRE(bsp.SetSregs(s).ok());
    kvm_regs r{};
    r.rip = CodeAddr(entry);
    r.rsp = AT_BSP_STACK;
    r.rflags = 2;
    REQUIRE(bsp.SetRegs(r).ok());
    std::vector<const Vcpu*> ptrs;
    for (const Vcpu& v : vcpus) ptrs.push_back(&v);
    VcpuThreads threads(ptrs, t.pio, t.mmio, t.stop, &chip);
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
      const auto deadline = Clock::now() + std::chrono::seconds(120);
      while (!done && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!done) {
        t.stop.Request(StopReason::kError,
                       absl::DeadlineExceededError("guest test watchdog"));
      }
    });
    REQUIRE(threads.Start().ok());
    StopEvent e = threads.Join();
    done = true;
    watchdog.join();
    stats = threads.TotalStats();
    return e;
  }

  std::vector<Event> Events() {
    std::vector<Event> out;

    std::vector<bool> raw_next(vcpus.size(), false);
    for (const auto& a : t.data_port->Snapshot()) {
      if (!a.write) continue;
      const uint32_t vcpu = static_cast<uint32_t>(a.offset);
      const uint32_t v = static_cast<uint32_t>(a.value);
      if (raw_next[vcpu]) {
        raw_next[vcpu] = false;
        for (auto it = out.rbegin(); it != out.rend(); ++it) {
          if (it->vcpu == vcpu) {
            it->value = v;
            break;
          }
        }
        continue;
      }
      out.push_back({vcpu, v >> 16, v & 0xffff, a.time});
      raw_next[vcpu] = (v >> 16) == EV_VAL32;
    }
    return out;
  }

  testing::TestVm t;
  UserIrqchip chip;
  std::vector<Vcpu> vcpus;
  LinuxBootInfo boot;
  RunLoopStats stats;
};

// "kind:value" per event of `vcpu`, e.g. "int:0x65", "mark:1", "val:0x60".
std::vector<std::string> Trace(const std::vector<Event>& events,
                               uint32_t vcpu) {
  std::vector<std::string> out;
  for (const Event& e : events) {
    if (e.vcpu != vcpu) continue;
    const char* kind = "?";
    switch (e.kind) {
      case EV_INT:
        kind = "int";
        break;
      case EV_NMI:
        kind = "nmi";
        break;
      case EV_GP:
        kind = "gp";
        break;
      case EV_MARK:
        kind = "mark";
        break;
      case EV_VAL32:
        kind = "val";
        break;
      case EV_SIPI_CS:
        kind = "cs";
        break;
      case EV_SIPI_IP:
        kind = "ip";
        break;
    }
    char buf[40];
    std::snprintf(buf, sizeof(buf), e.kind == EV_MARK ? "%s:%u" : "%s:0x%x",
                  kind, e.value);
    out.push_back(buf);
  }
  return out;
}

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

TEST_CASE(
    "user irqchip: the APIC timer fires once, then periodically, at "
    "the programmed count") {
  ApicGuest g(1);
  StopEvent e = g.Run(apic_timer_main);
  INFO(e.status.ToString());
  REQUIRE(e.reason == StopReason::kPowerOff);
  const std::vector<Event> ev = g.Events();
  const auto trace = Trace(ev, 0);
  INFO(::Catch::Detail::stringify(trace));
  // mark 1, TMCCT, int 0x40, TMCCT = 0, mark 2, mark 3 (no second 0x40),
  // mark 4, n >= 5 0x41, TMCCT, mark 5. The guest stops the timer after the
  // fifth tick; one more may come first when the vCPU is kept from running
  // for a whole period (seen in the nested lab under load): the APIC's
  // right, and each tick is still timed below.
  REQUIRE(trace.size() >= 14);
  const int ticks = static_cast<int>(trace.size()) - 9;
  REQUIRE(ticks <= AT_PERIODIC_TICKS + 1);
  CHECK(trace[0] == "mark:1");
  CHECK(ev[1].kind == EV_VAL32);
  const nanoseconds oneshot(uint64_t{AT_ONESHOT_COUNT} * apic::kBusCycleNs);
  // TMCCT right after TMICT: still counting down, unless the vCPU was kept
  // from running for the whole one-shot between the two accesses (two exits;
  // seen in the nested lab under load), and then the read came that late.
  CHECK(ev[1].value <= AT_ONESHOT_COUNT);
  if (ev[1].value == 0) CHECK(ev[1].time - ev[0].time >= oneshot);
  CHECK(trace[2] == "int:0x40");
  CHECK(trace[3] == "val:0x0");
  CHECK(trace[4] == "mark:2");
  CHECK(trace[5] == "mark:3");
  CHECK(trace[6] == "mark:4");
  for (int i = 7; i < 7 + ticks; ++i) CHECK(trace[i] == "int:0x41");
  CHECK(ev[7 + ticks].kind == EV_VAL32);
  CHECK(ev[7 + ticks].value > 0);
  CHECK(ev[7 + ticks].value <= AT_PERIODIC_COUNT);
  CHECK(trace[8 + ticks] == "mark:5");
  // Never early: the one-shot came at least 20 ms after the mark written
  // before TMICT, the k-th periodic tick at least k periods after its mark.
  CHECK(ev[2].time - ev[0].time >= oneshot);
  // No second one-shot while the guest waited twice as long, IF = 1.
  CHECK(ev[5].time - ev[2].time >= 2 * oneshot - milliseconds(1));
  const nanoseconds period(uint64_t{AT_PERIODIC_COUNT} * 16 *
                           apic::kBusCycleNs);
  for (int k = 1; k <= ticks; ++k) {
    INFO("tick " << k);
    CHECK(ev[6 + k].time - ev[6].time >= k * period);
    // And not wildly late (generous: the lab runs nested under emulation).
    CHECK(ev[6 + k].time - ev[6].time <= k * period + std::chrono::seconds(5));
  }
  CHECK(g.chip.stats().timer_interrupts == 1 + static_cast<uint64_t>(ticks));
  CHECK(g.stats.hlt_exits >= 1 + AT_PERIODIC_TICKS);
}

TEST_CASE(
    "user irqchip: INIT+SIPI starts the AP at the vector's page; IPIs "
    "reach it by physical and logical destination") {
  ApicGuest g(2);
  StopEvent e = g.Run(apic_ipi_main, apic_ap_xapic);
  INFO(e.status.ToString());
  REQUIRE(e.reason == StopReason::kPowerOff);
  const std::vector<Event> ev = g.Events();
  INFO("vCPU 0: " << ::Catch::Detail::stringify(Trace(ev, 0)));
  INFO("vCPU 1: " << ::Catch::Detail::stringify(Trace(ev, 1)));
  // CS = vector << 8 (base vector << 12), started at IP 0: the probe ran at
  // its offset in the trampoline.
  char cs[16], ip[16];
  std::snprintf(cs, sizeof(cs), "cs:0x%x", AT_SIPI_VECTOR << 8);
  std::snprintf(
      ip, sizeof(ip), "ip:0x%x",
      static_cast<unsigned>(apic_trampoline_probe - apic_trampoline_start));
  CHECK(Trace(ev, 1) ==
        std::vector<std::string>{cs, ip, "int:0x50", "int:0x51", "int:0x53"});
  // The AP ran nothing before the SIPI: its first event follows the mark
  // vCPU 0 wrote after INIT (and a pause) but before the SIPI.
  size_t mark2 = 0, first_ap = 0;
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].vcpu == 0 && ev[i].kind == EV_MARK && ev[i].value == 2) {
      mark2 = i;
    }
    if (ev[i].vcpu == 1 && first_ap == 0) first_ap = i;
  }
  CHECK(first_ap > mark2);
  CHECK(Trace(ev, 0) ==
        std::vector<std::string>{"mark:1", "mark:2", "mark:3", "mark:4"});
  CHECK(g.stats.interrupts_injected == 3);
  CHECK(g.stats.apic_mmio_exits > 10);
}

TEST_CASE(
    "user irqchip: TPR and CR8 hold back a lower priority class "
    "until lowered") {
  ApicGuest g(1);
  StopEvent e = g.Run(apic_tpr_main);
  INFO(e.status.ToString());
  REQUIRE(e.reason == StopReason::kPowerOff);
  const auto trace = Trace(g.Events(), 0);
  INFO(::Catch::Detail::stringify(trace));
  REQUIRE(trace.size() == 9);
  const std::vector<std::string> head = {"int:0x65", "mark:1",   "int:0x45",
                                         "mark:2",   "val:0x60", "mark:3"};
  CHECK(std::vector<std::string>(trace.begin(), trace.begin() + 6) == head);
  // 0x62 waits for CR8 to drop: on AMD that write does not exit, so it
  // arrives at the next exit (mark 4's), on Intel at KVM_EXIT_SET_TPR.
  const std::vector<std::string> amd = {"mark:4", "int:0x62", "mark:5"};
  const std::vector<std::string> intel = {"int:0x62", "mark:4", "mark:5"};
  const std::vector<std::string> tail(trace.begin() + 6, trace.end());
  CHECK((tail == amd || tail == intel));
}

TEST_CASE(
    "user irqchip: an NMI arrives while IF = 0, a fixed vector waits "
    "for STI") {
  ApicGuest g(1);
  StopEvent e = g.Run(apic_nmi_main);
  INFO(e.status.ToString());
  REQUIRE(e.reason == StopReason::kPowerOff);
  const auto trace = Trace(g.Events(), 0);
  INFO(::Catch::Detail::stringify(trace));
  REQUIRE(trace.size() == 4);
  CHECK(trace[0] == "nmi:0x2");
  CHECK(trace[1] == "mark:1");
  CHECK(g.stats.nmis_injected == 1);
  if (testing::HardwareKvmModule() != nullptr) {
    // STI opens the interrupt window: KVM exits (KVM_EXIT_IRQ_WINDOW_OPEN)
    // and 0x70 runs before the next instruction after the NOP.
    CHECK(trace[2] == "int:0x70");
    CHECK(trace[3] == "mark:2");
    CHECK(g.stats.irq_window_exits >= 1);
  } else {
    // kvm_pvm (the dev VMs) has no interrupt-window exit: 0x70 comes at
    // the next exit, still never while IF = 0.
    CHECK((trace[2] == "int:0x70" || trace[3] == "int:0x70"));
  }
}

TEST_CASE(
    "user irqchip: a level-triggered I/O APIC line is delivered "
    "again only after EOI") {
  ApicGuest g(1);
  StopEvent e = g.Run(apic_level_main);
  INFO(e.status.ToString());
  REQUIRE(e.reason == StopReason::kPowerOff);
  const std::vector<Event> ev = g.Events();
  const auto trace = Trace(ev, 0);
  INFO(::Catch::Detail::stringify(trace));
  REQUIRE(trace.size() == 8);
  CHECK(trace[0] == "int:0x60");
  // RTE: vector 0x60, level, remote IRR (bit 14) set.
  CHECK(ev[1].value == (0x60 | IoApic::kLevelTriggered | IoApic::kRemoteIrr));
  CHECK(trace[2] == "val:0x0");  // not in the IRR again...
  CHECK(trace[3] == "val:0x0");  // ...even after a new assertion
  CHECK(trace[4] == "mark:1");
  CHECK(trace[5] == "int:0x60");  // the EOI re-delivered the high line
  CHECK(trace[6] == "mark:2");
  CHECK(ev[7].value == (0x60 | IoApic::kLevelTriggered));
  CHECK(g.chip.stats().eois_to_ioapic == 2);
  CHECK(g.chip.stats().ioapic_interrupts == 2);
}

TEST_CASE(
    "user irqchip: x2APIC mode sends IPIs and a SELF IPI by MSR; MSRs "
    "KVM refuses come back as #GP") {
  ApicGuest g(2);
  StopEvent e = g.Run(apic_x2apic_main, apic_ap_x2apic);
  INFO(e.status.ToString());
  REQUIRE(e.reason == StopReason::kPowerOff);
  const std::vector<Event> ev = g.Events();
  const auto t0 = Trace(ev, 0), t1 = Trace(ev, 1);
  INFO("vCPU 0: " << ::Catch::Detail::stringify(t0));
  INFO("vCPU 1: " << ::Catch::Detail::stringify(t1));
  REQUIRE(t1.size() == 5);
  CHECK(t1[2] == "val:0x2");  // x2APIC LDR of APIC 1: cluster 0, bit 1
  CHECK(t1[3] == "int:0x57");
  CHECK(t1[4] == "int:0x58");
  CHECK(t0 == std::vector<std::string>{"int:0x59", "val:0x0", "gp:0xd",
                                       "gp:0xd", "mark:1"});
  CHECK(g.chip.routing_table()[0].x2apic);
  CHECK(g.chip.routing_table()[1].x2apic);
  CHECK(g.stats.msr_exits >= 10);
  CHECK(g.stats.apic_mmio_exits == 0);
}

}  // namespace
}  // namespace ssihv::kvm
