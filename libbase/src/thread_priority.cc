#include "ssihv/base/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/log.h"

namespace ssihv::base {
namespace {

// PRIO_PROCESS with a thread id names that thread alone (setpriority(2),
// "BUGS": Linux's nice value is a per-thread attribute).
id_t CurrentTid() { return static_cast<id_t>(::syscall(SYS_gettid)); }

}  // namespace

absl::Status SetCurrentThreadNice(int nice) {
  if (nice < kMinNice || nice > kMaxNice) {
    return absl::InvalidArgumentError(
        absl::StrCat("SetCurrentThreadNice: nice ", nice, " is outside ",
                     kMinNice, "..", kMaxNice));
  }
  if (::setpriority(PRIO_PROCESS, CurrentTid(), nice) != 0) {
    return LastErrnoStatus(
        absl::StrCat("setpriority(thread, nice ", nice, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> CurrentThreadNice() {
  errno = 0;  // -1 is a valid nice value: errno tells an error
  const int nice = ::getpriority(PRIO_PROCESS, CurrentTid());
  if (nice == -1 && errno != 0) return LastErrnoStatus("getpriority(thread)");
  return nice;
}

void ApplyServiceNice(int nice) {
  if (nice == 0) return;
  absl::Status st = SetCurrentThreadNice(nice);
  if (st.ok()) return;
  static std::atomic<bool> warned{false};
  if (warned.exchange(true)) return;
  Log(LogLevel::kWarning, "service threads keep their priority: ", st.message(),
      " (remote page faults may wait behind vCPU threads; run with "
      "CAP_SYS_NICE, or set the nice value to 0 to silence this)");
}

}  // namespace ssihv::base
