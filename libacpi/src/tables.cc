#include "ssihv/acpi/tables.h"

#include <array>
#include <cassert>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ssihv/acpi/hmat.h"
#include "ssihv/acpi/slit.h"
#include "ssihv/acpi/srat.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::acpi {
namespace {

constexpr size_t kTableAlignment = 8;
// x86-64 physical addresses have at most 52 bits.
constexpr uint64_t kMaxGpa = uint64_t{1} << 52;

size_t AlignUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(what);
}

// The tables that hold no pointers, built once; the pointer tables (XSDT,
// FACP) have fixed sizes and are built once the addresses are known.
struct Leaves {
  Bytes dsdt, madt, srat, slit, hmat;
};

Leaves BuildLeaves(const cluster::ClusterConfig& config,
                   const AcpiOptions& options) {
  return Leaves{BuildDsdt(options.dsdt, options.oem),
                BuildMadt(config, options.madt, options.oem),
                BuildSrat(config, options.oem, options.srat),
                BuildSlit(config, options.oem), BuildHmat(config, options.oem)};
}

// Buffer order and sizes: XSDT, FACP, DSDT, APIC, SRAT, SLIT, HMAT.
std::vector<TableLocation> PlanLayout(const Leaves& l, size_t first_offset) {
  const std::array<std::pair<const char*, size_t>, 7> order = {{
      {"XSDT", XsdtSize(std::size(kXsdtTables))},
      {"FACP", kFadtSize},
      {"DSDT", l.dsdt.size()},
      {"APIC", l.madt.size()},
      {"SRAT", l.srat.size()},
      {"SLIT", l.slit.size()},
      {"HMAT", l.hmat.size()},
  }};
  std::vector<TableLocation> out;
  size_t offset = first_offset;
  for (auto [sig, size] : order) {
    offset = AlignUp(offset, kTableAlignment);
    out.push_back({sig, offset, size, 0});
    offset += size;
  }
  return out;
}

size_t PlannedSize(const std::vector<TableLocation>& plan) {
  return plan.back().offset + plan.back().length;
}

absl::Status CheckPlacement(const Placement& p, size_t size) {
  if (p.tables_gpa >= kMaxGpa || size > kMaxGpa - p.tables_gpa) {
    return Invalid(absl::StrFormat(
        "placement.tables_gpa: 0x%x + %u bytes is beyond the 52-bit guest "
        "physical address space",
        p.tables_gpa, size));
  }
  const uint64_t end = p.tables_gpa + size;
  if (p.tables_gpa >= kBiosAreaStart && p.tables_gpa < kBiosAreaEnd &&
      end > kBiosAreaEnd) {
    return Invalid(absl::StrFormat(
        "placement.tables_gpa: the tables need %u bytes, more than fit "
        "between 0x%x and the end of the BIOS area (0x%x); put the tables in "
        "reserved RAM and keep only the RSDP there (placement.rsdp_gpa)",
        size, p.tables_gpa, kBiosAreaEnd));
  }
  if (!p.rsdp_gpa) {
    if (p.tables_gpa % kRsdpAlignment != 0) {
      return Invalid(absl::StrFormat(
          "placement.tables_gpa: 0x%x must be 16-byte aligned when the RSDP "
          "comes first",
          p.tables_gpa));
    }
    return absl::OkStatus();
  }
  const uint64_t rsdp = *p.rsdp_gpa;
  if (rsdp % kRsdpAlignment != 0) {
    return Invalid(absl::StrFormat(
        "placement.rsdp_gpa: 0x%x must be 16-byte aligned", rsdp));
  }
  if (rsdp >= kMaxGpa - kRsdpSize) {
    return Invalid("placement.rsdp_gpa: beyond the guest physical space");
  }
  if (rsdp < end && p.tables_gpa < rsdp + kRsdpSize) {
    return Invalid(absl::StrFormat(
        "placement.rsdp_gpa: the RSDP at 0x%x overlaps the tables at "
        "[0x%x, 0x%x)",
        rsdp, p.tables_gpa, end));
  }
  if (rsdp >= kBiosAreaStart && rsdp < kBiosAreaEnd &&
      rsdp + kRsdpSize > kBiosAreaEnd) {
    return Invalid(
        "placement.rsdp_gpa: the RSDP crosses the end of the BIOS "
        "area");
  }
  return absl::OkStatus();
}

}  // namespace

const TableLocation* AcpiTables::Find(std::string_view signature) const {
  for (const TableLocation& t : tables) {
    if (t.signature == signature) return &t;
  }
  return nullptr;
}

absl::Span<const uint8_t> AcpiTables::Table(std::string_view signature) const {
  const TableLocation* t = Find(signature);
  if (t == nullptr) return {};
  return absl::MakeConstSpan(bytes).subspan(t->offset, t->length);
}

absl::Status ValidateConfigForAcpi(const cluster::ClusterConfig& config) {
  for (size_t i = 0; i < config.nodes.size(); ++i) {
    if (config.nodes[i].id != i) {
      return Invalid(absl::StrCat("nodes[", i, "].id: must be ", i,
                                  " (nodes sorted by id)"));
    }
  }
  // One set of rules: re-encode and run libcluster's validator over it.
  absl::StatusOr<cluster::ClusterConfig> parsed =
      cluster::ParseClusterConfig(cluster::ClusterConfigToJson(config));
  return parsed.status();
}

absl::Status ValidateAcpiOptions(const AcpiOptions& options) {
  SSIHV_RETURN_IF_ERROR(ValidateOemInfo(options.oem));
  SSIHV_RETURN_IF_ERROR(ValidateMadtOptions(options.madt));
  SSIHV_RETURN_IF_ERROR(ValidateFadtOptions(options.fadt));
  return ValidateDsdtOptions(options.dsdt);
}

absl::StatusOr<size_t> AcpiTablesSize(const cluster::ClusterConfig& config,
                                      const AcpiOptions& options,
                                      bool rsdp_inside) {
  SSIHV_RETURN_IF_ERROR(ValidateConfigForAcpi(config));
  SSIHV_RETURN_IF_ERROR(ValidateAcpiOptions(options));
  return PlannedSize(
      PlanLayout(BuildLeaves(config, options), rsdp_inside ? kRsdpSize : 0));
}

absl::StatusOr<AcpiTables> BuildAcpiTables(const cluster::ClusterConfig& config,
                                           const AcpiOptions& options,
                                           const Placement& placement) {
  SSIHV_RETURN_IF_ERROR(ValidateConfigForAcpi(config));
  SSIHV_RETURN_IF_ERROR(ValidateAcpiOptions(options));
  const Leaves leaves = BuildLeaves(config, options);
  const bool rsdp_inside = !placement.rsdp_gpa.has_value();
  std::vector<TableLocation> plan =
      PlanLayout(leaves, rsdp_inside ? kRsdpSize : 0);
  const size_t size = PlannedSize(plan);
  SSIHV_RETURN_IF_ERROR(CheckPlacement(placement, size));

  AcpiTables out;
  out.gpa = placement.tables_gpa;
  out.rsdp_gpa = placement.rsdp_gpa.value_or(placement.tables_gpa);
  for (TableLocation& t : plan) t.gpa = out.gpa + t.offset;
  auto gpa_of = [&](std::string_view sig) {
    for (const TableLocation& t : plan) {
      if (t.signature == sig) return t.gpa;
    }
    assert(false);
    return uint64_t{0};
  };
  std::vector<uint64_t> xsdt_entries;
  for (std::string_view sig : kXsdtTables) xsdt_entries.push_back(gpa_of(sig));

  const Bytes xsdt = BuildXsdt(xsdt_entries, options.oem);
  const Bytes fadt = BuildFadt(options.fadt, gpa_of("DSDT"), options.oem);
  out.rsdp = BuildRsdp(gpa_of("XSDT"), options.oem);
  const Bytes* contents[] = {&xsdt,        &fadt,        &leaves.dsdt,
                             &leaves.madt, &leaves.srat, &leaves.slit,
                             &leaves.hmat};
  out.bytes.assign(size, 0);
  if (rsdp_inside) {
    out.rsdp_offset = 0;
    std::copy(out.rsdp.begin(), out.rsdp.end(), out.bytes.begin());
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    assert(contents[i]->size() == plan[i].length);
    std::copy(contents[i]->begin(), contents[i]->end(),
              out.bytes.begin() + plan[i].offset);
  }
  out.tables = std::move(plan);
  return out;
}

}  // namespace ssihv::acpi
