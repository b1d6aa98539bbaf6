#include "ssihv/kvm/guest_memory.h"

#include <catch2/catch.hpp>
#include <vector>

namespace ssihv::kvm {
namespace {

TEST_CASE("GuestMemory translates inside regions only") {
  std::vector<uint8_t> low(0x1000), high(0x2000);
  GuestMemory m;
  REQUIRE(m.AddRegion({0x10000, high.size(), high.data()}).ok());
  REQUIRE(m.AddRegion({0, low.size(), low.data()}).ok());
  CHECK(m.HostAddress(0, 1) == low.data());
  CHECK(m.HostAddress(0xfff, 1) == low.data() + 0xfff);
  CHECK(m.HostAddress(0xfff, 2) == nullptr);  // crosses the end
  CHECK(m.HostAddress(0x1000, 1) == nullptr);
  CHECK(m.HostAddress(0x10800, 0x800) == high.data() + 0x800);
  CHECK(m.HostAddress(0x11fff, 1) == high.data() + 0x1fff);
  CHECK(m.HostAddress(0x12000, 1) == nullptr);
  CHECK(m.regions().front().gpa == 0);  // sorted
}

TEST_CASE("GuestMemory refuses overlaps and reads/writes out of range") {
  std::vector<uint8_t> a(0x1000), b(0x1000);
  GuestMemory m;
  REQUIRE(m.AddRegion({0x1000, a.size(), a.data()}).ok());
  CHECK_FALSE(m.AddRegion({0x1800, b.size(), b.data()}).ok());
  CHECK_FALSE(m.AddRegion({0x0, 0, b.data()}).ok());
  CHECK_FALSE(m.AddRegion({~0ull - 10, 0x1000, b.data()}).ok());
  REQUIRE(m.WriteObject<uint32_t>(0x1ffc, 0xdeadbeef).ok());
  auto v = m.ReadObject<uint32_t>(0x1ffc);
  REQUIRE(v.ok());
  CHECK(*v == 0xdeadbeef);
  absl::Status st = m.WriteObject<uint32_t>(0x1ffe, 1);
  CHECK(st.code() == absl::StatusCode::kOutOfRange);
  CHECK_THAT(std::string(st.message()), Catch::Contains("0x1ffe"));
}

}  // namespace
}  // namespace ssihv::kvm
