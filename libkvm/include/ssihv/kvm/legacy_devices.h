// The small PC devices a Linux guest probes or uses to reset and power off:
// the i8042 keyboard controller (its reset line), the CMOS RTC, the reset
// control register at 0xcf9, the ACPI hardware-reduced sleep registers and
// the POST port 0x80. PIC, IOAPIC, PIT and the speaker port are in-kernel.
#ifndef SSIHV_KVM_LEGACY_DEVICES_H_
#define SSIHV_KVM_LEGACY_DEVICES_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>

#include "ssihv/kvm/bus.h"

namespace ssihv::kvm {

inline constexpr uint16_t kI8042DataPort = 0x60;
inline constexpr uint16_t kI8042CommandPort = 0x64;
inline constexpr uint16_t kCmosIndexPort = 0x70;
inline constexpr uint16_t kResetControlPort = 0xcf9;
inline constexpr uint16_t kPostCodePort = 0x80;

/// The 8042 controller with no keyboard or mouse behind it. Command 0xfe
/// (pulse the reset line, what Linux's `reboot=k` does), any pulse command
/// with bit 0 clear, or an output-port write with bit 0 clear resets the
/// machine through `reset`. Registered at 0x60 with length 5: offset 0 is
/// the data port, 4 the status/command port; 1..3 (0x61 is the in-kernel
/// speaker port) read as all ones.
class I8042 final : public BusDevice {
 public:
  explicit I8042(std::function<void()> reset) : reset_(std::move(reset)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  void Command(uint8_t cmd);
  void Data(uint8_t value);
  void Output(uint8_t value);

  std::function<void()> reset_;
  std::mutex mu_;
  uint8_t command_byte_ = 0x45;  // kbd irq on, system flag, translate
  uint8_t output_ = 0;
  bool output_full_ = false;
  uint8_t pending_command_ = 0;  // a command waiting for its data byte
};

/// The MC146818 CMOS RTC at 0x70/0x71: time of day from the host clock
/// (BCD, 24-hour, as a PC BIOS sets it), status registers, 128 bytes of
/// CMOS RAM. `now` is injectable for tests.
class CmosRtc final : public BusDevice {
 public:
  explicit CmosRtc(std::function<std::time_t()> now = nullptr);
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  uint8_t ReadIndexed(uint8_t index);

  std::function<std::time_t()> now_;
  std::mutex mu_;
  uint8_t index_ = 0;
  std::array<uint8_t, 128> ram_{};
};

/// The reset control register (0xcf9): writing a value with RST_CPU (bit 2)
/// set resets. ACPI FADT's reset register may point here (value 0x06).
class ResetControl final : public BusDevice {
 public:
  explicit ResetControl(std::function<void()> reset)
      : reset_(std::move(reset)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  std::function<void()> reset_;
  std::atomic<uint8_t> value_{0};
};

/// The ACPI hardware-reduced sleep control and status registers (ACPI 6.4,
/// 4.8.3.7 and 4.8.3.8), one byte each at offsets 0 and 1. Writing control
/// with SLP_EN (bit 5) and SLP_TYP (bits 4:2) equal to the DSDT's \_S5
/// value powers off.
class AcpiSleepControl final : public BusDevice {
 public:
  AcpiSleepControl(uint8_t s5_slp_typ, std::function<void()> power_off)
      : s5_slp_typ_(s5_slp_typ), power_off_(std::move(power_off)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  uint8_t s5_slp_typ_;
  std::function<void()> power_off_;
};

/// Port 0x80 (POST codes; Linux writes it as an I/O delay): accepts and
/// drops writes, reads 0xff.
class PostCodePort final : public BusDevice {
 public:
  void Read(uint64_t, absl::Span<uint8_t> data) override;
  void Write(uint64_t, absl::Span<const uint8_t>) override {}
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_LEGACY_DEVICES_H_
