#include "ssihv/acpi/srat.h"

#include <cassert>

#include "ssihv/acpi/madt.h"
#include "ssihv/cluster/layout.h"

namespace ssihv::acpi {
namespace {

void AppendLocalApicAffinity(ByteBuilder& b, uint32_t domain, uint8_t apic_id) {
  [[maybe_unused]] const size_t start = b.size();
  b.U8(srat_type::kLocalApicAffinity);      // Type
  b.U8(kSratLocalApicSize);                 // Length
  b.U8(static_cast<uint8_t>(domain));       // Proximity Domain [7:0]
  b.U8(apic_id);                            // APIC ID
  b.U32(kSratEnabled);                      // Flags
  b.U8(0);                                  // Local SAPIC EID
  b.U8(static_cast<uint8_t>(domain >> 8));  // Proximity Domain [31:8]
  b.U8(static_cast<uint8_t>(domain >> 16));
  b.U8(static_cast<uint8_t>(domain >> 24));
  b.U32(0);  // Clock Domain
  assert(b.size() - start == kSratLocalApicSize);
}

void AppendX2ApicAffinity(ByteBuilder& b, uint32_t domain, uint32_t x2apic_id) {
  [[maybe_unused]] const size_t start = b.size();
  b.U8(srat_type::kX2ApicAffinity);  // Type
  b.U8(kSratX2ApicSize);             // Length
  b.U16(0);                          // Reserved
  b.U32(domain);                     // Proximity Domain
  b.U32(x2apic_id);                  // X2APIC ID
  b.U32(kSratEnabled);               // Flags
  b.U32(0);                          // Clock Domain
  b.U32(0);                          // Reserved
  assert(b.size() - start == kSratX2ApicSize);
}

void AppendMemoryAffinity(ByteBuilder& b, uint32_t domain, uint64_t base,
                          uint64_t length, uint32_t flags) {
  [[maybe_unused]] const size_t start = b.size();
  b.U8(srat_type::kMemoryAffinity);  // Type
  b.U8(kSratMemorySize);             // Length
  b.U32(domain);                     // Proximity Domain
  b.U16(0);                          // Reserved
  b.U64(base);                       // Base Address Low, High
  b.U64(length);                     // Length Low, High
  b.U32(0);                          // Reserved
  b.U32(flags);                      // Flags: enabled, hot-pluggable or
                                     // not, never non-volatile
  b.U64(0);                          // Reserved
  assert(b.size() - start == kSratMemorySize);
}

}  // namespace

Bytes BuildSrat(const cluster::ClusterConfig& config, const OemInfo& oem,
                const SratOptions& options) {
  const cluster::GuestLayout layout(config);
  ByteBuilder b;
  size_t start = BeginSdt(b, "SRAT", kSratRevision, oem);
  b.U32(1);  // Reserved, 1 for backward compatibility
  b.U64(0);  // Reserved
  for (uint32_t vcpu = 0; vcpu < layout.total_vcpus(); ++vcpu) {
    const uint32_t domain = layout.NodeOfVcpu(vcpu);
    if (vcpu < kFirstX2ApicId) {
      AppendLocalApicAffinity(b, domain, static_cast<uint8_t>(vcpu));
    } else {
      AppendX2ApicAffinity(b, domain, vcpu);
    }
  }
  for (uint32_t node = 0; node < config.num_nodes(); ++node) {
    uint32_t flags = kSratEnabled;
    if (node != 0 && options.remote_nodes_hot_pluggable) {
      flags |= kSratMemoryHotPluggable;
    }
    for (const cluster::GpaRange& r : layout.RangesOfNode(node)) {
      AppendMemoryAffinity(b, node, r.gpa, r.size, flags);
    }
  }
  FinishSdt(b, start);
  return std::move(b).Take();
}

}  // namespace ssihv::acpi
