// main() for test binaries. Binaries built with ssihv_add_test(... REQUIRES
// <dev>) get SSIHV_TEST_REQUIRES defined and probe the device first (exit 77 =
// skipped, see device.h).
#include "ssihv/testing/device.h"
#include "ssihv/testing/run_catch.h"

int main(int argc, char** argv) {
#ifdef SSIHV_TEST_REQUIRES
  if (int rc = ssihv::testing::CheckDeviceOrSkip(SSIHV_TEST_REQUIRES);
      rc != 0) {
    return rc;
  }
#endif
  return ssihv::testing::RunCatch(argc, argv);
}
