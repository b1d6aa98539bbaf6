#include "ssihv/kvm/cpuid.h"

#include <algorithm>
#include <cstring>

namespace ssihv::kvm {
namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheParams = 0x4;
constexpr uint32_t kLeafExtTopology = 0xb;
constexpr uint32_t kLeafExtTopologyV2 = 0x1f;
constexpr uint32_t kLeafAmdFeatures = 0x80000001;
constexpr uint32_t kLeafAmdSizes = 0x80000008;
constexpr uint32_t kLeafAmdCacheTopology = 0x8000001d;
constexpr uint32_t kLeafAmdTopology = 0x8000001e;

constexpr uint32_t kLeafKvmFeatures = 0x40000001;

constexpr uint32_t kEdxHtt = 1u << 28;
constexpr uint32_t kEcxX2apic = 1u << 21;
constexpr uint32_t kEcxTscDeadline = 1u << 24;
// KVM_FEATURE_* bits of leaf 0x40000001 EAX (Documentation/virt/kvm/x86/
// cpuid.rst) that need KVM's own LAPIC.
constexpr uint32_t kKvmFeaturesNeedingLapic = (1u << 4) |   // ASYNC_PF
                                              (1u << 6) |   // PV_EOI
                                              (1u << 7) |   // PV_UNHALT
                                              (1u << 10) |  // ASYNC_PF_VMEXIT
                                              (1u << 11) |  // PV_SEND_IPI
                                              (1u << 14);   // ASYNC_PF_INT
constexpr uint32_t kKvmFeatureMsiExtDestId = 1u << 15;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEcxCmpLegacy = 1u << 1;

// Extended topology level types (ECX[15:8] of leaves 0xB / 0x1F).
constexpr uint32_t kLevelInvalid = 0;
constexpr uint32_t kLevelSmt = 1;
constexpr uint32_t kLevelCore = 2;

void SetBits(uint32_t* reg, int lo, int width, uint32_t value) {
  uint32_t mask = (width == 32 ? ~0u : ((1u << width) - 1)) << lo;
  *reg = (*reg & ~mask) | ((value << lo) & mask);
}

// Leaves 0xB/0x1F, subleaf by subleaf: SMT (shift 0, one thread), core
// (shift 0, one core), then the terminating invalid level.
void AppendExtendedTopology(uint32_t function, uint32_t apic_id,
                            std::vector<kvm_cpuid_entry2>* out) {
  const uint32_t types[] = {kLevelSmt, kLevelCore, kLevelInvalid};
  for (uint32_t sub = 0; sub < 3; ++sub) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = sub;
    e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.eax = 0;                                    // APIC ID shift to next level
    e.ebx = types[sub] == kLevelInvalid ? 0 : 1;  // logical CPUs at level
    e.ecx = (types[sub] << 8) | sub;
    e.edx = apic_id;
    out->push_back(e);
  }
}

void AdjustLeaf(CpuVendor vendor, const VcpuTopology& topo,
                kvm_cpuid_entry2* e) {
  switch (e->function) {
    case kLeafFeatures:
      SetBits(&e->ebx, 24, 8, topo.apic_id & 0xff);
      SetBits(&e->ebx, 16, 8, 1);
      e->edx &= ~kEdxHtt;
      e->ecx |= kEcxHypervisor;
      break;
    case kLeafCacheParams:
      if (vendor != CpuVendor::kAmd) {
        SetBits(&e->eax, 26, 6, 0);   // cores per package - 1
        SetBits(&e->eax, 14, 12, 0);  // logical CPUs sharing - 1
      }
      break;
    case kLeafAmdFeatures:
      if (vendor == CpuVendor::kAmd) e->ecx &= ~kEcxCmpLegacy;
      break;
    case kLeafAmdSizes:
      if (vendor == CpuVendor::kAmd) {
        SetBits(&e->ecx, 0, 8, 0);   // NC: cores per package - 1
        SetBits(&e->ecx, 12, 4, 0);  // ApicIdCoreIdSize: derive from NC
      }
      break;
    case kLeafAmdCacheTopology:
      SetBits(&e->eax, 14, 12, 0);  // logical CPUs sharing - 1
      break;
    case kLeafAmdTopology:
      e->eax = topo.apic_id;      // extended APIC ID
      e->ebx = 0;                 // core 0, one thread per core
      e->ecx = topo.node & 0xff;  // node ID, one node per processor
      e->edx = 0;
      break;
    default:
      break;
  }
}

void AdjustForUserIrqchip(kvm_cpuid_entry2* e) {
  switch (e->function) {
    case 0:
      e->eax = std::max(e->eax, kLeafExtTopology);
      break;
    case kLeafFeatures:
      e->ecx = (e->ecx | kEcxX2apic) & ~kEcxTscDeadline;
      break;
    case kLeafKvmFeatures:
      e->eax = (e->eax & ~kKvmFeaturesNeedingLapic) | kKvmFeatureMsiExtDestId;
      break;
    default:
      break;
  }
}

}  // namespace

CpuVendor VendorOf(const std::vector<kvm_cpuid_entry2>& leaves) {
  const kvm_cpuid_entry2* leaf0 = FindCpuid(leaves, 0);
  if (leaf0 == nullptr) return CpuVendor::kOther;
  char vendor[13] = {};
  std::memcpy(vendor, &leaf0->ebx, 4);
  std::memcpy(vendor + 4, &leaf0->edx, 4);
  std::memcpy(vendor + 8, &leaf0->ecx, 4);
  if (std::strcmp(vendor, "GenuineIntel") == 0) return CpuVendor::kIntel;
  if (std::strcmp(vendor, "AuthenticAMD") == 0 ||
      std::strcmp(vendor, "HygonGenuine") == 0) {
    return CpuVendor::kAmd;
  }
  return CpuVendor::kOther;
}

const char* CpuVendorName(CpuVendor vendor) {
  switch (vendor) {
    case CpuVendor::kIntel:
      return "Intel";
    case CpuVendor::kAmd:
      return "AMD";
    case CpuVendor::kOther:
      break;
  }
  return "other";
}

const kvm_cpuid_entry2* FindCpuid(const std::vector<kvm_cpuid_entry2>& leaves,
                                  uint32_t function, uint32_t index) {
  for (const kvm_cpuid_entry2& e : leaves) {
    if (e.function != function) continue;
    if ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e.index != index) {
      continue;
    }
    return &e;
  }
  return nullptr;
}

std::vector<kvm_cpuid_entry2> CpuidForVcpu(
    const std::vector<kvm_cpuid_entry2>& supported, const VcpuTopology& topo,
    bool user_irqchip) {
  const CpuVendor vendor = VendorOf(supported);
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(supported.size() + 6);
  bool has_0b = false, has_1f = false;
  for (kvm_cpuid_entry2 e : supported) {
    // The extended topology leaves are rebuilt whole below.
    if (e.function == kLeafExtTopology) {
      has_0b = true;
      continue;
    }
    if (e.function == kLeafExtTopologyV2) {
      has_1f = true;
      continue;
    }
    AdjustLeaf(vendor, topo, &e);
    if (user_irqchip) AdjustForUserIrqchip(&e);
    out.push_back(e);
  }
  if (has_0b || user_irqchip) {
    AppendExtendedTopology(kLeafExtTopology, topo.apic_id, &out);
  }
  if (has_1f) AppendExtendedTopology(kLeafExtTopologyV2, topo.apic_id, &out);
  return out;
}

}  // namespace ssihv::kvm
