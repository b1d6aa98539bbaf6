// Striped page locks for the DSM node. Every thread, fault threads
// included, may sleep on them because the node's pager negotiates no REMOVE
// events (engine.cc): a lock holder inside madvise (a zap) never waits for
// a fault thread to read an event, so a fault thread asleep on its lock
// cannot deadlock with it.
#ifndef SSIHV_PAGER_DSM_PAGE_LOCKS_H_
#define SSIHV_PAGER_DSM_PAGE_LOCKS_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>

namespace ssihv::pager::dsm {

class PageLocks {
 public:
  static constexpr uint64_t kStripes = 1024;  // power of two

  PageLocks() : stripes_(new Stripe[kStripes]) {}

  std::mutex& StripeOf(uint64_t page) {
    return stripes_[page & (kStripes - 1)].mu;
  }
  /// Per-page calls hold the gate shared; calls that touch many pages
  /// (recovery) hold it exclusive.
  std::shared_mutex& gate() { return gate_; }

 private:
  struct alignas(64) Stripe {
    std::mutex mu;
  };

  std::unique_ptr<Stripe[]> stripes_;
  std::shared_mutex gate_;
};

/// Holds the gate shared and one page's stripe for the scope.
class PageGuard {
 public:
  PageGuard(PageLocks& locks, uint64_t page)
      : gate_(locks.gate()), stripe_(locks.StripeOf(page)) {
    gate_.lock_shared();
    stripe_.lock();
  }
  ~PageGuard() {
    stripe_.unlock();
    gate_.unlock_shared();
  }
  PageGuard(const PageGuard&) = delete;
  PageGuard& operator=(const PageGuard&) = delete;

 private:
  std::shared_mutex& gate_;
  std::mutex& stripe_;
};

/// Holds the gate shared and the stripes of the pages [first, first +
/// count) for the scope: a call for a run of pages (directory/node.h,
/// "Runs"). Stripes are taken in ascending stripe order, the one order
/// every holder of more than one stripe uses, so two runs cannot deadlock
/// (every other holder takes one stripe only). count <= kStripes.
class RunGuard {
 public:
  RunGuard(PageLocks& locks, uint64_t first, uint64_t count)
      : locks_(locks), first_(first), count_(count) {
    locks.gate().lock_shared();
    ForEachStripe([](std::mutex& mu) { mu.lock(); });
  }
  ~RunGuard() {
    ForEachStripe([](std::mutex& mu) { mu.unlock(); });
    locks_.gate().unlock_shared();
  }
  RunGuard(const RunGuard&) = delete;
  RunGuard& operator=(const RunGuard&) = delete;

 private:
  // The run's stripes are consecutive modulo kStripes: when they wrap, the
  // wrapped part (low stripes) comes first.
  template <typename Fn>
  void ForEachStripe(Fn fn) {
    const uint64_t start = first_ & (PageLocks::kStripes - 1);
    const uint64_t wrapped = start + count_ > PageLocks::kStripes
                                 ? start + count_ - PageLocks::kStripes
                                 : 0;
    for (uint64_t i = 0; i < wrapped; ++i) fn(locks_.StripeOf(i));
    for (uint64_t i = 0; i < count_ - wrapped; ++i) {
      fn(locks_.StripeOf(start + i));
    }
  }

  PageLocks& locks_;
  const uint64_t first_;
  const uint64_t count_;
};

/// Holds the gate exclusively (every page) for the scope.
class ExclusiveGuard {
 public:
  explicit ExclusiveGuard(PageLocks& locks) : gate_(locks.gate()) {
    gate_.lock();
  }
  ~ExclusiveGuard() { gate_.unlock(); }
  ExclusiveGuard(const ExclusiveGuard&) = delete;
  ExclusiveGuard& operator=(const ExclusiveGuard&) = delete;

 private:
  std::shared_mutex& gate_;
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_PAGE_LOCKS_H_
