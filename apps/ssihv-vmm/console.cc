#include "console.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "ssihv/base/errno_status.h"
#include "ssihv/base/thread_name.h"

namespace ssihv::vmm {
namespace {

constexpr char kPanicBanner[] = "Kernel panic - not syncing";
constexpr uint8_t kCtrlA = 0x01;
constexpr size_t kFlushBytes = 4096;
constexpr int kFlushIntervalMs = 10;

void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // stdout gone: the guest keeps running regardless
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void PanicDetector::Feed(uint8_t byte) {
  // The banner's first letter does not recur in it, so restarting the match
  // at this byte is exact.
  if (byte == static_cast<uint8_t>(kPanicBanner[matched_])) {
    if (++matched_ == sizeof(kPanicBanner) - 1) {
      panicked_.store(true, std::memory_order_relaxed);
      matched_ = 0;
    }
  } else {
    matched_ = byte == static_cast<uint8_t>(kPanicBanner[0]) ? 1 : 0;
  }
}

bool EscapeFilter::Feed(uint8_t byte, std::string* out) {
  if (after_ctrl_a_) {
    after_ctrl_a_ = false;
    if (byte == 'x' || byte == 'X') return true;
    out->push_back(static_cast<char>(byte));  // incl. a second Ctrl-A
    return false;
  }
  if (byte == kCtrlA) {
    after_ctrl_a_ = true;
    return false;
  }
  out->push_back(static_cast<char>(byte));
  return false;
}

absl::StatusOr<std::unique_ptr<Console>> Console::Create(int in_fd,
                                                         int out_fd) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    return base::LastErrnoStatus("pipe2 (console wake-up)");
  }
  return std::unique_ptr<Console>(
      new Console(in_fd, out_fd, base::UniqueFd(p[0]), base::UniqueFd(p[1])));
}

Console::~Console() { Stop(); }

void Console::Output(uint8_t byte) {
  panic_.Feed(byte);
  std::lock_guard<std::mutex> lock(out_mu_);
  pending_.push_back(static_cast<char>(byte));
  if (byte == '\n' || pending_.size() >= kFlushBytes) Flush();
}

void Console::Flush() {
  if (pending_.empty()) return;
  WriteAll(out_fd_, pending_.data(), pending_.size());
  pending_.clear();
}

absl::Status Console::Start(kvm::Uart16550* uart,
                            std::function<void()> on_escape) {
  uart_ = uart;
  on_escape_ = std::move(on_escape);
  if (::isatty(in_fd_) && ::tcgetattr(in_fd_, &saved_termios_) == 0) {
    termios raw = saved_termios_;
    // Keys go to the guest as typed (Ctrl-C included); the guest echoes.
    raw.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP |
                                          INLCR | IGNCR | ICRNL | IXON);
    raw.c_lflag &=
        ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    raw_ = ::tcsetattr(in_fd_, TCSANOW, &raw) == 0;
  }
  input_ = std::thread([this] { InputLoop(); });
  base::NameThread(input_, "vmm-console");
  return absl::OkStatus();
}

void Console::Deliver(const std::string& bytes) {
  absl::Span<const uint8_t> rest(reinterpret_cast<const uint8_t*>(bytes.data()),
                                 bytes.size());
  while (!rest.empty() && !stopping_.load(std::memory_order_relaxed)) {
    size_t n = uart_->Receive(rest);
    rest.remove_prefix(n);
    if (!rest.empty()) uart_->WaitForRxSpace(std::chrono::milliseconds(50));
  }
}

void Console::InputLoop() {
  EscapeFilter escape;
  bool input_open = true;
  while (!stopping_.load(std::memory_order_relaxed)) {
    pollfd fds[2] = {{wake_read_.get(), POLLIN, 0},
                     {input_open ? in_fd_ : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, kFlushIntervalMs);
    {
      std::lock_guard<std::mutex> lock(out_mu_);
      Flush();  // a prompt without a newline shows within 10 ms
    }
    if (n <= 0 || fds[0].revents) continue;
    if (!(fds[1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    uint8_t buf[256];
    ssize_t got = ::read(in_fd_, buf, sizeof(buf));
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {
      input_open = false;  // EOF (e.g. </dev/null): the guest keeps running
      continue;
    }
    std::string to_guest;
    for (ssize_t i = 0; i < got; ++i) {
      if (raw_ && escape.Feed(buf[i], &to_guest)) {
        if (on_escape_) on_escape_();
        return;
      }
      if (!raw_) to_guest.push_back(static_cast<char>(buf[i]));
    }
    Deliver(to_guest);
  }
}

void Console::Stop() {
  if (stopping_.exchange(true)) return;
  char c = 0;
  (void)!::write(wake_write_.get(), &c, 1);
  if (input_.joinable()) input_.join();
  {
    std::lock_guard<std::mutex> lock(out_mu_);
    Flush();
  }
  if (raw_) ::tcsetattr(in_fd_, TCSANOW, &saved_termios_);
}

}  // namespace ssihv::vmm
