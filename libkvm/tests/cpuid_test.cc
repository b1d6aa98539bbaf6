#include "ssihv/kvm/cpuid.h"

#include <catch2/catch.hpp>
#include <cstring>

namespace ssihv::kvm {
namespace {

kvm_cpuid_entry2 Leaf(uint32_t fn, uint32_t idx, uint32_t a, uint32_t b,
                      uint32_t c, uint32_t d, bool indexed = false) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.index = idx;
  e.flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  e.eax = a;
  e.ebx = b;
  e.ecx = c;
  e.edx = d;
  return e;
}

kvm_cpuid_entry2 VendorLeaf(const char* vendor, uint32_t max_leaf) {
  uint32_t r[3];
  std::memcpy(r, vendor, 12);
  return Leaf(0, 0, max_leaf, r[0], r[2], r[1]);  // EBX, ECX, EDX = 0, 2, 1
}

// What KVM_GET_SUPPORTED_CPUID looks like on an Intel host with SMT and 8
// cores per package (host topology that must not leak into the guest).
std::vector<kvm_cpuid_entry2> IntelHost() {
  return {
      VendorLeaf("GenuineIntel", 0x1f),
      Leaf(1, 0, 0x806f8, 0x00100800, 0x7ffefbff, 0xbfebfbff),
      Leaf(4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0, true),
      Leaf(4, 1, 0x1c004122, 0x01c0003f, 0x3f, 0, true),
      Leaf(4, 2, 0x1c03c163, 0x03c0003f, 0x7ff, 0, true),
      Leaf(0xb, 0, 1, 2, 0x100, 7, true),
      Leaf(0xb, 1, 4, 16, 0x201, 7, true),
      Leaf(0x1f, 0, 1, 2, 0x100, 7, true),
      Leaf(0x1f, 1, 4, 16, 0x201, 7, true),
      Leaf(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
      Leaf(0x80000008, 0, 0x3030, 0, 0, 0),
  };
}

std::vector<kvm_cpuid_entry2> AmdHost() {
  return {
      VendorLeaf("AuthenticAMD", 0x10),
      Leaf(1, 0, 0xa00f11, 0x00100800, 0x7ed8320b, 0x178bfbff),
      Leaf(0x80000001, 0, 0xa00f11, 0, 0x75c237ff | (1u << 22), 0x2fd3fbff),
      Leaf(0x80000008, 0, 0x3030, 0, 0x700f, 0),
      Leaf(0x8000001d, 0, 0x00004121, 0x01c0003f, 0x3f, 0, true),
      Leaf(0x8000001d, 3, 0x0003c163, 0x03c0003f, 0x7fff, 1, true),
      Leaf(0x8000001e, 0, 0, 0, 0, 0),
  };
}

TEST_CASE("vendor detection") {
  CHECK(VendorOf(IntelHost()) == CpuVendor::kIntel);
  CHECK(VendorOf(AmdHost()) == CpuVendor::kAmd);
  CHECK(VendorOf({}) == CpuVendor::kOther);
  CHECK(std::string(CpuVendorName(CpuVendor::kAmd)) == "AMD");
}

TEST_CASE("leaf 1 carries the vCPU's APIC ID and one logical CPU") {
  auto leaves = CpuidForVcpu(IntelHost(), {.apic_id = 5, .node = 1});
  const kvm_cpuid_entry2* l1 = FindCpuid(leaves, 1);
  REQUIRE(l1 != nullptr);
  CHECK((l1->ebx >> 24) == 5);
  CHECK(((l1->ebx >> 16) & 0xff) == 1);
  CHECK((l1->ebx & 0xffff) == 0x0800);  // CLFLUSH size kept
  CHECK((l1->edx & (1u << 28)) == 0);   // no HTT
  CHECK((l1->ecx & (1u << 31)) != 0);   // hypervisor
  // Other leaves untouched.
  const kvm_cpuid_entry2* kvm = FindCpuid(leaves, 0x40000000);
  REQUIRE(kvm != nullptr);
  CHECK(kvm->ebx == 0x4b4d564b);
}

TEST_CASE("extended topology leaves: x2APIC ID everywhere, width 0") {
  for (uint32_t fn : {0xbu, 0x1fu}) {
    auto leaves = CpuidForVcpu(IntelHost(), {.apic_id = 300, .node = 2});
    const kvm_cpuid_entry2* smt = FindCpuid(leaves, fn, 0);
    const kvm_cpuid_entry2* core = FindCpuid(leaves, fn, 1);
    const kvm_cpuid_entry2* end = FindCpuid(leaves, fn, 2);
    REQUIRE(smt != nullptr);
    REQUIRE(core != nullptr);
    REQUIRE(end != nullptr);
    CHECK(smt->eax == 0);
    CHECK(smt->ebx == 1);
    CHECK(smt->ecx == 0x100);
    CHECK(core->eax == 0);
    CHECK(core->ebx == 1);
    CHECK(core->ecx == 0x201);
    CHECK(end->ebx == 0);
    CHECK(((end->ecx >> 8) & 0xff) == 0);  // invalid level terminates
    for (auto* e : {smt, core, end}) {
      CHECK(e->edx == 300);
      CHECK((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX));
    }
    // 8-bit initial APIC ID in leaf 1 wraps; the 32-bit one is exact.
    CHECK((FindCpuid(leaves, 1)->ebx >> 24) == (300 & 0xff));
    int count = 0;
    for (const auto& e : leaves) count += e.function == fn;
    CHECK(count == 3);
  }
}

TEST_CASE("Intel cache leaves share no cache between vCPUs") {
  auto leaves = CpuidForVcpu(IntelHost(), {.apic_id = 1, .node = 0});
  for (uint32_t sub = 0; sub < 3; ++sub) {
    const kvm_cpuid_entry2* l4 = FindCpuid(leaves, 4, sub);
    REQUIRE(l4 != nullptr);
    CHECK((l4->eax >> 26) == 0);
    CHECK(((l4->eax >> 14) & 0xfff) == 0);
    CHECK((l4->eax & 0x3fff) == (IntelHost()[2 + sub].eax & 0x3fff));
  }
  // 0x80000008 ECX is reserved on Intel: untouched.
  CHECK(FindCpuid(leaves, 0x80000008)->eax == 0x3030);
}

TEST_CASE("AMD topology leaves carry APIC ID and NUMA node") {
  auto leaves = CpuidForVcpu(AmdHost(), {.apic_id = 3, .node = 1});
  const kvm_cpuid_entry2* ext = FindCpuid(leaves, 0x80000001);
  CHECK((ext->ecx & 2) == 0);           // CmpLegacy off
  CHECK((ext->ecx & (1u << 22)) != 0);  // TOPOEXT kept
  const kvm_cpuid_entry2* sizes = FindCpuid(leaves, 0x80000008);
  CHECK((sizes->ecx & 0xff) == 0);
  CHECK(((sizes->ecx >> 12) & 0xf) == 0);
  CHECK(sizes->eax == 0x3030);
  const kvm_cpuid_entry2* topo = FindCpuid(leaves, 0x8000001e);
  CHECK(topo->eax == 3);
  CHECK(topo->ebx == 0);
  CHECK(topo->ecx == 1);
  for (uint32_t sub : {0u, 3u}) {
    const kvm_cpuid_entry2* cache = FindCpuid(leaves, 0x8000001d, sub);
    REQUIRE(cache != nullptr);
    CHECK(((cache->eax >> 14) & 0xfff) == 0);
  }
  // Leaf 4 is not AMD's: untouched if present.
  CHECK((FindCpuid(leaves, 1)->ebx >> 24) == 3);
}

// KVM's PV feature leaf as a 6.1 host reports it: clocksource(2), async PF,
// steal time, PV EOI, PV unhalt, PV TLB flush, async PF VM exit, PV send-IPI,
// poll control, PV sched yield, async PF int, MSI ext dest ID, ...
constexpr uint32_t kKvmHostFeatures = 0x0101fefb;

TEST_CASE(
    "user irqchip: x2APIC, no TSC deadline, no PV features on KVM's LAPIC") {
  auto host = IntelHost();
  host[1].ecx |= 1u << 24;  // TSC deadline, as a host might report it
  host[1].ecx &= ~(1u << 21);
  host.push_back(Leaf(0x40000001, 0, kKvmHostFeatures, 0, 0, 0));
  auto kernel = CpuidForVcpu(host, {.apic_id = 2, .node = 0});
  CHECK(FindCpuid(kernel, 0x40000001)->eax == kKvmHostFeatures);
  CHECK((FindCpuid(kernel, 1)->ecx & (1u << 24)) != 0);
  auto user = CpuidForVcpu(host, {.apic_id = 2, .node = 0}, true);
  const uint32_t l1_ecx = FindCpuid(user, 1)->ecx;
  CHECK((l1_ecx & (1u << 21)) != 0);  // x2APIC
  CHECK((l1_ecx & (1u << 24)) == 0);  // TSC deadline
  const uint32_t kvm = FindCpuid(user, 0x40000001)->eax;
  for (int bit : {4, 6, 7, 10, 11, 14}) {
    INFO("KVM feature bit " << bit);
    CHECK((kvm & (1u << bit)) == 0);
  }
  CHECK((kvm & (1u << 15)) != 0);  // MSI_EXT_DEST_ID
  // What has no LAPIC dependency stays: kvmclock, steal time, TLB flush.
  for (int bit : {0, 3, 5, 9, 24}) {
    INFO("KVM feature bit " << bit);
    CHECK((kvm & (1u << bit)) == (kKvmHostFeatures & (1u << bit)));
  }
}

TEST_CASE(
    "user irqchip: leaf 0xB carries the x2APIC ID even on a host without it") {
  auto leaves = CpuidForVcpu(AmdHost(), {.apic_id = 260, .node = 1}, true);
  CHECK(FindCpuid(leaves, 0)->eax == 0x10);  // already above 0xB
  const kvm_cpuid_entry2* smt = FindCpuid(leaves, 0xb, 0);
  REQUIRE(smt != nullptr);
  CHECK(smt->edx == 260);
  auto old_host = AmdHost();
  old_host[0].eax = 0x7;  // an old CPU: basic leaves up to 7
  leaves = CpuidForVcpu(old_host, {.apic_id = 1, .node = 0}, true);
  CHECK(FindCpuid(leaves, 0)->eax == 0xb);
  CHECK(FindCpuid(CpuidForVcpu(AmdHost(), {.apic_id = 1, .node = 0}), 0xb) ==
        nullptr);
}

}  // namespace
}  // namespace ssihv::kvm
