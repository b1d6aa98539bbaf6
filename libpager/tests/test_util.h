// Helpers shared by the pager tests.
#ifndef SSIHV_PAGER_TESTS_TEST_UTIL_H_
#define SSIHV_PAGER_TESTS_TEST_UTIL_H_

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "ssihv/pager/pager.h"

namespace ssihv::pager::testing {

inline pid_t CurrentTid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

/// The kernel function thread `tid` of this process sleeps in ("0" when
/// running).
inline std::string Wchan(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/wchan");
  std::string s;
  std::getline(in, s);
  return s;
}

/// Waits (polling, up to 20 s) until thread `tid` is blocked in
/// handle_userfault, i.e. its fault is queued on a uffd. Returns false on
/// timeout. A condition wait, not a timing assertion.
inline bool WaitUntilBlockedInUffd(pid_t tid) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Wchan(tid) == "handle_userfault") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

/// Runs `access` (a first touch of registered memory) on a new thread and
/// returns the thread once its fault is queued on a uffd (REQUIRE: within
/// 20 s); the caller resolves the fault and joins it.
inline std::thread StartBlockedAccess(std::function<void()> access) {
  std::atomic<pid_t> tid{0};
  std::thread t([&tid, access = std::move(access)] {
    tid = CurrentTid();  // before the access: `tid` is gone once it blocks
    access();
  });
  while (tid == 0) std::this_thread::yield();
  REQUIRE(WaitUntilBlockedInUffd(tid));
  return t;
}

/// The byte pattern of page `gpa`: every 8-byte word holds gpa + offset.
inline void FillPattern(uint8_t* page, uint64_t gpa) {
  for (uint64_t off = 0; off < 4096; off += 8) {
    const uint64_t v = gpa + off;
    std::memcpy(page + off, &v, 8);
  }
}

inline bool HasPattern(const uint8_t* page, uint64_t gpa) {
  for (uint64_t off = 0; off < 4096; off += 8) {
    uint64_t v;
    std::memcpy(&v, page + off, 8);
    if (v != gpa + off) return false;
  }
  return true;
}

inline bool IsZero(const volatile uint8_t* page) {
  for (int i = 0; i < 4096; ++i) {
    if (page[i] != 0) return false;
  }
  return true;
}

/// Waits (up to 20 s) until `pred()` holds; false on timeout. For counters
/// updated just after the faulting thread was woken.
template <typename Pred>
bool WaitFor(Pred pred) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

/// Stats once every fault read has been accounted for: the resolving
/// thread records a fault just after the ioctl that woke the faulting
/// thread, so a snapshot taken right after an access may lag by one.
inline PagerStats Settled(Pager& pager) {
  PagerStats s;
  REQUIRE(WaitFor([&] {
    s = pager.Stats();
    return s.messages == s.total_faults() + s.eexist_races + s.errors;
  }));
  return s;
}

}  // namespace ssihv::pager::testing

#endif  // SSIHV_PAGER_TESTS_TEST_UTIL_H_
