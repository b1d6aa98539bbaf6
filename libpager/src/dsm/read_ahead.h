// Remote read-ahead: when a node's read faults walk a remote range page
// after page (a guest reading remote memory sequentially), the DSM node
// asks the home for the following pages too, in the same burst, so the
// walk does not pay one round trip per 4 KiB page.
//
// The policy (this class, pure): a remote read fault on page p is
// *sequential* when it lands just after the previous one or inside the
// pages already requested ahead of it. Each sequential fault doubles the
// window (4, 8, ... up to the bound) and requests the pages from the end of
// what is already requested up to p + 1 + window, never beyond the home's
// range; any other fault resets it to nothing. A prefetched page arrives as
// an ordinary Shared grant (its own read transaction: ReadReq, Data, Done),
// so the walk faults again only at the end of each window (or on a page
// whose data is still on its way, which then waits like any fault).
#ifndef SSIHV_PAGER_DSM_READ_AHEAD_H_
#define SSIHV_PAGER_DSM_READ_AHEAD_H_

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <utility>

namespace ssihv::pager::dsm {

class ReadAhead {
 public:
  static constexpr uint32_t kFirstWindow = 4;

  /// `max_pages`: the bound on the window; 0 turns read-ahead off.
  explicit ReadAhead(uint32_t max_pages) : max_(max_pages) {}

  /// A read fault on `page` that had to wait for the network; the pages of
  /// its home's range end at `range_end`. Returns [from, to) to request
  /// ahead now (empty: none). Thread-safe.
  std::pair<uint64_t, uint64_t> OnRemoteRead(uint64_t page,
                                             uint64_t range_end) {
    std::lock_guard<std::mutex> lock(mu_);
    const bool sequential = max_ > 0 && has_last_ && page > last_ &&
                            page <= std::max(last_ + 1, end_);
    last_ = page;
    has_last_ = true;
    if (!sequential) {
      window_ = 0;
      end_ = page + 1;
      return {0, 0};
    }
    window_ = window_ == 0 ? std::min(kFirstWindow, max_)
                           : std::min(window_ * 2, max_);
    const uint64_t from = std::max(page + 1, end_);
    const uint64_t to = std::min(page + 1 + window_, range_end);
    if (from >= to) return {0, 0};
    end_ = to;
    return {from, to};
  }

  uint32_t window() const {
    std::lock_guard<std::mutex> lock(mu_);
    return window_;
  }

 private:
  const uint32_t max_;
  mutable std::mutex mu_;
  bool has_last_ = false;
  uint64_t last_ = 0;    // the previous remote read fault
  uint64_t end_ = 0;     // pages below this were requested (ahead or not)
  uint32_t window_ = 0;  // current window, 0 = not sequential
};

}  // namespace ssihv::pager::dsm

#endif  // SSIHV_PAGER_DSM_READ_AHEAD_H_
