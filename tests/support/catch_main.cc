// Catch2 main shared by every test binary. Binaries built with
// ssihv_add_test(... REQUIRES <dev>) get SSIHV_TEST_REQUIRES defined and
// probe the device first (exit 77 = skipped, see device.h).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#ifdef SSIHV_TEST_REQUIRES
#include "ssihv/testing/device.h"
#endif

int main(int argc, char** argv) {
#ifdef SSIHV_TEST_REQUIRES
  if (int rc = ssihv::testing::CheckDeviceOrSkip(SSIHV_TEST_REQUIRES); rc != 0) {
    return rc;
  }
#endif
  return Catch::Session().run(argc, argv);
}
