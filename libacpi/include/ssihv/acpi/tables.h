// The whole ACPI table set of a cluster, laid out for one guest address.
//
// Usage (the VMM):
//   ssihv::acpi::AcpiOptions options;           // defaults match ssihv-vmm
//   SSIHV_ASSIGN_OR_RETURN(ssihv::acpi::AcpiTables acpi,
//       ssihv::acpi::BuildAcpiTables(config, options, {}));
//   CopyToGuest(acpi.gpa, acpi.bytes);          // all tables
//   CopyToGuest(acpi.rsdp_gpa, acpi.rsdp);      // the RSDP (a no-op rewrite
//                                               // when it is inside `bytes`)
//   boot_params.acpi_rsdp_addr = acpi.rsdp_gpa; // optional with the default
//                                               // placement: Linux also scans
//                                               // 0xE0000-0xFFFFF for it
// and mark [gpa, gpa + bytes.size()) as ACPI (or reserved) in the e820 map.
#ifndef SSIHV_ACPI_TABLES_H_
#define SSIHV_ACPI_TABLES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/dsdt.h"
#include "ssihv/acpi/fadt.h"
#include "ssihv/acpi/madt.h"
#include "ssihv/acpi/rsdp.h"
#include "ssihv/acpi/sdt.h"
#include "ssihv/acpi/srat.h"
#include "ssihv/cluster/config.h"

namespace ssihv::acpi {

/// Everything about the tables that is not in the cluster config.
struct AcpiOptions {
  OemInfo oem;
  MadtOptions madt;
  FadtOptions fadt;
  DsdtOptions dsdt;
  SratOptions srat;
};

/// Where the tables go in guest physical memory.
struct Placement {
  /// Guest address of AcpiTables::bytes[0].
  uint64_t tables_gpa = kBiosAreaStart;
  /// Guest address of the RSDP (16-byte aligned). Unset: the RSDP is the
  /// first thing in `bytes`, at tables_gpa (which must then be 16-byte
  /// aligned). Set: the RSDP is separate and must not overlap the tables,
  /// e.g. RSDP at 0xE0000 with large tables in reserved RAM, or tables
  /// anywhere with the RSDP handed over in boot_params.acpi_rsdp_addr.
  std::optional<uint64_t> rsdp_gpa;
};

/// One table inside AcpiTables::bytes.
struct TableLocation {
  std::string signature;  // "XSDT", "FACP", "DSDT", "APIC", "SRAT", ...
  size_t offset = 0;      // in `bytes`
  size_t length = 0;
  uint64_t gpa = 0;  // = AcpiTables::gpa + offset
};

struct AcpiTables {
  /// Copy `bytes` to guest address `gpa`.
  uint64_t gpa = 0;
  Bytes bytes;
  /// Copy `rsdp` (36 bytes) to guest address `rsdp_gpa`.
  uint64_t rsdp_gpa = 0;
  Bytes rsdp;
  /// Offset of the RSDP in `bytes` when the placement put it there.
  std::optional<size_t> rsdp_offset;
  /// In buffer order: XSDT, FACP, DSDT, APIC, SRAT, SLIT, HMAT; each table
  /// starts 8-byte aligned.
  std::vector<TableLocation> tables;

  /// The table with this signature, or nullptr.
  const TableLocation* Find(std::string_view signature) const;
  /// Its bytes, or an empty span.
  absl::Span<const uint8_t> Table(std::string_view signature) const;
};

/// The tables, in XSDT order, that the XSDT points to.
inline constexpr std::string_view kXsdtTables[] = {"FACP", "APIC", "SRAT",
                                                   "SLIT", "HMAT"};

/// InvalidArgument with the key path of the first problem: the config is
/// checked by libcluster's own validator (so a hand-built config obeys the
/// same rules as a parsed one) and must be sorted by id.
absl::Status ValidateConfigForAcpi(const cluster::ClusterConfig& config);

/// InvalidArgument naming the offending option.
absl::Status ValidateAcpiOptions(const AcpiOptions& options);

/// Bytes BuildAcpiTables would lay out (including the RSDP when
/// `rsdp_inside`), so a caller can pick a placement before building.
absl::StatusOr<size_t> AcpiTablesSize(const cluster::ClusterConfig& config,
                                      const AcpiOptions& options,
                                      bool rsdp_inside);

/// Builds every table, lays them out for `placement`, writes the pointers
/// (RSDP -> XSDT, XSDT -> each table, FADT -> DSDT) with their final guest
/// addresses and computes each checksum last. Errors (InvalidArgument):
/// invalid config or options, misaligned or overlapping placement, tables
/// that start in the 0xE0000-0xFFFFF BIOS area but do not fit in it, and
/// address overflow.
absl::StatusOr<AcpiTables> BuildAcpiTables(const cluster::ClusterConfig& config,
                                           const AcpiOptions& options,
                                           const Placement& placement);

}  // namespace ssihv::acpi

#endif  // SSIHV_ACPI_TABLES_H_
