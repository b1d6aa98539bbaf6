// Byte-for-byte comparison with the committed blobs of each topology in
// golden/. Regenerate them (after a deliberate change, reviewed with
// `iasl -d`) with libacpi/tests/golden/regenerate.sh.
#include <catch2/catch.hpp>
#include <string>

#include "ssihv/acpi/tables.h"
#include "ssihv/base/file_util.h"
#include "test_util.h"

namespace ssihv::acpi {
namespace {

TEST_CASE("Generated tables match the golden blobs") {
  for (const char* name : testing::kGoldenTopologies) {
    auto t = BuildAcpiTables(testing::GoldenConfig(name), AcpiOptions{}, {});
    REQUIRE(t.ok());
    for (const char* file :
         {"rsdp", "xsdt", "facp", "dsdt", "apic", "srat", "slit", "hmat"}) {
      const std::string path =
          std::string(SSIHV_ACPI_GOLDEN_DIR) + "/" + name + "/" + file + ".dat";
      INFO(path);
      auto golden = base::ReadFile(path);
      REQUIRE(golden.ok());
      std::string sig(file);
      for (char& c : sig) c = static_cast<char>(std::toupper(c));
      absl::Span<const uint8_t> mine =
          sig == "RSDP" ? absl::MakeConstSpan(t->rsdp) : t->Table(sig);
      REQUIRE(!mine.empty());
      CHECK(std::string(mine.begin(), mine.end()) == *golden);
    }
  }
}

}  // namespace
}  // namespace ssihv::acpi
