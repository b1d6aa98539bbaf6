#include "ssihv/kvm/uart16550.h"

namespace ssihv::kvm {
namespace {

constexpr uint8_t kIerRdi = 0x01;   // received data available
constexpr uint8_t kIerThri = 0x02;  // transmitter holding register empty
constexpr uint8_t kIerRlsi = 0x04;  // receiver line status
constexpr uint8_t kIerMsi = 0x08;   // modem status

constexpr uint8_t kIirNoInt = 0x01;
constexpr uint8_t kIirMsi = 0x00;
constexpr uint8_t kIirThri = 0x02;
constexpr uint8_t kIirRdi = 0x04;
constexpr uint8_t kIirRlsi = 0x06;
constexpr uint8_t kIirFifoEnabled = 0xc0;

constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;

constexpr uint8_t kLcrDlab = 0x80;

constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;

constexpr uint8_t kLsrDr = 0x01;
constexpr uint8_t kLsrOe = 0x02;
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;

constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;

}  // namespace

Uart16550::Uart16550(std::function<void(uint8_t)> output,
                     std::function<void(bool)> irq)
    : output_(std::move(output)), irq_(std::move(irq)) {}

void Uart16550::Read(uint64_t offset, absl::Span<uint8_t> data) {
  // Byte registers; a wider access reads consecutive registers.
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = ReadRegister(static_cast<uint8_t>((offset + i) & 7));
  }
}

void Uart16550::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    WriteRegister(static_cast<uint8_t>((offset + i) & 7), data[i]);
  }
}

uint8_t Uart16550::ComputeIir() const {
  uint8_t id = kIirNoInt;
  const uint8_t msr_signals = (mcr_ & kMcrLoop) ? 0 : msr_deltas_;
  if ((ier_ & kIerRlsi) && (lsr_errors_ & kLsrOe)) {
    id = kIirRlsi;
  } else if ((ier_ & kIerRdi) && !rx_.empty()) {
    id = kIirRdi;
  } else if ((ier_ & kIerThri) && thr_interrupt_) {
    id = kIirThri;
  } else if ((ier_ & kIerMsi) && msr_signals) {
    id = kIirMsi;
  }
  return id | ((fcr_ & kFcrEnable) ? kIirFifoEnabled : 0);
}

void Uart16550::UpdateIrq() {
  bool level = (ComputeIir() & kIirNoInt) == 0;
  if (level != irq_line_) {
    irq_line_ = level;
    if (irq_) irq_(level);
  }
}

void Uart16550::Transmit(uint8_t byte) {
  if (mcr_ & kMcrLoop) {
    // Loopback: the byte comes straight back to the receiver.
    if (rx_.size() < kRxCapacity) {
      rx_.push_back(byte);
    } else {
      lsr_errors_ |= kLsrOe;
    }
  } else if (output_) {
    output_(byte);
  }
  // The byte left at once: the holding register is empty again.
  thr_interrupt_ = true;
}

uint8_t Uart16550::ReadRegister(uint8_t reg) {
  std::lock_guard<std::mutex> lock(mu_);
  uint8_t value = 0;
  switch (reg) {
    case kRbrThrDll:
      if (lcr_ & kLcrDlab) {
        value = divisor_ & 0xff;
      } else if (!rx_.empty()) {
        value = rx_.front();
        rx_.pop_front();
        rx_space_.notify_one();
      }
      break;
    case kIerDlm:
      value = (lcr_ & kLcrDlab) ? divisor_ >> 8 : ier_;
      break;
    case kIirFcr:
      value = ComputeIir();
      // Reading IIR while it reports THRE acknowledges that interrupt.
      if ((value & 0x0f) == kIirThri) thr_interrupt_ = false;
      break;
    case kLcr:
      value = lcr_;
      break;
    case kMcr:
      value = mcr_;
      break;
    case kLsr:
      value = kLsrThre | kLsrTemt | lsr_errors_ | (rx_.empty() ? 0 : kLsrDr);
      lsr_errors_ = 0;
      break;
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback wires RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
        value = ((mcr_ & kMcrRts) ? kMsrCts : 0) |
                ((mcr_ & kMcrDtr) ? kMsrDsr : 0) |
                ((mcr_ & kMcrOut1) ? kMsrRi : 0) |
                ((mcr_ & kMcrOut2) ? kMsrDcd : 0);
      } else {
        // A console is always connected and ready.
        value = kMsrCts | kMsrDsr | kMsrDcd | msr_deltas_;
      }
      msr_deltas_ = 0;
      break;
    case kScr:
      value = scr_;
      break;
  }
  UpdateIrq();
  return value;
}

void Uart16550::WriteRegister(uint8_t reg, uint8_t value) {
  std::lock_guard<std::mutex> lock(mu_);
  switch (reg) {
    case kRbrThrDll:
      if (lcr_ & kLcrDlab) {
        divisor_ = (divisor_ & 0xff00) | value;
      } else {
        Transmit(value);
      }
      break;
    case kIerDlm:
      if (lcr_ & kLcrDlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0x00ff) | (value << 8));
      } else {
        // Enabling THRI while the transmitter is idle raises it again, as a
        // real 16550 does (Linux's UART_BUG_THRE test relies on it).
        if ((value & kIerThri) && !(ier_ & kIerThri)) thr_interrupt_ = true;
        ier_ = value & 0x0f;
      }
      break;
    case kIirFcr:
      fcr_ =
          value & 0xc9;  // enable, DMA mode, trigger level; clears self-reset
      if (value & kFcrClearRx) {
        rx_.clear();
        rx_space_.notify_one();
      }
      break;
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      mcr_ = value & 0x1f;
      break;
    case kLsr:
    case kMsr:
      break;  // read-only (factory test registers)
    case kScr:
      scr_ = value;
      break;
  }
  UpdateIrq();
}

size_t Uart16550::Receive(absl::Span<const uint8_t> bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (mcr_ & kMcrLoop) return bytes.size();  // line disconnected in loopback
  size_t n = std::min(bytes.size(), kRxCapacity - rx_.size());
  rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + n);
  UpdateIrq();
  return n;
}

bool Uart16550::WaitForRxSpace(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return rx_space_.wait_for(lock, timeout,
                            [this] { return rx_.size() < kRxCapacity; });
}

bool Uart16550::irq_level() const {
  std::lock_guard<std::mutex> lock(mu_);
  return irq_line_;
}

}  // namespace ssihv::kvm
