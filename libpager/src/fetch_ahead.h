// Fetch-ahead for a remote image (remote_image.cc): when a guest thread (a
// vCPU) faults on the page right after its previous fault, its source
// fetches that page and
// the next ones in the same round trip (one RDMA READ, or one request on a
// TCP lane) and keeps them here until the guest faults on them. A page is
// mapped only on the guest's own fault, after that fault's discard check,
// so a page the guest discarded in the meantime is never mapped from here;
// and the image does not change while it is exported, so what is kept here
// never goes stale.
#ifndef SSIHV_PAGER_SRC_FETCH_AHEAD_H_
#define SSIHV_PAGER_SRC_FETCH_AHEAD_H_

#include <cstdint>
#include <mutex>

namespace ssihv::pager {

class FetchAhead {
 public:
  static constexpr int kWindows = 4;
  static constexpr uint32_t kMaxPages = 64;
  /// Faulting threads whose walks are told apart (the most recent ones).
  static constexpr int kStreams = 8;

  /// Windows of `pages` pages (2..kMaxPages) at `memory`: kWindows * pages
  /// * 4 KiB, which the caller owns (registered staging memory).
  FetchAhead(uint32_t pages, uint8_t* memory);

  /// A page held for image offset `offset`, pinned until Release(window):
  /// each held page is handed out once. `thread` is the faulting thread
  /// (Fault::thread_id; 0 when unknown, then all faults are one walk).
  struct Held {
    const uint8_t* page = nullptr;
    int window = -1;
    bool follows = false;  // at the page after that thread's previous fault
  };
  Held Take(uint64_t offset, uint32_t thread);

  /// What to fetch for a fault at `offset` that Take did not serve, in an
  /// image of `size` bytes: one page (window -1: the caller's own buffer),
  /// or, when the fault `follows` the previous one (Held::follows), up to
  /// `pages` pages into `dst`, a window claimed for it (then Filled, then
  /// Release).
  struct Plan {
    uint32_t pages = 1;
    int window = -1;
    uint8_t* dst = nullptr;
  };
  Plan Miss(uint64_t offset, uint64_t size, bool follows);
  /// The claimed window's fetch of `pages` pages at `offset` is done (`ok`)
  /// or failed; its first page went to the faulting thread, which still
  /// pins the window.
  void Filled(int window, uint64_t offset, uint32_t pages, bool ok);
  void Release(int window);

  /// Pages fetched ahead, and of those, pages a fault took.
  uint64_t fetched_ahead() const;
  uint64_t used() const;

 private:
  struct Window {
    uint64_t first = 0;
    uint32_t pages = 0;  // 0: holds nothing
    uint64_t taken = 0;  // bit i: page i was handed out
    int refs = 0;        // faults still copying from it
    bool filling = false;
    uint64_t last_use = 0;
  };

  const uint32_t pages_;
  uint8_t* const memory_;
  mutable std::mutex mu_;
  struct Stream {
    uint32_t thread = 0;
    uint64_t next = 0;      // where its walk faults next if in order
    uint64_t last_use = 0;  // 0: unused
  };
  /// Whether `thread`'s fault at `offset` follows its previous one; records
  /// it. mu_ held.
  bool Follows(uint32_t thread, uint64_t offset);

  Window windows_[kWindows];  // guarded by mu_
  Stream streams_[kStreams];  // guarded by mu_
  uint64_t clock_ = 0;
  uint64_t fetched_ahead_ = 0;
  uint64_t used_ = 0;
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_SRC_FETCH_AHEAD_H_
