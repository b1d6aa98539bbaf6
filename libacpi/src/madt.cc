#include "ssihv/acpi/madt.h"

#include <cassert>

#include "absl/strings/str_cat.h"

namespace ssihv::acpi {
namespace {

// Local APIC Flags (ACPI 6.5 §5.2.12.2): bit 0 Enabled. "Online Capable"
// (bit 1) must be zero when Enabled is set.
constexpr uint32_t kProcessorEnabled = 1u << 0;

void AppendLocalApic(ByteBuilder& b, uint8_t uid, uint8_t apic_id) {
  [[maybe_unused]] const size_t start = b.size();
  b.U8(madt_type::kLocalApic);  // Type
  b.U8(kMadtLocalApicSize);     // Length
  b.U8(uid);                    // ACPI Processor UID
  b.U8(apic_id);                // APIC ID
  b.U32(kProcessorEnabled);     // Flags
  assert(b.size() - start == kMadtLocalApicSize);
}

void AppendLocalX2Apic(ByteBuilder& b, uint32_t uid, uint32_t x2apic_id) {
  [[maybe_unused]] const size_t start = b.size();
  b.U8(madt_type::kLocalX2Apic);  // Type
  b.U8(kMadtLocalX2ApicSize);     // Length
  b.U16(0);                       // Reserved
  b.U32(x2apic_id);               // X2APIC ID
  b.U32(kProcessorEnabled);       // Flags (same as Local APIC Flags)
  b.U32(uid);                     // ACPI Processor UID
  assert(b.size() - start == kMadtLocalX2ApicSize);
}

void AppendIoApic(ByteBuilder& b, const MadtOptions& o) {
  [[maybe_unused]] const size_t start = b.size();
  b.U8(madt_type::kIoApic);  // Type
  b.U8(kMadtIoApicSize);     // Length
  b.U8(o.ioapic_id);         // I/O APIC ID
  b.U8(0);                   // Reserved
  b.U32(o.ioapic_address);   // I/O APIC Address
  b.U32(o.ioapic_gsi_base);  // Global System Interrupt Base
  assert(b.size() - start == kMadtIoApicSize);
}

void AppendOverride(ByteBuilder& b, const InterruptOverride& o) {
  [[maybe_unused]] const size_t start = b.size();
  b.U8(madt_type::kInterruptOverride);  // Type
  b.U8(kMadtInterruptOverrideSize);     // Length
  b.U8(0);                              // Bus: 0 = ISA
  b.U8(o.source);                       // Source (bus-relative IRQ)
  b.U32(o.gsi);                         // Global System Interrupt
  b.U16(o.flags);                       // Flags (MPS INTI)
  assert(b.size() - start == kMadtInterruptOverrideSize);
}

void AppendNmis(ByteBuilder& b, const MadtOptions& o, bool any_x2apic) {
  [[maybe_unused]] size_t start = b.size();
  b.U8(madt_type::kLocalApicNmi);  // Type
  b.U8(kMadtLocalApicNmiSize);     // Length
  b.U8(kAllProcessorsUid);         // ACPI Processor UID: all processors
  b.U16(mps_inti::kConforms);      // Flags (MPS INTI)
  b.U8(o.nmi_lint);                // Local APIC LINT#
  assert(b.size() - start == kMadtLocalApicNmiSize);
  if (!any_x2apic) return;
  // x2APIC processors are matched by 32-bit UIDs, which the 8-bit UID
  // above cannot name.
  start = b.size();
  b.U8(madt_type::kLocalX2ApicNmi);  // Type
  b.U8(kMadtLocalX2ApicNmiSize);     // Length
  b.U16(mps_inti::kConforms);        // Flags (MPS INTI)
  b.U32(kAllProcessorsX2Uid);        // ACPI Processor UID: all processors
  b.U8(o.nmi_lint);                  // Local x2APIC LINT#
  b.Zeros(3);                        // Reserved
  assert(b.size() - start == kMadtLocalX2ApicNmiSize);
}

}  // namespace

absl::Status ValidateMadtOptions(const MadtOptions& options) {
  if (options.nmi_lint > 1) {
    return absl::InvalidArgumentError("madt.nmi_lint: must be 0 or 1");
  }
  if (options.local_apic_address % 4096 != 0 ||
      options.ioapic_address % 4096 != 0) {
    return absl::InvalidArgumentError(
        "madt.local_apic_address/ioapic_address: must be 4 KiB aligned");
  }
  for (size_t i = 0; i < options.interrupt_overrides.size(); ++i) {
    const InterruptOverride& o = options.interrupt_overrides[i];
    std::string key = absl::StrCat("madt.interrupt_overrides[", i, "]");
    if (o.source > 15) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ".source: ISA IRQs are 0..15"));
    }
    // Polarity and trigger values 2 are reserved; bits 4..15 must be zero.
    if ((o.flags & 0x3) == 2 || ((o.flags >> 2) & 0x3) == 2 ||
        (o.flags >> 4) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ".flags: not valid MPS INTI flags"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (options.interrupt_overrides[j].source == o.source) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ".source: IRQ ", o.source, " overridden twice"));
      }
    }
  }
  return absl::OkStatus();
}

Bytes BuildMadt(const cluster::ClusterConfig& config,
                const MadtOptions& options, const OemInfo& oem) {
  ByteBuilder b;
  size_t start = BeginSdt(b, "APIC", kMadtRevision, oem);
  b.U32(options.local_apic_address);     // Local Interrupt Controller Address
  b.U32(options.pcat_compat ? 1u : 0u);  // Flags: bit 0 PCAT_COMPAT
  // ACPI 6.5 §5.2.12.1: the boot processor's entry comes first; vCPU 0 is
  // the boot processor.
  const uint32_t vcpus = config.total_vcpus();
  for (uint32_t id = 0; id < vcpus; ++id) {
    if (id < kFirstX2ApicId) {
      AppendLocalApic(b, static_cast<uint8_t>(id), static_cast<uint8_t>(id));
    } else {
      AppendLocalX2Apic(b, id, id);
    }
  }
  AppendIoApic(b, options);
  for (const InterruptOverride& o : options.interrupt_overrides) {
    AppendOverride(b, o);
  }
  AppendNmis(b, options, vcpus > kFirstX2ApicId);
  FinishSdt(b, start);
  return std::move(b).Take();
}

}  // namespace ssihv::acpi
