#include "ssihv/kvm/bus.h"

#include <catch2/catch.hpp>
#include <memory>
#include <vector>

namespace ssihv::kvm {
namespace {

class Recorder : public BusDevice {
 public:
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i)
      data[i] = static_cast<uint8_t>(offset + i);
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    writes.push_back({offset, data.size()});
  }
  std::vector<std::pair<uint64_t, size_t>> writes;
};

TEST_CASE("Bus dispatches by range with device-relative offsets") {
  Bus bus("pio");
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  REQUIRE(bus.Register(0x3f8, 8, a).ok());
  REQUIRE(bus.Register(0x60, 5, b).ok());
  CHECK(bus.Register(0x3fc, 8, b).code() == absl::StatusCode::kAlreadyExists);
  uint8_t buf[2];
  CHECK(bus.Read(0x3fd, absl::MakeSpan(buf, 1)));
  CHECK(buf[0] == 5);
  CHECK(bus.Write(0x64, absl::MakeConstSpan(buf, 1)));
  REQUIRE(b->writes.size() == 1);
  CHECK(b->writes[0].first == 4);
  // Unclaimed: reads float high, writes vanish, both are counted.
  CHECK_FALSE(bus.Read(0x2f8, absl::MakeSpan(buf, 2)));
  CHECK(buf[0] == 0xff);
  CHECK(buf[1] == 0xff);
  // An access straddling the end of a device is not that device's.
  CHECK_FALSE(bus.Read(0x3ff, absl::MakeSpan(buf, 2)));
  CHECK_FALSE(bus.Write(0x80, absl::MakeConstSpan(buf, 1)));
  CHECK(bus.unclaimed_accesses() == 3);
}

}  // namespace
}  // namespace ssihv::kvm
