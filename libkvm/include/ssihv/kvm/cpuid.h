// Per-vCPU CPUID: KVM_GET_SUPPORTED_CPUID with the APIC ID and topology leaves
// rewritten so the guest sees what the cluster config says. Pure functions
// (no KVM) so the adjustments are unit-tested on synthetic leaf sets.
//
// Topology model: every vCPU is its own package with one core and one thread
// (APIC ID = global vCPU index, as the SRAT says). NUMA placement comes only
// from SRAT, so no cache or package is ever shared across two NUMA nodes
// (which Linux would warn about and mis-schedule).
#ifndef SSIHV_KVM_CPUID_H_
#define SSIHV_KVM_CPUID_H_

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace ssihv::kvm {

enum class CpuVendor { kIntel, kAmd, kOther };

/// From leaf 0's vendor string ("GenuineIntel", "AuthenticAMD"/"HygonGenuine").
CpuVendor VendorOf(const std::vector<kvm_cpuid_entry2>& leaves);
const char* CpuVendorName(CpuVendor vendor);

struct VcpuTopology {
  uint32_t apic_id = 0;  // = global vCPU index
  uint32_t node = 0;     // NUMA node (cluster node id)
};

/// The leaf set for one vCPU:
///  - leaf 1: EBX[31:24] initial APIC ID, EBX[23:16] = 1 logical processor,
///    EDX.HTT cleared, ECX.hypervisor set;
///  - leaf 4 / 0x8000001D (cache parameters): no cache shared between vCPUs;
///  - leaves 0xB and 0x1F (extended topology): SMT and core levels of width
///    0, EDX = x2APIC ID on every subleaf;
///  - AMD: 0x80000001 ECX.CmpLegacy cleared, 0x80000008 ECX core count 1,
///    0x8000001E EAX extended APIC ID, EBX one thread per core, ECX node ID.
/// With `user_irqchip` (the APICs are the VMM's, not KVM's), also:
///  - leaf 1 ECX: x2APIC on, TSC-deadline off (KVM drops
///    IA32_TSC_DEADLINE writes without its own LAPIC);
///  - leaf 0xB present (the x2APIC ID of vCPUs past 255), leaf 0 raised
///    to reach it;
///  - KVM leaf 0x40000001 EAX: no PV EOI, PV unhalt, PV send-IPI or async
///    page faults (each needs KVM's LAPIC: KVM would refuse their MSRs or
///    drop their kicks), and KVM_FEATURE_MSI_EXT_DEST_ID, so Linux
///    addresses APIC IDs above 255 without interrupt remapping.
std::vector<kvm_cpuid_entry2> CpuidForVcpu(
    const std::vector<kvm_cpuid_entry2>& supported, const VcpuTopology& topo,
    bool user_irqchip = false);

/// The entry for (function, index), or nullptr. Index matters only for
/// leaves flagged KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
const kvm_cpuid_entry2* FindCpuid(const std::vector<kvm_cpuid_entry2>& leaves,
                                  uint32_t function, uint32_t index = 0);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_CPUID_H_
