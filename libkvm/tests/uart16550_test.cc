#include "ssihv/kvm/uart16550.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace ssihv::kvm {
namespace {

using U = Uart16550;

struct Harness {
  std::string out;
  std::vector<bool> irq_changes;
  Uart16550 uart{[this](uint8_t b) { out.push_back(static_cast<char>(b)); },
                 [this](bool level) { irq_changes.push_back(level); }};
  bool irq() const { return irq_changes.empty() ? false : irq_changes.back(); }
};

TEST_CASE("scratch and divisor latch registers hold their values") {
  Harness h;
  h.uart.WriteRegister(U::kScr, 0x5a);
  CHECK(h.uart.ReadRegister(U::kScr) == 0x5a);
  h.uart.WriteRegister(U::kLcr, 0x80);  // DLAB
  h.uart.WriteRegister(U::kRbrThrDll, 0x01);
  h.uart.WriteRegister(U::kIerDlm, 0x00);
  CHECK(h.uart.ReadRegister(U::kRbrThrDll) == 0x01);
  CHECK(h.uart.ReadRegister(U::kIerDlm) == 0x00);
  h.uart.WriteRegister(U::kLcr, 0x03);  // 8N1, DLAB off
  CHECK(h.uart.ReadRegister(U::kLcr) == 0x03);
  CHECK(h.out.empty());  // divisor writes are not data
  CHECK(h.uart.ReadRegister(U::kIerDlm) == 0);
}

TEST_CASE("Linux's 8250 probe: loopback MSR and FIFO identification") {
  Harness h;
  // serial8250 autoconfig: MCR = LOOP | OUT2 | RTS must read MSR 0x90.
  h.uart.WriteRegister(U::kMcr, 0x1a);
  CHECK((h.uart.ReadRegister(U::kMsr) & 0xf0) == 0x90);
  h.uart.WriteRegister(U::kMcr, 0x00);
  CHECK((h.uart.ReadRegister(U::kMsr) & 0xb0) == 0xb0);  // CTS DSR DCD
  // FCR enable -> IIR bits 7:6 = 11 (a 16550A).
  h.uart.WriteRegister(U::kIirFcr, 0x01);
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0xc0) == 0xc0);
  h.uart.WriteRegister(U::kIirFcr, 0x00);
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0xc0) == 0x00);
}

TEST_CASE("transmit: bytes go out, THRE interrupt as a 16550 raises it") {
  Harness h;
  CHECK((h.uart.ReadRegister(U::kLsr) & 0x60) == 0x60);  // THRE, TEMT
  h.uart.WriteRegister(U::kRbrThrDll, 'h');
  h.uart.WriteRegister(U::kRbrThrDll, 'i');
  CHECK(h.out == "hi");
  CHECK_FALSE(h.irq());  // THRI not enabled
  h.uart.WriteRegister(U::kIerDlm, 0x02);
  // Enabling THRI with an idle transmitter interrupts at once...
  CHECK(h.irq());
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0x0f) == 0x02);
  // ...and reading IIR acknowledged it.
  CHECK_FALSE(h.irq());
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0x01) == 0x01);
  // UART_BUG_THRE test: IER off then on re-asserts.
  h.uart.WriteRegister(U::kIerDlm, 0x00);
  h.uart.WriteRegister(U::kIerDlm, 0x02);
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0x0f) == 0x02);
  // Each transmitted byte raises THRE again.
  h.uart.WriteRegister(U::kRbrThrDll, '!');
  CHECK(h.irq());
  CHECK(h.out == "hi!");
}

TEST_CASE("receive: data ready, RDI interrupt until the FIFO is drained") {
  Harness h;
  const uint8_t in[] = {'a', 'b'};
  CHECK(h.uart.Receive(in) == 2);
  CHECK((h.uart.ReadRegister(U::kLsr) & 0x01) == 0x01);
  CHECK_FALSE(h.irq());  // RDI disabled
  h.uart.WriteRegister(U::kIerDlm, 0x01);
  CHECK(h.irq());
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0x0f) == 0x04);
  CHECK(h.uart.ReadRegister(U::kRbrThrDll) == 'a');
  CHECK(h.irq());
  CHECK(h.uart.ReadRegister(U::kRbrThrDll) == 'b');
  CHECK_FALSE(h.irq());
  CHECK((h.uart.ReadRegister(U::kLsr) & 0x01) == 0);
  CHECK(h.uart.ReadRegister(U::kRbrThrDll) == 0);  // empty reads 0
  // The line went up and down exactly twice in all.
  CHECK(h.irq_changes == std::vector<bool>{true, false});
}

TEST_CASE("RX priority over THRE, FCR clears the receive FIFO") {
  Harness h;
  h.uart.WriteRegister(U::kIerDlm, 0x03);
  const uint8_t in[] = {'x'};
  h.uart.Receive(in);
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0x0f) == 0x04);
  h.uart.WriteRegister(U::kIirFcr, 0x03);  // enable + clear RX
  CHECK((h.uart.ReadRegister(U::kLsr) & 0x01) == 0);
  CHECK((h.uart.ReadRegister(U::kIirFcr) & 0x0f) == 0x02);  // THRE now
}

TEST_CASE("the receive buffer is bounded and loopback echoes") {
  Harness h;
  std::vector<uint8_t> big(Uart16550::kRxCapacity + 10, 'z');
  CHECK(h.uart.Receive(big) == Uart16550::kRxCapacity);
  CHECK_FALSE(h.uart.WaitForRxSpace(std::chrono::milliseconds(0)));
  h.uart.ReadRegister(U::kRbrThrDll);
  CHECK(h.uart.WaitForRxSpace(std::chrono::milliseconds(0)));

  Harness loop;
  loop.uart.WriteRegister(U::kMcr, 0x10);
  loop.uart.WriteRegister(U::kRbrThrDll, 'q');
  CHECK(loop.out.empty());
  CHECK(loop.uart.ReadRegister(U::kRbrThrDll) == 'q');
}

TEST_CASE("bus access through the BusDevice interface") {
  Harness h;
  uint8_t b = 'k';
  h.uart.Write(U::kRbrThrDll, absl::MakeConstSpan(&b, 1));
  uint8_t lsr = 0;
  h.uart.Read(U::kLsr, absl::MakeSpan(&lsr, 1));
  CHECK(h.out == "k");
  CHECK((lsr & 0x60) == 0x60);
}

}  // namespace
}  // namespace ssihv::kvm
