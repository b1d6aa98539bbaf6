// State of one fault thread, shared by pager.cc and resolver.cc.
#ifndef SSIHV_PAGER_FAULT_THREAD_H_
#define SSIHV_PAGER_FAULT_THREAD_H_

#include <linux/userfaultfd.h>

#include <cstddef>
#include <thread>
#include <vector>

namespace ssihv::pager {

class Pager;

/// Messages read per read(2): one syscall drains a burst of faults.
inline constexpr size_t kReadBatch = 32;

struct FaultThread {
  Pager* pager = nullptr;
  int index = 0;
  std::thread thread;
  // Messages read while a resolution waited out EAGAIN (see
  // Resolver::RetryEagain); processed when the current fault returns.
  std::vector<uffd_msg> backlog;
};

/// The FaultThread running on this thread, or nullptr.
inline thread_local FaultThread* tls_fault_thread = nullptr;

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_FAULT_THREAD_H_
