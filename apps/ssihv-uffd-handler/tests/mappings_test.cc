#include "mappings.h"

#include <catch2/catch.hpp>
#include <string>

namespace ssihv::uffd_handler {
namespace {

std::string Message(const absl::StatusOr<std::vector<GuestRegionMapping>>& r) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST_CASE("CompleteJsonLength finds the end of the first value") {
  CHECK(CompleteJsonLength("") == 0);
  CHECK(CompleteJsonLength("  [") == 0);
  CHECK(CompleteJsonLength("[{\"a\": 1}") == 0);
  CHECK(CompleteJsonLength("[{\"a\": 1}]") == 10);
  CHECK(CompleteJsonLength(" [] trailing") == 3);
  // Brackets inside strings, escaped quotes.
  CHECK(CompleteJsonLength("[\"]\\\"]\"") == 0);
  CHECK(CompleteJsonLength("[\"]\\\"]\"]") == 8);
  CHECK(CompleteJsonLength("{\"x\": [1, {\"y\": \"}\"}]}") == 22);
  // An unbalanced closer ends it: the parser reports the garbage.
  CHECK(CompleteJsonLength("]") == 1);
  CHECK(CompleteJsonLength("12 ") == 2);
}

TEST_CASE("Firecracker's handshake: both page size fields, or either") {
  const std::string both =
      R"([{"base_host_virt_addr": 140737488351232, "size": 8192,
           "offset": 4096, "page_size": 4096, "page_size_kib": 4096},
          {"base_host_virt_addr": 4096, "size": 4096, "offset": 0,
           "page_size": 4096}])";
  auto r = ParseMappings(both, 3 * 4096);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].base_host_virt_addr == 140737488351232ull);
  CHECK((*r)[0].size == 8192);
  CHECK((*r)[0].offset == 4096);
  CHECK((*r)[0].page_size == 4096);
  auto old = ParseMappings(
      R"([{"base_host_virt_addr": 4096, "size": 4096, "offset": 0,
           "page_size_kib": 4096, "future_field": true}])",
      4096);
  REQUIRE(old.ok());
  CHECK((*old)[0].page_size == 4096);
}

TEST_CASE("Bad handshakes name the region and field") {
  auto parse = [](const std::string& region, uint64_t memory = 1 << 20) {
    return ParseMappings("[" + region + "]", memory);
  };
  CHECK(Message(ParseMappings("[", 4096)).find("not valid JSON") !=
        std::string::npos);
  CHECK(Message(ParseMappings("{}", 4096)).find("non-empty JSON array") !=
        std::string::npos);
  CHECK(Message(parse("7")) == "regions[0]: must be an object, got 7");
  CHECK(Message(parse(R"({"size": 4096, "offset": 0, "page_size": 4096})")) ==
        "regions[0].base_host_virt_addr: missing");
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 4096.5,
                          "offset": 0, "page_size": 4096})")) ==
        "regions[0].size: must be an unsigned integer, got 4096.5");
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 4096,
                          "offset": 0})")) ==
        "regions[0].page_size: missing (nor page_size_kib)");
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 4096,
                          "offset": 0, "page_size": 4096,
                          "page_size_kib": 8192})")) ==
        "regions[0].page_size_kib: 8192 differs from page_size 4096");
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 4096,
                          "offset": 0, "page_size": 12288})")) ==
        "regions[0].page_size: 12288 is not a power of two");
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 2097152,
                          "offset": 0, "page_size": 2097152})",
                      4 << 20))
            .find("regions[0].page_size: 2097152: only 4096-byte pages") == 0);
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 0,
                          "offset": 0, "page_size": 4096})")) ==
        "regions[0].size: 0 is not a positive multiple of the 4096-byte page");
  CHECK(Message(parse(R"({"base_host_virt_addr": 18446744073709547520,
                          "size": 8192, "offset": 0, "page_size": 4096})"))
            .find("the region wraps") != std::string::npos);
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 4096,
                          "offset": 100, "page_size": 4096})")) ==
        "regions[0].offset: 100 is not a multiple of the page");
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 8192,
                          "offset": 4096, "page_size": 4096})",
                      8192)) ==
        "regions[0].offset: [4096, 4096 + 8192) exceeds the memory of 8192 "
        "bytes");
  CHECK(Message(parse(R"({"base_host_virt_addr": 0, "size": 4096,
                          "offset": 18446744073709547520,
                          "page_size": 4096})"))
            .find("exceeds the memory") != std::string::npos);
}

TEST_CASE("Regions must not overlap in the VM nor in the memory") {
  const std::string a =
      R"({"base_host_virt_addr": 65536, "size": 8192, "offset": 0,
          "page_size": 4096})";
  CHECK(Message(ParseMappings(
            "[" + a + R"(, {"base_host_virt_addr": 61440, "size": 8192,
                       "offset": 8192, "page_size": 4096}])",
            1 << 20)) ==
        "regions[0].base_host_virt_addr: overlaps regions[1] in the VM's "
        "address space");
  CHECK(Message(ParseMappings(
            "[" + a + R"(, {"base_host_virt_addr": 0, "size": 8192,
                       "offset": 4096, "page_size": 4096}])",
            1 << 20)) ==
        "regions[1].offset: overlaps regions[0] in the memory");
  // Adjacent is fine.
  CHECK(ParseMappings("[" + a + R"(, {"base_host_virt_addr": 73728,
                       "size": 8192, "offset": 8192, "page_size": 4096}])",
                      1 << 20)
            .ok());
}

}  // namespace
}  // namespace ssihv::uffd_handler
