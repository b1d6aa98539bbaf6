#include "ssihv/kvm/bzimage.h"

#include <catch2/catch.hpp>
#include <random>

#include "fake_bzimage.h"

namespace ssihv::kvm {
namespace {

using testing::FakeBzImageOptions;
using testing::MakeFakeBzImage;

std::string ErrorOf(const std::vector<uint8_t>& image) {
  absl::StatusOr<BzImage> r = ParseBzImage(image);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

std::vector<uint8_t> Edited(std::function<void(setup_header*)> edit) {
  FakeBzImageOptions o;
  o.edit = std::move(edit);
  return MakeFakeBzImage(o);
}

TEST_CASE("a valid bzImage parses into its load layout") {
  FakeBzImageOptions o;
  o.setup_sects = 27;
  o.payload.assign(0x1234, 0xcc);
  std::vector<uint8_t> image = MakeFakeBzImage(o);
  absl::StatusOr<BzImage> r = ParseBzImage(image);
  REQUIRE(r.ok());
  CHECK(r->protocol == 0x020f);
  CHECK(r->load_address == 0x1000000);
  CHECK(r->entry64() == 0x1000200);
  CHECK(r->init_size == 0x400000);
  CHECK(r->kernel.data() == image.data() + 28 * 512);
  CHECK(r->kernel.size() == 0x1240);  // padded to 16 bytes
  CHECK(r->cmdline_max == 2047);
  CHECK(r->initrd_addr_max == 0x7fffffff);
  CHECK(r->can_load_above_4g);
  CHECK(r->header_length == 0x26c - 0x1f1);
}

TEST_CASE("setup_sects 0 means 4 sectors") {
  FakeBzImageOptions o;
  o.setup_sects = 0;
  std::vector<uint8_t> image = MakeFakeBzImage(o);
  absl::StatusOr<BzImage> r = ParseBzImage(image);
  REQUIRE(r.ok());
  CHECK(r->kernel.data() == image.data() + 5 * 512);
}

TEST_CASE("truncated images are refused with the sizes involved") {
  std::vector<uint8_t> image = MakeFakeBzImage();
  CHECK_THAT(
      ErrorOf(std::vector<uint8_t>(image.begin(), image.begin() + 0x200)),
      Catch::Contains("truncated"));
  // Cut inside the setup code: the kernel would be empty.
  CHECK_THAT(
      ErrorOf(std::vector<uint8_t>(image.begin(), image.begin() + 5 * 512)),
      Catch::Contains("setup code"));
  // Cut inside the kernel: syssize promises more than the file has.
  std::vector<uint8_t> cut(image.begin(), image.end() - 64);
  CHECK_THAT(ErrorOf(cut), Catch::Contains("truncated") &&
                               Catch::Contains("protected-mode kernel"));
  CHECK_THAT(ErrorOf({}), Catch::Contains("truncated"));
}

TEST_CASE("corrupt or unsupported headers name the field") {
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->boot_flag = 0x1234; })),
             Catch::Contains("boot_flag"));
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->header = 0; })),
             Catch::Contains("HdrS"));
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->version = 0x020b; })),
             Catch::Contains("2.11"));
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->loadflags = 0; })),
             Catch::Contains("LOADED_HIGH"));
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->xloadflags = 0; })),
             Catch::Contains("XLF_KERNEL_64"));
  CHECK_THAT(
      ErrorOf(Edited([](setup_header* h) { h->relocatable_kernel = 0; })),
      Catch::Contains("relocatable"));
  CHECK_THAT(
      ErrorOf(Edited([](setup_header* h) { h->kernel_alignment = 0x300000; })),
      Catch::Contains("kernel_alignment"));
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->init_size = 16; })),
             Catch::Contains("init_size"));
  CHECK_THAT(
      ErrorOf(Edited([](setup_header* h) { h->pref_address = 0x1001000; })),
      Catch::Contains("pref_address"));
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->syssize = 0; })),
             Catch::Contains("truncated"));
  CHECK_THAT(ErrorOf(Edited([](setup_header* h) { h->jump = 0x00eb; })),
             Catch::Contains("header length"));
}

TEST_CASE("random header corruption never crashes the parser") {
  const std::vector<uint8_t> good = MakeFakeBzImage();
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> image = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      image[0x1f1 + rng() % (0x270 - 0x1f1)] = static_cast<uint8_t>(rng());
    }
    if (rng() % 4 == 0) image.resize(rng() % image.size());
    absl::StatusOr<BzImage> r = ParseBzImage(image);
    if (r.ok()) {
      // Whatever passes must describe a kernel inside the image.
      REQUIRE(r->kernel.data() >= image.data());
      REQUIRE(r->kernel.data() + r->kernel.size() ==
              image.data() + image.size());
      REQUIRE(r->init_size >= r->kernel.size());
    } else {
      REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace ssihv::kvm
