// The serial console: COM1's output to stdout (line-buffered, flushed within
// 10 ms otherwise so prompts show), stdin to COM1's receiver, the terminal in
// raw mode while the VM runs, and a Ctrl-A escape to stop the VM.
#ifndef SSIHV_APPS_VMM_CONSOLE_H_
#define SSIHV_APPS_VMM_CONSOLE_H_

#include <termios.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/kvm/uart16550.h"

namespace ssihv::vmm {

/// Watches the guest's console output for Linux's panic banner, so that a
/// panic followed by a reboot (panic=-1) is not reported as a clean reboot.
class PanicDetector {
 public:
  void Feed(uint8_t byte);
  bool panicked() const { return panicked_.load(std::memory_order_relaxed); }

 private:
  size_t matched_ = 0;
  std::atomic<bool> panicked_{false};
};

/// Console input: Ctrl-A x asks to stop, Ctrl-A Ctrl-A sends one Ctrl-A,
/// everything else passes through. Pure, for tests.
class EscapeFilter {
 public:
  /// Appends what the guest should receive for `byte` to `out`; returns
  /// true when the user asked to stop the VM.
  bool Feed(uint8_t byte, std::string* out);

 private:
  bool after_ctrl_a_ = false;
};

class Console {
 public:
  /// `in_fd` / `out_fd` are borrowed (normally 0 and 1). The escape and raw
  /// mode apply only when `in_fd` is a terminal.
  static absl::StatusOr<std::unique_ptr<Console>> Create(int in_fd, int out_fd);
  ~Console();

  /// COM1's output callback (called on vCPU threads, under the UART lock).
  void Output(uint8_t byte);
  /// Starts feeding input to `uart`; `on_escape` runs on Ctrl-A x.
  absl::Status Start(kvm::Uart16550* uart, std::function<void()> on_escape);
  /// Stops the input thread, flushes output, restores the terminal.
  void Stop();

  bool guest_panicked() const { return panic_.panicked(); }

 private:
  Console(int in_fd, int out_fd, base::UniqueFd wake_read,
          base::UniqueFd wake_write)
      : in_fd_(in_fd),
        out_fd_(out_fd),
        wake_read_(std::move(wake_read)),
        wake_write_(std::move(wake_write)) {}
  void InputLoop();
  void Flush();  // needs out_mu_
  void Deliver(const std::string& bytes);

  int in_fd_;
  int out_fd_;
  base::UniqueFd wake_read_;
  base::UniqueFd wake_write_;
  kvm::Uart16550* uart_ = nullptr;
  std::function<void()> on_escape_;
  std::thread input_;
  std::atomic<bool> stopping_{false};
  bool raw_ = false;
  termios saved_termios_{};
  std::mutex out_mu_;
  std::string pending_;
  PanicDetector panic_;
};

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_CONSOLE_H_
