// main() of linux_boot_test and the distributed VM's lab tests: like the
// suite's REQUIRES-kvm main (skip with 77 without /dev/kvm, fail under
// SSIHV_REQUIRE_KVM=1), and it also skips outside the lab VM unless asked: on
// the nested dev VMs a Linux guest under KVM stalls in its decompressor (QEMU's
// too), so the Linux boot is defined in the lab (tests/lab/run.sh sets
// SSIHV_LAB=1).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ssihv/testing/device.h"
#include "ssihv/testing/run_catch.h"

namespace {
bool EnvIs(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (int rc = ssihv::testing::CheckDeviceOrSkip("kvm"); rc != 0) return rc;
  if (!EnvIs("SSIHV_LAB", "1") && !EnvIs("SSIHV_REQUIRE_KVM", "1") &&
      !EnvIs("SSIHV_LINUX_BOOT", "1")) {
    std::printf(
        "SKIP kvm: the Linux boot runs in the lab VM (tests/lab/run.sh); "
        "set SSIHV_LINUX_BOOT=1 to run it on this host's KVM\n");
    return 77;
  }
  return ssihv::testing::RunCatch(argc, argv);
}
