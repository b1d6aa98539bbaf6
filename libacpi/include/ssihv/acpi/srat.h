// SRAT, the System Resource Affinity Table (ACPI 6.5 §5.2.16), revision 3:
// which proximity domain (= cluster node id) each vCPU and each guest RAM
// range belongs to.
#ifndef SSIHV_ACPI_SRAT_H_
#define SSIHV_ACPI_SRAT_H_

#include <cstdint>

#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fields.h"
#include "ssihv/acpi/sdt.h"
#include "ssihv/cluster/config.h"

namespace ssihv::acpi {

inline constexpr uint8_t kSratRevision = 3;

/// ACPI 6.5 §5.2.16, SRAT format: the header then 12 reserved bytes, the
/// first 4 of which "must be set to 1 for backward compatibility".
inline constexpr Field kSratFields[] = {
    {"Header", 36, FieldFormat::kBytes},
    {"Table Revision", 4},
    {"Reserved", 8},
};
inline constexpr size_t kSratFixedSize = 48;
static_assert(FieldsSize(kSratFields) == kSratFixedSize);

/// ACPI 6.5 §5.2.16.1, Processor Local APIC/SAPIC Affinity Structure (type 0).
inline constexpr Field kSratLocalApicFields[] = {
    {"Subtable Type", 1},
    {"Length", 1},
    {"Proximity Domain Low(8)", 1},
    {"Apic ID", 1},
    {"Flags", 4},
    {"Local Sapic EID", 1},
    {"Proximity Domain High(24)", 3},
    {"Clock Domain", 4},
};
inline constexpr size_t kSratLocalApicSize = 16;
static_assert(FieldsSize(kSratLocalApicFields) == kSratLocalApicSize);

/// ACPI 6.5 §5.2.16.2, Memory Affinity Structure (type 1).
inline constexpr Field kSratMemoryFields[] = {
    {"Subtable Type", 1}, {"Length", 1},       {"Proximity Domain", 4},
    {"Reserved1", 2},     {"Base Address", 8}, {"Address Length", 8},
    {"Reserved2", 4},     {"Flags", 4},        {"Reserved3", 8},
};
inline constexpr size_t kSratMemorySize = 40;
static_assert(FieldsSize(kSratMemoryFields) == kSratMemorySize);

/// ACPI 6.5 §5.2.16.3, Processor Local x2APIC Affinity Structure (type 2).
inline constexpr Field kSratX2ApicFields[] = {
    {"Subtable Type", 1},    {"Length", 1},    {"Reserved1", 2},
    {"Proximity Domain", 4}, {"Apic ID", 4},   {"Flags", 4},
    {"Clock Domain", 4},     {"Reserved2", 4},
};
inline constexpr size_t kSratX2ApicSize = 24;
static_assert(FieldsSize(kSratX2ApicFields) == kSratX2ApicSize);

namespace srat_type {
inline constexpr uint8_t kLocalApicAffinity = 0;
inline constexpr uint8_t kMemoryAffinity = 1;
inline constexpr uint8_t kX2ApicAffinity = 2;
}  // namespace srat_type

/// Flags bit 0 "Enabled" (processor and memory affinity alike).
inline constexpr uint32_t kSratEnabled = 1u << 0;
/// Memory affinity flags bit 1 "Hot Pluggable".
inline constexpr uint32_t kSratMemoryHotPluggable = 1u << 1;

struct SratOptions {
  /// Marks the memory of every node but node 0 hot-pluggable. For a guest
  /// whose nodes are separate processes (docs/VMM.md, "Where the kernel
  /// lands"): such memory can go away with its node, and Linux's boot
  /// decompressor places the kernel only in memory not marked so (physical
  /// KASLR picks among the SRAT's immovable ranges), that is in node 0's,
  /// where the boot CPU writes the kernel's hottest data at every tick.
  bool remote_nodes_hot_pluggable = false;
};

/// Builds the SRAT of a valid config: per vCPU (global index = APIC ID, in
/// node-id order) a local APIC affinity structure for IDs < 255 and an
/// x2APIC one from 255 on; then per node, per GPA range of
/// cluster::GuestLayout (two when the 3 GiB hole splits it), a memory
/// affinity structure. Proximity domain = node id; everything enabled, and
/// hot-pluggable as `options` says.
Bytes BuildSrat(const cluster::ClusterConfig& config, const OemInfo& oem,
                const SratOptions& options = {});

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_SRAT_H_
