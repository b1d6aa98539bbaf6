// A 16550A UART (the PC's COM ports): the registers Linux's 8250 driver
// probes and uses, an unbounded-latency-free transmitter (bytes leave at
// once), a receive FIFO fed by the console, and an interrupt line driven
// level-wise (the irqchip sees raise/lower as the IIR changes).
// Register semantics: TI PC16550D datasheet; behaviour matches what Linux's
// serial8250 autoconfig and its THRE re-assertion test expect.
#ifndef SSIHV_KVM_UART16550_H_
#define SSIHV_KVM_UART16550_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "absl/types/span.h"
#include "ssihv/kvm/bus.h"

namespace ssihv::kvm {

inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint32_t kCom1Irq = 4;
inline constexpr uint64_t kUartPorts = 8;

class Uart16550 final : public BusDevice {
 public:
  /// `output` receives each transmitted byte; `irq` is called with the new
  /// level of the interrupt line whenever it changes. Both run with the
  /// UART's lock held (so they are ordered) and must not call back into it.
  Uart16550(std::function<void(uint8_t)> output, std::function<void(bool)> irq);

  // Register offsets.
  static constexpr uint8_t kRbrThrDll = 0;
  static constexpr uint8_t kIerDlm = 1;
  static constexpr uint8_t kIirFcr = 2;
  static constexpr uint8_t kLcr = 3;
  static constexpr uint8_t kMcr = 4;
  static constexpr uint8_t kLsr = 5;
  static constexpr uint8_t kMsr = 6;
  static constexpr uint8_t kScr = 7;

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

  /// Queues received bytes (from the console); returns how many fitted in
  /// the receive buffer (kRxCapacity).
  size_t Receive(absl::Span<const uint8_t> bytes);
  /// Waits until the receive buffer has room or `timeout` passes.
  bool WaitForRxSpace(std::chrono::milliseconds timeout);

  static constexpr size_t kRxCapacity = 4096;

  uint8_t ReadRegister(uint8_t reg);
  void WriteRegister(uint8_t reg, uint8_t value);
  bool irq_level() const;

 private:
  uint8_t ComputeIir() const;   // needs mu_
  void UpdateIrq();             // needs mu_
  void Transmit(uint8_t byte);  // needs mu_

  std::function<void(uint8_t)> output_;
  std::function<void(bool)> irq_;
  mutable std::mutex mu_;
  std::condition_variable rx_space_;
  std::deque<uint8_t> rx_;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t lsr_errors_ = 0;  // OE (bit 1) until LSR is read
  uint8_t msr_deltas_ = 0;
  uint8_t scr_ = 0;
  uint8_t fcr_ = 0;
  uint16_t divisor_ = 12;       // 9600 baud
  bool thr_interrupt_ = false;  // THRE interrupt pending (cleared by IIR read)
  bool irq_line_ = false;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_UART16550_H_
