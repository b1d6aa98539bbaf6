// The held read-ahead markers' pool (src/dsm/held_pages.h).
#include "dsm/held_pages.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace ssihv::pager::dsm {
namespace {

std::vector<uint8_t> PageOf(uint8_t value) {
  return std::vector<uint8_t>(HeldPages::kPageBytes, value);
}

TEST_CASE("HeldPages: a held page's bytes come back once") {
  HeldPages held(4);
  const std::vector<uint8_t> a = PageOf(0xa1);
  REQUIRE(held.Hold(7, a.data(), 100));
  CHECK_FALSE(held.Hold(7, a.data(), 101));  // held already
  CHECK(held.Contains(7));
  std::vector<uint8_t> out = PageOf(0);
  REQUIRE(held.Peek(7, out.data()));
  CHECK(out == a);
  CHECK(held.size() == 1);  // Peek keeps it
  out = PageOf(0);
  bool zero = true;
  REQUIRE(held.Take(7, out.data(), &zero));
  CHECK_FALSE(zero);
  CHECK(out == a);
  CHECK_FALSE(held.Contains(7));
  CHECK_FALSE(held.Take(7, out.data(), &zero));
  CHECK(held.size() == 0);
}

TEST_CASE("HeldPages: a page of zeros keeps no bytes but reads as zeros") {
  HeldPages held(2);
  REQUIRE(held.Hold(3, nullptr, 0));
  std::vector<uint8_t> out = PageOf(0x77);
  REQUIRE(held.Peek(3, out.data()));
  CHECK(out == PageOf(0));
  out = PageOf(0x77);
  bool zero = false;
  REQUIRE(held.Take(3, out.data(), &zero));
  CHECK(zero);
  CHECK(out == PageOf(0x77));  // untouched: the caller knows it is zeros
}

TEST_CASE("HeldPages: the pool is bounded; dropped and taken buffers return") {
  HeldPages held(2);
  const std::vector<uint8_t> a = PageOf(1), b = PageOf(2), c = PageOf(3);
  REQUIRE(held.Hold(10, a.data(), 0));
  REQUIRE(held.Hold(11, b.data(), 0));
  CHECK_FALSE(held.Hold(12, c.data(), 0));  // full
  CHECK(held.Drop(10));
  CHECK_FALSE(held.Drop(10));
  REQUIRE(held.Hold(12, c.data(), 0));
  // Buffers are reused without mixing pages up.
  std::vector<uint8_t> out = PageOf(0);
  bool zero = false;
  REQUIRE(held.Take(11, out.data(), &zero));
  CHECK(out == b);
  REQUIRE(held.Take(12, out.data(), &zero));
  CHECK(out == c);
  CHECK(held.size() == 0);
}

TEST_CASE("HeldPages: the pages held longest come first, up to a bound") {
  HeldPages held(8);
  REQUIRE(held.Hold(5, nullptr, 300));
  REQUIRE(held.Hold(6, nullptr, 100));
  REQUIRE(held.Hold(7, nullptr, 200));
  REQUIRE(held.Hold(8, nullptr, 900));
  CHECK(held.HeldBefore(500, 8) == std::vector<uint64_t>{6, 7, 5});
  CHECK(held.HeldBefore(500, 2) == std::vector<uint64_t>{6, 7});
  CHECK(held.HeldBefore(100, 8).empty());
}

}  // namespace
}  // namespace ssihv::pager::dsm
