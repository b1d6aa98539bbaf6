#include "ssihv/testing/device.h"

#include <fcntl.h>
#include <infiniband/verbs.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::testing {

using base::LastErrnoStatus;
using base::UniqueFd;

absl::Status ProbeKvm() {
  UniqueFd fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!fd) return LastErrnoStatus("open /dev/kvm");
  int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat("KVM_GET_API_VERSION returned ", version));
  }
  return absl::OkStatus();
}

absl::Status ProbeRdma() {
  int num = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (list == nullptr) return LastErrnoStatus("ibv_get_device_list");
  absl::Status result = absl::NotFoundError("no RDMA device (ibv_get_device_list is empty)");
  for (int i = 0; i < num && !result.ok(); ++i) {
    ibv_context* ctx = ibv_open_device(list[i]);
    if (ctx == nullptr) {
      result = LastErrnoStatus(absl::StrCat("ibv_open_device ",
                                            ibv_get_device_name(list[i])));
      continue;
    }
    ibv_port_attr attr{};
    if (ibv_query_port(ctx, 1, &attr) == 0 && attr.state == IBV_PORT_ACTIVE) {
      result = absl::OkStatus();
    } else {
      result = absl::UnavailableError(absl::StrCat(
          ibv_get_device_name(list[i]), " port 1 is not ACTIVE"));
    }
    ibv_close_device(ctx);
  }
  ibv_free_device_list(list);
  return result;
}

absl::Status ProbeUffd() {
  UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (dev) {
    UniqueFd uffd(::ioctl(dev.get(), USERFAULTFD_IOC_NEW, O_CLOEXEC));
    if (uffd) return absl::OkStatus();
  }
  UniqueFd uffd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC)));
  if (!uffd) {
    return LastErrnoStatus("userfaultfd (via /dev/userfaultfd and syscall)");
  }
  return absl::OkStatus();
}

absl::Status ProbePromtool() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = absl::StrCat(
        end > start ? dirs.substr(start, end - start) : ".", "/promtool");
    if (::access(candidate.c_str(), X_OK) == 0) return absl::OkStatus();
    start = end + 1;
  }
  return absl::NotFoundError(
      "promtool not on PATH (Debian package prometheus: scripts/setup.sh)");
}

int CheckDeviceOrSkip(const std::string& device) {
  absl::Status st;
  if (device == "kvm") {
    st = ProbeKvm();
  } else if (device == "rdma") {
    st = ProbeRdma();
  } else if (device == "uffd") {
    st = ProbeUffd();
  } else if (device == "promtool") {
    st = ProbePromtool();
  } else {
    std::fprintf(stderr, "unknown device requirement '%s'\n", device.c_str());
    return 1;
  }
  if (st.ok()) return 0;
  std::string env = absl::StrCat("SSIHV_REQUIRE_", absl::AsciiStrToUpper(device));
  const char* required = std::getenv(env.c_str());
  if (required != nullptr && std::strcmp(required, "1") == 0) {
    std::printf("FAIL %s required (%s=1): %s\n", device.c_str(), env.c_str(),
                std::string(st.message()).c_str());
    return 1;
  }
  std::printf("SKIP %s: %s\n", device.c_str(), std::string(st.message()).c_str());
  return 77;
}

}  // namespace ssihv::testing
