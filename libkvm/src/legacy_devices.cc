#include "ssihv/kvm/legacy_devices.h"

#include <cstring>

namespace ssihv::kvm {
namespace {

// i8042 status register bits.
constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusCommandLast = 0x08;

// i8042 controller commands.
constexpr uint8_t kCmdReadCommandByte = 0x20;
constexpr uint8_t kCmdWriteCommandByte = 0x60;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdTestKbdPort = 0xab;
constexpr uint8_t kCmdTestAuxPort = 0xa9;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdPulseFirst = 0xf0;  // 0xf0-0xff pulse output lines

uint8_t ToBcd(int v) {
  return static_cast<uint8_t>(((v / 10) << 4) | (v % 10));
}

}  // namespace

// ---------------------------------------------------------------- i8042

void I8042::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint8_t& b : data) {
    if (offset == 0) {
      b = output_;
      output_full_ = false;
    } else if (offset == 4) {
      b = kStatusSystemFlag | (output_full_ ? kStatusOutputFull : 0) |
          (pending_command_ ? kStatusCommandLast : 0);
    } else {
      b = 0xff;
    }
  }
}

void I8042::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  for (uint8_t v : data) {
    if (offset == 0) {
      Data(v);
    } else if (offset == 4) {
      Command(v);
    }
  }
}

void I8042::Output(uint8_t value) {
  output_ = value;
  output_full_ = true;
}

void I8042::Command(uint8_t cmd) {
  bool reset = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_command_ = 0;
    switch (cmd) {
      case kCmdReadCommandByte:
        Output(command_byte_);
        break;
      case kCmdWriteCommandByte:
      case kCmdWriteOutputPort:
        pending_command_ = cmd;
        break;
      case kCmdSelfTest:
        Output(0x55);
        break;
      case kCmdTestKbdPort:
      case kCmdTestAuxPort:
        Output(0x00);
        break;
      case kCmdReadOutputPort:
        Output(0x01);  // reset line high (not asserted), A20 off
        break;
      default:
        // Pulse commands: a 0 in bit 0 pulses the CPU reset line.
        reset = cmd >= kCmdPulseFirst && !(cmd & 1);
        break;
    }
  }
  if (reset && reset_) reset_();
}

void I8042::Data(uint8_t value) {
  bool reset = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_command_ == kCmdWriteCommandByte) {
      command_byte_ = value;
    } else if (pending_command_ == kCmdWriteOutputPort) {
      reset = !(value & 1);  // bit 0 is the (active-low) reset line
    }
    // Bytes for a keyboard go nowhere: none is attached.
    pending_command_ = 0;
  }
  if (reset && reset_) reset_();
}

// ------------------------------------------------------------------ RTC

CmosRtc::CmosRtc(std::function<std::time_t()> now) : now_(std::move(now)) {
  if (!now_) now_ = [] { return std::time(nullptr); };
  ram_[0x0a] = 0x26;  // 32.768 kHz time base, 1024 Hz periodic rate
  ram_[0x0b] = 0x02;  // 24-hour, BCD, no interrupts
  ram_[0x0d] = 0x80;  // RAM and time valid (battery good)
}

uint8_t CmosRtc::ReadIndexed(uint8_t index) {
  std::time_t t = now_();
  std::tm tm{};
  gmtime_r(&t, &tm);
  switch (index) {
    case 0x00:
      return ToBcd(tm.tm_sec);
    case 0x02:
      return ToBcd(tm.tm_min);
    case 0x04:
      return ToBcd(tm.tm_hour);
    case 0x06:
      return ToBcd(tm.tm_wday + 1);
    case 0x07:
      return ToBcd(tm.tm_mday);
    case 0x08:
      return ToBcd(tm.tm_mon + 1);
    case 0x09:
      return ToBcd(tm.tm_year % 100);
    case 0x32:
      return ToBcd((tm.tm_year + 1900) / 100);
    case 0x0a:
      return ram_[0x0a] & 0x7f;  // never "update in progress"
    case 0x0c:
      return 0;  // no interrupt flags
    default:
      return ram_[index & 0x7f];
  }
}

void CmosRtc::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint8_t& b : data) b = offset == 1 ? ReadIndexed(index_) : 0xff;
}

void CmosRtc::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint8_t v : data) {
    if (offset == 0) {
      index_ = v & 0x7f;  // bit 7 is the NMI mask
    } else if (index_ == 0x0a) {
      ram_[0x0a] = v & 0x7f;
    } else if (index_ == 0x0b || index_ >= 0x0e) {
      // Time registers follow the host clock and are not settable; status
      // B and the CMOS RAM keep what the guest writes.
      ram_[index_] = v;
    }
  }
}

// ---------------------------------------------------- reset / sleep / POST

void ResetControl::Read(uint64_t, absl::Span<uint8_t> data) {
  for (uint8_t& b : data) b = value_.load(std::memory_order_relaxed);
}

void ResetControl::Write(uint64_t, absl::Span<const uint8_t> data) {
  for (uint8_t v : data) {
    value_.store(v & 0x0e, std::memory_order_relaxed);
    if ((v & 0x04) && reset_) reset_();  // RST_CPU
  }
}

void AcpiSleepControl::Read(uint64_t, absl::Span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());  // WAK_STS clear, nothing pending
}

void AcpiSleepControl::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (offset != 0 || data.empty()) return;  // status writes clear nothing here
  const uint8_t v = data[0];
  constexpr uint8_t kSlpEn = 0x20;
  const uint8_t slp_typ = (v >> 2) & 0x7;
  if ((v & kSlpEn) && slp_typ == s5_slp_typ_ && power_off_) power_off_();
}

void PostCodePort::Read(uint64_t, absl::Span<uint8_t> data) {
  std::memset(data.data(), 0xff, data.size());
}

}  // namespace ssihv::kvm
