// HMAT, the Heterogeneous Memory Attribute Table, revision 2 (introduced by
// ACPI 6.3 §5.2.27; ACPI 6.4 added the Minimum Transfer Size byte and flag
// bits 4-5 of the locality structure, which ssihv leaves zero): one Memory
// Proximity Domain Attributes structure per memory node, and two System
// Locality Latency and Bandwidth Information structures (access latency, access
// bandwidth) whose matrix is every initiator node (a node with vCPUs) x every
// memory node.
#ifndef SSIHV_ACPI_HMAT_H_
#define SSIHV_ACPI_HMAT_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fields.h"
#include "ssihv/acpi/sdt.h"
#include "ssihv/cluster/config.h"

namespace ssihv::acpi {

inline constexpr uint8_t kHmatRevision = 2;

/// ACPI 6.3 §5.2.27, HMAT table format: header then 4 reserved bytes.
inline constexpr Field kHmatFields[] = {
    {"Header", 36, FieldFormat::kBytes},
    {"Reserved", 4},
};
inline constexpr size_t kHmatFixedSize = 40;
static_assert(FieldsSize(kHmatFields) == kHmatFixedSize);

/// ACPI 6.3 §5.2.27.3, Table 5-145: Memory Proximity Domain Attributes
/// Structure (type 0).
/// The two trailing 8-byte fields were the address range of ACPI 6.2; they
/// are reserved since revision 2.
inline constexpr Field kHmatProximityFields[] = {
    {"Structure Type", 2},
    {"Reserved", 2},
    {"Length", 4},
    {"Flags", 2},
    {"Reserved1", 2},
    {"Attached Initiator Proximity Domain", 4},
    {"Memory Proximity Domain", 4},
    {"Reserved2", 4},
    {"Reserved3", 8},
    {"Reserved4", 8},
};
inline constexpr size_t kHmatProximitySize = 40;
static_assert(FieldsSize(kHmatProximityFields) == kHmatProximitySize);
/// Flags bit 0: the Attached Initiator field is valid.
inline constexpr uint16_t kHmatInitiatorValid = 1u << 0;

/// ACPI 6.3 §5.2.27.4, Table 5-146: System Locality Latency and Bandwidth
/// Information Structure (type 1): this fixed part, then s initiator domains (4
/// bytes each), t target domains (4 bytes each), and s*t 2-byte entries,
/// row-major by initiator.
inline constexpr Field kHmatLocalityFields[] = {
    {"Structure Type", 2},
    {"Reserved", 2},
    {"Length", 4},
    {"Flags", 1},
    {"Data Type", 1},
    {"Minimum Transfer Size", 1},
    {"Reserved1", 1},
    {"Initiator Proximity Domains #", 4},
    {"Target Proximity Domains #", 4},
    {"Reserved2", 4},
    {"Entry Base Unit", 8},
};
inline constexpr size_t kHmatLocalityFixedSize = 32;
static_assert(FieldsSize(kHmatLocalityFields) == kHmatLocalityFixedSize);

namespace hmat_type {
inline constexpr uint16_t kProximityDomain = 0;
inline constexpr uint16_t kLocality = 1;
}  // namespace hmat_type

/// Data Type values of the locality structure.
namespace hmat_data {
inline constexpr uint8_t kAccessLatency = 0;
inline constexpr uint8_t kAccessBandwidth = 3;
}  // namespace hmat_data

/// Latencies are in picoseconds in HMAT revision 2; bandwidths in MB/s.
inline constexpr uint64_t kPicosecondsPerNanosecond = 1000;

/// Largest entry value. 0 means "no information" and 0xFFFF "unreachable",
/// so a real measurement is encoded in 1..0xFFFE.
inline constexpr uint16_t kMaxHmatEntry = 0xFFFE;

/// A matrix of values expressed as 16-bit entries times a common base unit.
struct ScaledEntries {
  uint64_t base_unit = 1;
  std::vector<uint16_t> entries;
  /// True when entry * base_unit == value for every value.
  bool exact = true;
};

/// Chooses the entry base unit for `values` (all > 0):
///   - exact when possible: base = gcd of all values, used when
///     max / gcd <= 0xFFFE, so entry * base reproduces each value;
///   - otherwise base = ceil(max / 0xFFFE) and entry = value / base rounded
///     to nearest (halves up), at least 1 (0 would mean "no information").
///     The largest value then has a relative error below 1/65534; smaller
///     values lose precision in proportion.
ScaledEntries ScaleToEntries(absl::Span<const uint64_t> values);

/// Builds the HMAT of a valid config. Latency values are
/// config.memory_latency_ns * 1000 (picoseconds), bandwidth values
/// config.memory_bandwidth_mbps (MB/s); rows of nodes without vCPUs are not
/// initiators and are left out.
Bytes BuildHmat(const cluster::ClusterConfig& config, const OemInfo& oem);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_HMAT_H_
