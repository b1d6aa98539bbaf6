#include "ssihv/kvm/x86_vcpu.h"

#include <cstring>

#include "ssihv/base/status_macros.h"

namespace ssihv::kvm {
namespace {

constexpr uint64_t kCr0Pe = 1ull << 0;
constexpr uint64_t kCr0Et = 1ull << 4;
constexpr uint64_t kCr0Nw = 1ull << 29;
constexpr uint64_t kCr0Cd = 1ull << 30;
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;

// Local APIC register offsets and LVT delivery modes (SDM vol. 3, 11.5.1).
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kApicDeliveryModeMask = 0x700;
constexpr uint32_t kApicModeNmi = 0x400;
constexpr uint32_t kApicModeExtInt = 0x700;

kvm_segment FlatSegment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = code ? 0 : 1;  // a 64-bit code segment must have D=0
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}

uint32_t ReadApicReg(const kvm_lapic_state& lapic, size_t off) {
  uint32_t v;
  std::memcpy(&v, lapic.regs + off, sizeof(v));
  return v;
}

void WriteApicReg(kvm_lapic_state* lapic, size_t off, uint32_t v) {
  std::memcpy(lapic->regs + off, &v, sizeof(v));
}

}  // namespace

kvm_sregs LongModeSregs(kvm_sregs s, const LinuxBootInfo& info) {
  s.gdt.base = info.gdt;
  s.gdt.limit = static_cast<uint16_t>(info.gdt_limit);
  s.idt.base = 0;
  s.idt.limit = 0;
  s.cs =
      FlatSegment(kBootCsSelector, 0xb, /*code=*/true);  // exec/read, accessed
  kvm_segment data = FlatSegment(kBootDsSelector, 0x3, /*code=*/false);
  s.ds = s.es = s.fs = s.gs = s.ss = data;
  s.tr = FlatSegment(kBootTssSelector, 0xb, false);  // busy 64-bit TSS
  s.tr.s = 0;
  s.tr.limit = 0x67;
  s.tr.g = 0;
  s.tr.db = 0;
  s.cr3 = info.page_tables;
  s.cr4 |= kCr4Pae;
  // Caches on (KVM resets with CD|NW set, as the hardware does).
  s.cr0 = (s.cr0 & ~(kCr0Cd | kCr0Nw)) | kCr0Pe | kCr0Et | kCr0Pg;
  s.efer |= kEferLme | kEferLma;
  return s;
}

kvm_regs LongModeBootRegs(const LinuxBootInfo& info) {
  kvm_regs r{};
  r.rflags = 0x2;  // bit 1 is reserved-one; IF clear
  r.rip = info.entry;
  r.rsi = info.boot_params;
  r.rsp = kBootStackTop;
  r.rbp = kBootStackTop;
  return r;
}

// IA32_TSC is left alone: KVM starts every vCPU's TSC in sync, while writing
// it per vCPU at different times (slow in a nested lab) makes Linux mark the
// TSC unstable.
std::vector<Msr> InitialMsrs() {
  return {
      {kMsrIa32SysenterCs, 0},
      {kMsrIa32SysenterEsp, 0},
      {kMsrIa32SysenterEip, 0},
      {kMsrStar, 0},
      {kMsrCstar, 0},
      {kMsrKernelGsBase, 0},
      {kMsrSyscallMask, 0},
      {kMsrLstar, 0},
      {kMsrIa32MiscEnable, 1},            // fast string operations
      {kMsrMtrrDefType, (1u << 11) | 6},  // MTRRs on, default write-back
  };
}

void SetLintVirtualWire(kvm_lapic_state* lapic) {
  uint32_t lint0 = ReadApicReg(*lapic, kApicLvtLint0);
  uint32_t lint1 = ReadApicReg(*lapic, kApicLvtLint1);
  WriteApicReg(lapic, kApicLvtLint0,
               (lint0 & ~kApicDeliveryModeMask) | kApicModeExtInt);
  WriteApicReg(lapic, kApicLvtLint1,
               (lint1 & ~kApicDeliveryModeMask) | kApicModeNmi);
}

namespace {

kvm_fpu InitialFpu() {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  return fpu;
}

}  // namespace

absl::Status ConfigureX86Vcpu(const Vcpu& vcpu,
                              const std::vector<kvm_cpuid_entry2>& supported,
                              const VcpuTopology& topology,
                              IrqchipKind irqchip) {
  SSIHV_RETURN_IF_ERROR(vcpu.SetCpuid(
      CpuidForVcpu(supported, topology, irqchip == IrqchipKind::kUser)));
  SSIHV_RETURN_IF_ERROR(vcpu.SetMsrs(InitialMsrs()));
  if (irqchip == IrqchipKind::kKernel) {
    SSIHV_ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
    SetLintVirtualWire(&lapic);
    SSIHV_RETURN_IF_ERROR(vcpu.SetLapic(lapic));
  }
  return vcpu.SetFpu(InitialFpu());
}

kvm_sregs InitSregs(kvm_sregs s) {
  auto real_mode = [](uint16_t selector, uint64_t base, uint8_t type) {
    kvm_segment seg{};
    seg.selector = selector;
    seg.base = base;
    seg.limit = 0xffff;
    seg.type = type;
    seg.present = 1;
    seg.s = 1;
    return seg;
  };
  s.cs = real_mode(0xf000, 0xffff0000, 0xb);  // code, read, accessed
  s.ds = s.es = s.fs = s.gs = s.ss = real_mode(0, 0, 0x3);  // data, rw, acc.
  s.ldt = real_mode(0, 0, 0x2);
  s.ldt.s = 0;
  s.tr = real_mode(0, 0, 0xb);  // busy TSS
  s.tr.s = 0;
  s.gdt = {0, 0xffff, {}};
  s.idt = {0, 0xffff, {}};
  // INIT keeps CD and NW (SDM Table 10-1); ET is hardwired.
  s.cr0 = (s.cr0 & (kCr0Cd | kCr0Nw)) | kCr0Et;
  s.cr2 = s.cr3 = s.cr4 = 0;
  s.cr8 = 0;
  s.efer = 0;
  std::memset(s.interrupt_bitmap, 0, sizeof(s.interrupt_bitmap));
  return s;
}

kvm_regs InitRegs() {
  kvm_regs r{};
  r.rflags = 0x2;
  r.rip = 0xfff0;
  r.rdx = 0x600;
  return r;
}

kvm_sregs SipiSregs(kvm_sregs s, uint8_t vector) {
  s.cs.selector = static_cast<uint16_t>(vector << 8);
  s.cs.base = uint64_t{vector} << 12;
  return s;
}

absl::Status ResetVcpuForInit(const Vcpu& vcpu) {
  SSIHV_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  SSIHV_RETURN_IF_ERROR(vcpu.SetSregs(InitSregs(sregs)));
  SSIHV_RETURN_IF_ERROR(vcpu.SetRegs(InitRegs()));
  SSIHV_RETURN_IF_ERROR(vcpu.SetFpu(InitialFpu()));
  return vcpu.ClearPendingEvents();
}

absl::Status StartVcpuAtSipi(const Vcpu& vcpu, uint8_t vector) {
  SSIHV_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  SSIHV_RETURN_IF_ERROR(vcpu.SetSregs(SipiSregs(sregs, vector)));
  SSIHV_ASSIGN_OR_RETURN(kvm_regs regs, vcpu.GetRegs());
  regs.rip = 0;
  return vcpu.SetRegs(regs);
}

absl::Status SetupLinuxBootVcpu(const Vcpu& vcpu, const LinuxBootInfo& info) {
  SSIHV_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  SSIHV_RETURN_IF_ERROR(vcpu.SetSregs(LongModeSregs(sregs, info)));
  return vcpu.SetRegs(LongModeBootRegs(info));
}

}  // namespace ssihv::kvm
