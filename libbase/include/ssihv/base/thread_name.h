// Names a thread as `top -H`, `perf`, gdb and /proc/<pid>/task/*/comm show
// it, so the CPU time and the backtraces of a node's threads (data thread,
// fault threads, senders) can be told apart.
#ifndef SSIHV_BASE_THREAD_NAME_H_
#define SSIHV_BASE_THREAD_NAME_H_

#include <string>
#include <thread>

#include "absl/strings/string_view.h"

namespace ssihv::base {

/// Sets `t`'s name (the kernel keeps 15 bytes: longer names are cut).
/// Best effort: a thread that cannot be named keeps its inherited name.
void NameThread(std::thread& t, absl::string_view name);

/// The calling thread's name ("" if it cannot be read).
std::string CurrentThreadName();

}  // namespace ssihv::base

#endif  // SSIHV_BASE_THREAD_NAME_H_
