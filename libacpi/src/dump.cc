#include "ssihv/acpi/dump.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ssihv/acpi/byte_builder.h"
#include "ssihv/acpi/fadt.h"
#include "ssihv/acpi/hmat.h"
#include "ssihv/acpi/madt.h"
#include "ssihv/acpi/rsdp.h"
#include "ssihv/acpi/sdt.h"
#include "ssihv/acpi/slit.h"
#include "ssihv/acpi/srat.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::acpi {
namespace {

// Field names are std::string_view (constexpr tables); Debian's Abseil has
// its own string_view type.
absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

absl::Status Malformed(absl::string_view sig, size_t offset,
                       absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: at offset 0x%x: %s", sig, offset, what));
}

absl::string_view Describe(absl::string_view sig) {
  if (sig == "RSD PTR ") return "Root System Description Pointer";
  if (sig == "XSDT") return "Extended System Description Table";
  if (sig == "FACP") return "Fixed ACPI Description Table (FADT)";
  if (sig == "DSDT") return "Differentiated System Description Table";
  if (sig == "APIC") return "Multiple APIC Description Table (MADT)";
  if (sig == "SRAT") return "System Resource Affinity Table";
  if (sig == "SLIT") return "System Locality Distance Information Table";
  if (sig == "HMAT") return "Heterogeneous Memory Attribute Table";
  return "Unknown table";
}

// Prints "[offset decimal length] Name : value" lines over one table.
class Printer {
 public:
  Printer(absl::Span<const uint8_t> t, absl::string_view sig)
      : t_(t), sig_(sig) {}

  uint64_t Get(size_t offset, int width) const {
    return ReadLe(t_, offset, width);
  }
  bool Fits(size_t offset, size_t size) const {
    return offset <= t_.size() && size <= t_.size() - offset;
  }

  void Line(size_t offset, size_t size, absl::string_view name,
            absl::string_view value) {
    absl::StrAppendFormat(&out_, "[%03Xh %04u %3u] %30s : %s\n", offset, offset,
                          size, name, value);
  }
  void Text(absl::string_view text) { absl::StrAppend(&out_, text, "\n"); }

  absl::Status FieldAt(const Field& f, size_t offset) {
    if (!Fits(offset, f.size)) {
      return Malformed(sig_, offset,
                       absl::StrCat("field \"", Av(f.name),
                                    "\" runs past the end "
                                    "of the table"));
    }
    switch (f.format) {
      case FieldFormat::kHex:
        Line(offset, f.size, Av(f.name),
             absl::StrFormat("%0*X", 2 * f.size, Get(offset, f.size)));
        break;
      case FieldFormat::kAscii:
        Line(offset, f.size, Av(f.name), Quoted(offset, f.size));
        break;
      case FieldFormat::kGas:
        Line(offset, f.size, Av(f.name), "[Generic Address Structure]");
        return Struct(kGasFields, offset);
      case FieldFormat::kBytes: {
        std::string hex;
        for (size_t i = 0; i < f.size; ++i) {
          absl::StrAppendFormat(&hex, "%s%02X", i ? " " : "", t_[offset + i]);
        }
        Line(offset, f.size, Av(f.name), hex);
        break;
      }
    }
    return absl::OkStatus();
  }

  // Prints every field of a structure at `offset`; a leading 36-byte
  // "Header" entry (the SDT header, printed separately) is skipped.
  template <size_t N>
  absl::Status Struct(const Field (&fields)[N], size_t offset) {
    for (const Field& f : fields) {
      if (f.name != "Header") {
        SSIHV_RETURN_IF_ERROR(FieldAt(f, offset));
      }
      offset += f.size;
    }
    return absl::OkStatus();
  }

  std::string Quoted(size_t offset, size_t size) const {
    std::string s = "\"";
    for (size_t i = 0; i < size; ++i) {
      char c = static_cast<char>(t_[offset + i]);
      s += (c >= 0x20 && c < 0x7f) ? c : '.';
    }
    return s + "\"";
  }

  absl::Span<const uint8_t> table() const { return t_; }
  absl::string_view sig() const { return sig_; }
  std::string& out() { return out_; }

 private:
  absl::Span<const uint8_t> t_;
  absl::string_view sig_;
  std::string out_;
};

// A subtable with a one-byte type and a one-byte length (MADT, SRAT).
struct Subtable8 {
  uint8_t type;
  std::string_view name;
  const Field* fields;
  size_t num_fields;
};

template <size_t N>
constexpr Subtable8 Sub(uint8_t type, std::string_view name,
                        const Field (&fields)[N]) {
  return {type, name, fields, N};
}

absl::Status Subtables8(Printer& p, size_t offset,
                        absl::Span<const Subtable8> known) {
  const size_t end = p.table().size();
  while (offset < end) {
    if (!p.Fits(offset, 2)) return Malformed(p.sig(), offset, "truncated");
    const uint8_t type = p.table()[offset];
    const uint8_t length = p.table()[offset + 1];
    if (length < 2 || !p.Fits(offset, length)) {
      return Malformed(p.sig(), offset,
                       absl::StrCat("subtable length ", length, " is invalid"));
    }
    p.Text("");
    const Subtable8* match = nullptr;
    for (const Subtable8& s : known) {
      if (s.type == type) match = &s;
    }
    size_t expected = 0;
    if (match) {
      for (size_t i = 0; i < match->num_fields; ++i) {
        expected += match->fields[i].size;
      }
    }
    if (match == nullptr || expected != length) {
      p.Line(offset, length, "Unknown subtable",
             absl::StrFormat("type %u, length %u", type, length));
    } else {
      p.Text(absl::StrCat("                               [", Av(match->name),
                          "]"));
      size_t at = offset;
      for (size_t i = 0; i < match->num_fields; ++i) {
        SSIHV_RETURN_IF_ERROR(p.FieldAt(match->fields[i], at));
        at += match->fields[i].size;
      }
    }
    offset += length;
  }
  return absl::OkStatus();
}

absl::Status DumpRsdp(Printer& p) {
  if (!p.Fits(0, kRsdpSize)) {
    return Malformed(p.sig(), 0, "an ACPI 2.0 RSDP is 36 bytes");
  }
  SSIHV_RETURN_IF_ERROR(p.Struct(kRsdpFields, 0));
  const auto t = p.table();
  const bool v1_ok = ByteSum(t.subspan(0, kRsdpV1Size)) == 0;
  const bool ext_ok = ByteSum(t.subspan(0, kRsdpSize)) == 0;
  p.Text(
      absl::StrCat("Checksum (first 20 bytes): ", v1_ok ? "valid" : "INVALID",
                   "; extended checksum: ", ext_ok ? "valid" : "INVALID"));
  return absl::OkStatus();
}

absl::Status DumpXsdt(Printer& p) {
  for (size_t off = kSdtHeaderSize; off < p.table().size(); off += 8) {
    SSIHV_RETURN_IF_ERROR(p.FieldAt({"ACPI Table Address", 8}, off));
  }
  return absl::OkStatus();
}

absl::Status DumpFadt(Printer& p) {
  SSIHV_RETURN_IF_ERROR(p.Struct(kFadtFields, 0));
  const uint32_t flags = p.Get(OffsetOf(kFadtFields, "Flags"), 4);
  const uint16_t boot = p.Get(OffsetOf(kFadtFields, "IAPC_BOOT_ARCH"), 2);
  p.Text(absl::StrFormat(
      "  Flags: HW_REDUCED_ACPI=%d RESET_REG_SUP=%d PWR_BUTTON=%d "
      "SLP_BUTTON=%d WBINVD=%d",
      !!(flags & fadt_flags::kHwReducedAcpi),
      !!(flags & fadt_flags::kResetRegSupported),
      !!(flags & fadt_flags::kPowerButton),
      !!(flags & fadt_flags::kSleepButton), !!(flags & fadt_flags::kWbinvd)));
  p.Text(absl::StrFormat(
      "  IAPC_BOOT_ARCH: LEGACY_DEVICES=%d 8042=%d VGA_NOT_PRESENT=%d "
      "MSI_NOT_SUPPORTED=%d PCIE_ASPM_CONTROLS=%d CMOS_RTC_NOT_PRESENT=%d",
      boot & 1, (boot >> 1) & 1, (boot >> 2) & 1, (boot >> 3) & 1,
      (boot >> 4) & 1, (boot >> 5) & 1));
  return absl::OkStatus();
}

absl::Status DumpMadt(Printer& p) {
  SSIHV_RETURN_IF_ERROR(p.Struct(kMadtFields, 0));
  static constexpr Subtable8 kKnown[] = {
      Sub(madt_type::kLocalApic, "Processor Local APIC", kMadtLocalApicFields),
      Sub(madt_type::kIoApic, "I/O APIC", kMadtIoApicFields),
      Sub(madt_type::kInterruptOverride, "Interrupt Source Override",
          kMadtInterruptOverrideFields),
      Sub(madt_type::kLocalApicNmi, "Local APIC NMI", kMadtLocalApicNmiFields),
      Sub(madt_type::kLocalX2Apic, "Processor Local x2APIC",
          kMadtLocalX2ApicFields),
      Sub(madt_type::kLocalX2ApicNmi, "Local x2APIC NMI",
          kMadtLocalX2ApicNmiFields),
  };
  return Subtables8(p, kMadtFixedSize, kKnown);
}

absl::Status DumpSrat(Printer& p) {
  SSIHV_RETURN_IF_ERROR(p.Struct(kSratFields, 0));
  static constexpr Subtable8 kKnown[] = {
      Sub(srat_type::kLocalApicAffinity, "Processor Local APIC Affinity",
          kSratLocalApicFields),
      Sub(srat_type::kMemoryAffinity, "Memory Affinity", kSratMemoryFields),
      Sub(srat_type::kX2ApicAffinity, "Processor Local x2APIC Affinity",
          kSratX2ApicFields),
  };
  return Subtables8(p, kSratFixedSize, kKnown);
}

absl::Status DumpSlit(Printer& p) {
  SSIHV_RETURN_IF_ERROR(p.Struct(kSlitFields, 0));
  const uint64_t n = p.Get(OffsetOf(kSlitFields, "Localities"), 8);
  if (n > 256 || !p.Fits(kSlitFixedSize, n * n) ||
      kSlitFixedSize + n * n != p.table().size()) {
    return Malformed(p.sig(), kSlitFixedSize,
                     absl::StrCat(n, " localities do not match the length"));
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string row;
    for (uint64_t j = 0; j < n; ++j) {
      absl::StrAppendFormat(&row, "%s%02X", j ? " " : "",
                            p.table()[kSlitFixedSize + i * n + j]);
    }
    p.Line(kSlitFixedSize + i * n, n, absl::StrFormat("Locality %3u", i), row);
  }
  return absl::OkStatus();
}

absl::Status DumpHmatLocality(Printer& p, size_t offset, size_t length) {
  SSIHV_RETURN_IF_ERROR(p.Struct(kHmatLocalityFields, offset));
  const size_t s = p.Get(offset + 12, 4);
  const size_t t = p.Get(offset + 16, 4);
  const uint8_t type = p.table()[offset + 9];
  const uint64_t base = p.Get(offset + 24, 8);
  if (s > 4096 || t > 4096 ||
      kHmatLocalityFixedSize + 4 * (s + t) + 2 * s * t != length) {
    return Malformed(p.sig(), offset,
                     "locality lists do not match the structure length");
  }
  size_t at = offset + kHmatLocalityFixedSize;
  std::vector<uint32_t> init, targ;
  for (size_t i = 0; i < s; ++i, at += 4) {
    init.push_back(p.Get(at, 4));
    SSIHV_RETURN_IF_ERROR(p.FieldAt({"Initiator Proximity Domain", 4}, at));
  }
  for (size_t i = 0; i < t; ++i, at += 4) {
    targ.push_back(p.Get(at, 4));
    SSIHV_RETURN_IF_ERROR(p.FieldAt({"Target Proximity Domain", 4}, at));
  }
  const bool latency = type <= 2;
  for (size_t i = 0; i < s; ++i) {
    for (size_t j = 0; j < t; ++j, at += 2) {
      const uint64_t e = p.Get(at, 2);
      // Latency is in picoseconds (HMAT revision 2): print nanoseconds.
      const uint64_t scaled = e * base;
      std::string physical =
          !latency ? absl::StrCat(scaled, " MB/s")
          : scaled % 1000 == 0
              ? absl::StrCat(scaled / 1000, " ns")
              : absl::StrFormat("%.3f ns", static_cast<double>(scaled) / 1000);
      std::string value = absl::StrFormat("%04X  (PD %u -> %u: %s)", e, init[i],
                                          targ[j], physical);
      p.Line(at, 2, "Entry", value);
    }
  }
  return absl::OkStatus();
}

absl::Status DumpHmat(Printer& p) {
  SSIHV_RETURN_IF_ERROR(p.Struct(kHmatFields, 0));
  size_t offset = kHmatFixedSize;
  while (offset < p.table().size()) {
    if (!p.Fits(offset, 8)) return Malformed(p.sig(), offset, "truncated");
    const uint16_t type = p.Get(offset, 2);
    const uint32_t length = p.Get(offset + 4, 4);
    if (length < 8 || !p.Fits(offset, length)) {
      return Malformed(
          p.sig(), offset,
          absl::StrCat("structure length ", length, " is invalid"));
    }
    p.Text("");
    if (type == hmat_type::kProximityDomain && length == kHmatProximitySize) {
      p.Text(
          "                               [Memory Proximity Domain "
          "Attributes]");
      SSIHV_RETURN_IF_ERROR(p.Struct(kHmatProximityFields, offset));
    } else if (type == hmat_type::kLocality &&
               length >= kHmatLocalityFixedSize) {
      p.Text(
          "                               [System Locality Latency and "
          "Bandwidth Information]");
      SSIHV_RETURN_IF_ERROR(DumpHmatLocality(p, offset, length));
    } else {
      p.Line(offset, length, "Unknown structure",
             absl::StrFormat("type %u, length %u", type, length));
    }
    offset += length;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> DumpTable(absl::Span<const uint8_t> table) {
  if (table.size() >= 8 &&
      std::string_view(reinterpret_cast<const char*>(table.data()), 8) ==
          "RSD PTR ") {
    Printer p(table, "RSDP");
    p.Text("/* RSDP: Root System Description Pointer */");
    SSIHV_RETURN_IF_ERROR(DumpRsdp(p));
    return std::move(p.out());
  }
  if (table.size() < kSdtHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("table of ", table.size(),
                     " bytes is shorter than the 36-byte "
                     "header"));
  }
  const absl::string_view sig(reinterpret_cast<const char*>(table.data()), 4);
  const uint32_t length = ReadLe(table, kSdtLengthOffset, 4);
  if (length != table.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        sig, ": header length ", length, " but ", table.size(), " bytes"));
  }
  Printer p(table, sig);
  p.Text(absl::StrCat("/* ", sig, ": ", Describe(sig), " */"));
  SSIHV_RETURN_IF_ERROR(p.Struct(kSdtHeaderFields, 0));
  p.Text(absl::StrCat("Checksum of the whole table: ",
                      ByteSum(table) == 0 ? "valid" : "INVALID"));
  p.Text("");
  absl::Status st = absl::OkStatus();
  if (sig == "XSDT") {
    st = DumpXsdt(p);
  } else if (sig == "FACP") {
    st = table.size() == kFadtSize ? DumpFadt(p)
                                   : Malformed(sig, 0, "FADT is not 276 bytes");
  } else if (sig == "APIC") {
    st = DumpMadt(p);
  } else if (sig == "SRAT") {
    st = DumpSrat(p);
  } else if (sig == "SLIT") {
    st = DumpSlit(p);
  } else if (sig == "HMAT") {
    st = DumpHmat(p);
  } else if (sig == "DSDT" || sig == "SSDT") {
    p.out() += DumpAml(table.subspan(kSdtHeaderSize));
  } else {
    p.FieldAt({"Body",
               static_cast<uint16_t>(
                   std::min<size_t>(table.size() - kSdtHeaderSize, 0xffff)),
               FieldFormat::kBytes},
              kSdtHeaderSize)
        .IgnoreError();
  }
  SSIHV_RETURN_IF_ERROR(st);
  return std::move(p.out());
}

}  // namespace ssihv::acpi
