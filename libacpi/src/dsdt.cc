#include "ssihv/acpi/dsdt.h"

#include "absl/strings/str_cat.h"
#include "aml.h"

namespace ssihv::acpi {
namespace {

// Device (COMn) { Name (_HID, EisaId ("PNP0501")) Name (_UID, n)
//   Name (_CRS, ResourceTemplate () { IO (Decode16, base, base, 0, 8)
//                                     IRQNoFlags () {irq} }) }
Bytes SerialDevice(size_t index, const SerialPort& port) {
  const std::string name = absl::StrCat("COM", index + 1);
  Bytes resources = aml::Terms({
      aml::IoPortDescriptor(port.io_base, port.io_base, 0, 8),
      aml::IrqNoFlagsDescriptor(static_cast<uint16_t>(1u << port.irq)),
      aml::EndTag(),
  });
  return aml::Device(name, aml::Terms({
                               aml::Name("_HID", aml::EisaId("PNP0501")),
                               aml::Name("_UID", aml::Integer(index + 1)),
                               aml::Name("_CRS", aml::Buffer(resources)),
                           }));
}

}  // namespace

absl::Status ValidateDsdtOptions(const DsdtOptions& options) {
  if (options.s5_sleep_type > 7) {
    return absl::InvalidArgumentError(
        "dsdt.s5_sleep_type: must be in 0..7 (a 3-bit SLP_TYP)");
  }
  if (options.serial_ports.size() > 4) {
    return absl::InvalidArgumentError("dsdt.serial_ports: at most 4 ports");
  }
  for (size_t i = 0; i < options.serial_ports.size(); ++i) {
    const SerialPort& p = options.serial_ports[i];
    std::string key = absl::StrCat("dsdt.serial_ports[", i, "]");
    if (p.irq > 15) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ".irq: ISA IRQs are 0..15"));
    }
    if (p.io_base == 0 || p.io_base > 0xFFF8) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ".io_base: must be in 1..0xfff8"));
    }
  }
  return absl::OkStatus();
}

Bytes BuildDsdt(const DsdtOptions& options, const OemInfo& oem) {
  ByteBuilder b;
  size_t start = BeginSdt(b, "DSDT", kDsdtRevision, oem);
  // Name (_S5, Package (0x04) { typ, typ, Zero, Zero }) at the root (the
  // DSDT body is in the root scope, so no "\" prefix, as iasl emits it):
  // SLP_TYPa, SLP_TYPb
  // and two reserved elements, the form firmware conventionally uses.
  b.Append(aml::Name("_S5", aml::Package({aml::Integer(options.s5_sleep_type),
                                          aml::Integer(options.s5_sleep_type),
                                          aml::Integer(0), aml::Integer(0)})));
  if (!options.serial_ports.empty()) {
    Bytes devices;
    for (size_t i = 0; i < options.serial_ports.size(); ++i) {
      Bytes d = SerialDevice(i, options.serial_ports[i]);
      devices.insert(devices.end(), d.begin(), d.end());
    }
    b.Append(aml::Scope("_SB", devices));
  }
  FinishSdt(b, start);
  return std::move(b).Take();
}

}  // namespace ssihv::acpi
