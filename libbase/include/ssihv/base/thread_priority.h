// The priority of the threads that serve other nodes: the DSM's fault
// threads and sender, the transport's data and lane threads. On a host
// whose cores also run vCPU threads, a page request must not wait for a
// vCPU's time slice to end: with a lower nice value than the vCPU threads,
// the scheduler preempts the vCPU as soon as the service thread wakes
// (docs/PAGER.md, "Service thread priority"). Linux keeps a nice value per
// thread, so these calls affect the calling thread only.
#ifndef SSIHV_BASE_THREAD_PRIORITY_H_
#define SSIHV_BASE_THREAD_PRIORITY_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ssihv::base {

inline constexpr int kMinNice = -20;
inline constexpr int kMaxNice = 19;

/// Sets the calling thread's nice value (kMinNice..kMaxNice). Lowering it
/// needs CAP_SYS_NICE (or RLIMIT_NICE): PermissionDenied otherwise.
absl::Status SetCurrentThreadNice(int nice);

/// The calling thread's nice value.
absl::StatusOr<int> CurrentThreadNice();

/// For a service thread at its start: SetCurrentThreadNice(nice) unless
/// `nice` is 0 (the default: leave the inherited value). A failure is not
/// an error (the thread works at the inherited priority, only later under
/// load); it is logged as a warning once per process.
void ApplyServiceNice(int nice);

}  // namespace ssihv::base

#endif  // SSIHV_BASE_THREAD_PRIORITY_H_
