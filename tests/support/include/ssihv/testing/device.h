// Device probes for tests that need hardware (KVM, RDMA, userfaultfd).
#ifndef SSIHV_TESTING_DEVICE_H_
#define SSIHV_TESTING_DEVICE_H_

#include <string>

#include "absl/status/status.h"

namespace ssihv::testing {

/// OK when /dev/kvm opens read-write and answers KVM_GET_API_VERSION.
absl::Status ProbeKvm();
/// OK when a verbs device exists with at least one ACTIVE port.
absl::Status ProbeRdma();
/// OK when a userfaultfd can be created (via /dev/userfaultfd or syscall).
absl::Status ProbeUffd();
/// OK when `promtool` (Debian package prometheus) is an executable on PATH.
absl::Status ProbePromtool();

/// Runs the probe for `device` ("kvm", "rdma", "uffd", "promtool"). On failure
/// prints "SKIP <device>: <reason>" and returns 77, or, when
/// SSIHV_REQUIRE_<DEVICE>=1 is set, prints "FAIL <device> required: <reason>"
/// and returns 1. Returns 0 when the device is usable.
int CheckDeviceOrSkip(const std::string& device);

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_DEVICE_H_
