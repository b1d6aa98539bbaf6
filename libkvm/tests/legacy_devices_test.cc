#include "ssihv/kvm/legacy_devices.h"

#include <catch2/catch.hpp>

namespace ssihv::kvm {
namespace {

uint8_t In(BusDevice& d, uint64_t off) {
  uint8_t v = 0;
  d.Read(off, absl::MakeSpan(&v, 1));
  return v;
}
void Out(BusDevice& d, uint64_t off, uint8_t v) {
  d.Write(off, absl::MakeConstSpan(&v, 1));
}

TEST_CASE("i8042: 0xfe on the command port resets (Linux reboot=k)") {
  int resets = 0;
  I8042 kbc([&] { ++resets; });
  CHECK((In(kbc, 4) & 0x04) == 0x04);  // system flag
  CHECK((In(kbc, 4) & 0x01) == 0);     // nothing to read
  Out(kbc, 4, 0xfe);
  CHECK(resets == 1);
  Out(kbc, 4, 0xff);  // pulse with bit 0 set: no reset line
  CHECK(resets == 1);
}

TEST_CASE("i8042: output-port write with bit 0 clear resets") {
  int resets = 0;
  I8042 kbc([&] { ++resets; });
  Out(kbc, 4, 0xd1);
  Out(kbc, 0, 0x01);
  CHECK(resets == 0);
  Out(kbc, 4, 0xd1);
  Out(kbc, 0, 0xfe);
  CHECK(resets == 1);
}

TEST_CASE("i8042: self test, command byte, unclaimed offsets") {
  I8042 kbc(nullptr);
  Out(kbc, 4, 0xaa);
  CHECK((In(kbc, 4) & 0x01) == 0x01);
  CHECK(In(kbc, 0) == 0x55);
  CHECK((In(kbc, 4) & 0x01) == 0);
  Out(kbc, 4, 0x60);
  Out(kbc, 0, 0x21);
  Out(kbc, 4, 0x20);
  CHECK(In(kbc, 0) == 0x21);
  CHECK(In(kbc, 2) == 0xff);
}

TEST_CASE("CMOS RTC reads the clock in BCD and keeps its RAM") {
  // 2024-02-29 13:45:59 UTC, a Thursday.
  CmosRtc rtc([] { return std::time_t{1709214359}; });
  auto reg = [&](uint8_t i) {
    Out(rtc, 0, i | 0x80);  // NMI-disable bit must not change the index
    return In(rtc, 1);
  };
  CHECK(reg(0x00) == 0x59);
  CHECK(reg(0x02) == 0x45);
  CHECK(reg(0x04) == 0x13);
  CHECK(reg(0x06) == 0x05);
  CHECK(reg(0x07) == 0x29);
  CHECK(reg(0x08) == 0x02);
  CHECK(reg(0x09) == 0x24);
  CHECK(reg(0x32) == 0x20);
  CHECK((reg(0x0a) & 0x80) == 0);  // no update in progress
  CHECK(reg(0x0b) == 0x02);        // 24h BCD
  CHECK(reg(0x0d) == 0x80);
  Out(rtc, 0, 0x40);
  Out(rtc, 1, 0x77);
  CHECK(reg(0x40) == 0x77);
  Out(rtc, 0, 0x00);
  Out(rtc, 1, 0x11);  // the clock is not settable
  CHECK(reg(0x00) == 0x59);
}

TEST_CASE("reset control register and ACPI sleep control") {
  int resets = 0;
  ResetControl cf9([&] { ++resets; });
  Out(cf9, 0, 0x02);
  CHECK(resets == 0);
  CHECK(In(cf9, 0) == 0x02);
  Out(cf9, 0, 0x06);
  CHECK(resets == 1);

  int offs = 0;
  AcpiSleepControl sleep(5, [&] { ++offs; });
  Out(sleep, 0, 5 << 2);  // SLP_TYP without SLP_EN
  CHECK(offs == 0);
  Out(sleep, 0, (3 << 2) | 0x20);  // another sleep state
  CHECK(offs == 0);
  Out(sleep, 0, (5 << 2) | 0x20);
  CHECK(offs == 1);
  CHECK(In(sleep, 1) == 0);

  PostCodePort post;
  Out(post, 0, 0x12);
  CHECK(In(post, 0) == 0xff);
}

}  // namespace
}  // namespace ssihv::kvm
