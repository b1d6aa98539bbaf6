// SLIT, the System Locality Distance Information Table (ACPI 6.5 §5.2.17),
// revision 1: the N x N matrix of relative distances between proximity
// domains (= cluster nodes), row = from, column = to.
#ifndef SSIHV_ACPI_SLIT_H_
#define SSIHV_ACPI_SLIT_H_

#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fields.h"
#include "ssihv/acpi/sdt.h"
#include "ssihv/cluster/config.h"

namespace ssihv::acpi {

inline constexpr uint8_t kSlitRevision = 1;

/// ACPI 6.5 §5.2.17, SLIT format: header, Number of System Localities (8),
/// then N*N one-byte entries, Entry[i][j] at i*N + j.
inline constexpr Field kSlitFields[] = {
    {"Header", 36, FieldFormat::kBytes},
    {"Localities", 8},
};
inline constexpr size_t kSlitFixedSize = 44;
static_assert(FieldsSize(kSlitFields) == kSlitFixedSize);

/// Builds the SLIT from config.distances (valid config: diagonal 10,
/// off-diagonal 11..255).
Bytes BuildSlit(const cluster::ClusterConfig& config, const OemInfo& oem);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_SLIT_H_
