#include "ssihv/base/thread_name.h"

#include <pthread.h>

namespace ssihv::base {

namespace {
constexpr size_t kMaxName = 15;  // TASK_COMM_LEN - 1
}  // namespace

void NameThread(std::thread& t, absl::string_view name) {
  const std::string cut(name.substr(0, kMaxName));
  (void)pthread_setname_np(t.native_handle(), cut.c_str());
}

std::string CurrentThreadName() {
  char buf[kMaxName + 1] = {};
  if (pthread_getname_np(pthread_self(), buf, sizeof(buf)) != 0) return "";
  return buf;
}

}  // namespace ssihv::base
