// Pager: owns the userfaultfd over guest RAM and its fault threads.
//
// Typical use from a VMM (docs/PAGER.md has the full threading rules):
//
//   SSIHV_ASSIGN_OR_RETURN(auto ram, GuestMemory::Create(size));
//   SSIHV_ASSIGN_OR_RETURN(auto pager, Pager::Create({.fault_threads = 2}));
//   SSIHV_RETURN_IF_ERROR(pager->RegisterRegion(
//       {.host = ram.data(), .size = size, .gpa = 0}));
//   pager->SetSource(std::make_shared<ZeroSource>());
//   SSIHV_RETURN_IF_ERROR(pager->Start());
//   ... KVM_SET_USER_MEMORY_REGION, run vCPUs; every first touch, from the
//   guest or from KVM itself, is served by the fault threads ...
//   pager->Stop();   // after the vCPUs stopped
//   std::cout << ToJson(pager->Stats()).dump(2);
#ifndef SSIHV_PAGER_PAGER_H_
#define SSIHV_PAGER_PAGER_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/pager/fault.h"
#include "ssihv/pager/guest_memory.h"
#include "ssihv/pager/page_source.h"
#include "ssihv/pager/stats.h"

struct uffd_msg;  // <linux/userfaultfd.h>

namespace ssihv::pager {

class Pager;
class Userfaultfd;
struct FaultThread;

/// One registered range of guest RAM.
struct Region {
  uint8_t* host = nullptr;  ///< page-aligned host address
  uint64_t size = 0;        ///< bytes, a positive multiple of 4 KiB
  uint64_t gpa = 0;         ///< guest-physical address of `host`
  Backing backing = Backing::kAnonymous;

  uint64_t gpa_end() const { return gpa + size; }
};

struct PagerOptions {
  /// Threads reading the uffd (one at a time blocks in read(2); one is woken
  /// per fault). 1 is the lowest latency for one vCPU; use about one per two
  /// busy vCPUs when faults are frequent.
  int fault_threads = 1;
  /// The fault threads' nice value (base/thread_priority.h): below the
  /// vCPU threads', a fault is handled as soon as it arrives instead of
  /// after a vCPU's time slice. 0: inherited. Lowering it needs
  /// CAP_SYS_NICE; without it the threads keep their priority (one
  /// warning).
  int thread_nice = 0;
  /// Ask the kernel for REMOVE events (UFFD_FEATURE_EVENT_REMOVE): a
  /// MADV_DONTNEED/MADV_REMOVE of registered memory, by anyone, reaches
  /// PageSource::OnRemove. The price is paid by every discard: the kernel
  /// blocks the madvise until a fault thread has read the event (a
  /// cross-thread wake-up: 13-46 us instead of 2-7 us per page on the
  /// development VM, docs/PERFORMANCE.md). Off, discards are silent and
  /// immediate; for an owner that never lets anyone else discard the memory
  /// and has no use for the events of its own discards (the DSM node).
  bool remove_events = true;
  /// Called when a fault cannot be resolved (a source error, an unexpected
  /// errno). The faulting thread stays blocked, so the embedding VMM should
  /// stop the guest with this message. Runs on the thread that saw the error;
  /// must not call Pager::Stop().
  std::function<void(const absl::Status&)> on_error;
};

/// Resolves faults and changes page mappings of the registered regions.
/// Every method is thread-safe and may be called from any thread, including
/// after the fault was handed to a source (asynchronous resolution).
class Resolver {
 public:
  /// A read maps the shared zero page; a write maps a zeroed private page
  /// (cheaper than the zero page followed by a copy-on-write fault); a
  /// write-protect fault is unprotected. Counted as kLocalZero.
  absl::Status ZeroFill(const Fault& fault);

  /// Maps a copy of 4 KiB at `bytes` at the fault's page (UFFDIO_COPY),
  /// read-only when `read_only` (UFFDIO_COPY_MODE_WP: a later write faults
  /// as kWriteProtect). When another thread mapped the page first (EEXIST)
  /// the waiters are woken, the race is counted and the result is OK with
  /// `*installed` false. EAGAIN (a REMOVE event in flight) is retried.
  absl::Status Copy(const Fault& fault, const void* bytes, bool read_only,
                    FaultKind kind, bool* installed = nullptr);

  /// Clears write protection of the fault's page and wakes its waiters.
  absl::Status Unprotect(const Fault& fault,
                         FaultKind kind = FaultKind::kUpgrade);

  /// The fault cannot be resolved: counts it and calls
  /// PagerOptions::on_error. The faulting thread stays blocked until
  /// Pager::ReleaseFailedFaults(); after that call the page is released at
  /// once instead.
  void Fail(const Fault& fault, const absl::Status& status);

  /// Counts `fault` as resolved by an earlier call for the same page (one
  /// UFFDIO_COPY wakes every thread waiting on the page; the DSM node
  /// resolves all faults parked on a page with one ioctl).
  void Complete(const Fault& fault, FaultKind kind);

  // ---- Page operations outside a fault (the DSM node) --------------------

  /// UFFDIO_COPY of one page at `gpa` without a pending fault (prefetch, or
  /// resolving a fault whose Fault record the caller did not keep).
  absl::Status CopyPage(uint64_t gpa, const void* bytes, bool read_only,
                        bool* installed = nullptr);
  /// UFFDIO_COPY of the pages [gpa, gpa + len) from `bytes` with one ioctl
  /// (MODE_WP when `read_only`), outside a fault (a run grant). The kernel
  /// fills page by page and stops at the first page already mapped: returns
  /// the bytes mapped from `gpa` on, which is `len` unless the page there
  /// is mapped (the caller decides what to do with it; its waiters are not
  /// woken). The range must lie in one region.
  absl::StatusOr<uint64_t> CopyRange(uint64_t gpa, const void* bytes,
                                     uint64_t len, bool read_only);
  /// Sets write protection on [gpa, gpa + len): later writes fault as
  /// kWriteProtect. Pages not mapped are unaffected.
  absl::Status WriteProtect(uint64_t gpa, uint64_t len);
  /// Clears it and wakes threads waiting on the range.
  absl::Status Unprotect(uint64_t gpa, uint64_t len);
  /// Drops [gpa, gpa + len) so the next access faults again (MADV_DONTNEED,
  /// or MADV_REMOVE on memfd regions). With REMOVE events
  /// (PagerOptions::remove_events) the kernel blocks madvise until a fault
  /// thread reads the event: on a fault thread the madvise runs on a helper
  /// thread while this one keeps reading the uffd (slow: a thread per call;
  /// meant for rare paths), and the call is refused while the pager is
  /// stopped (nobody would read the event). Without them it is one madvise.
  absl::Status Discard(uint64_t gpa, uint64_t len);

  /// Wakes threads blocked on faults in [gpa, gpa + len).
  absl::Status Wake(uint64_t gpa, uint64_t len);

  /// Maps zeros on every page of [gpa, gpa + len) that is not mapped yet,
  /// with one ioctl per run of missing pages (mapped pages are stepped over,
  /// never changed): writable private pages (UFFDIO_COPY from a zero
  /// buffer) or, with `writable` false, the shared zero page (no memory;
  /// the first write is a kernel copy-on-write). For fault-around: filling
  /// ahead of a guest that walks its memory. Returns the pages it mapped,
  /// counted in PagerStats::filled_ahead. The range must lie in one region.
  absl::StatusOr<uint64_t> ZeroFillRange(uint64_t gpa, uint64_t len,
                                         bool writable = true);

  /// The registered region holding `gpa`, or nullptr.
  const Region* RegionOf(uint64_t gpa) const { return RegionOfGpa(gpa, 1); }

  /// Host address of `gpa`, or nullptr when no region holds it.
  uint8_t* HostAddress(uint64_t gpa) const;

 private:
  friend class Pager;
  explicit Resolver(Pager* pager) : pager_(pager) {}
  /// True on one of this pager's fault threads.
  bool OnFaultThread() const;
  /// On a fault thread: reads the messages pending on the uffd into this
  /// thread's backlog (handled once the current fault returns), so that a
  /// REMOVE event some other thread's madvise waits for completes (Discard
  /// on a fault thread, the EAGAIN retry). Elsewhere a no-op.
  void PumpEvents();
  // Runs `op` (an ioctl returning 0 or errno) until it stops answering
  // EAGAIN; see the .cc for why a fault thread must read events meanwhile.
  template <typename Op>
  int RetryEagain(Op op);
  absl::Status CopyAt(uint8_t* host, uint64_t gpa, const void* bytes,
                      bool read_only, bool* installed, bool* raced);
  const Region* RegionOfGpa(uint64_t gpa, uint64_t len) const;
  // Unblocks the threads waiting on a failed page (ReleaseFailedFaults).
  void ReleasePage(uint64_t gpa);

  Pager* pager_;
};

class Pager {
 public:
  ~Pager();
  Pager(const Pager&) = delete;
  Pager& operator=(const Pager&) = delete;

  /// Opens and negotiates the userfaultfd. Fails with a message naming what
  /// the kernel lacks (write-protect on anonymous memory, REMOVE events) or
  /// how to get permission (/dev/userfaultfd access or CAP_SYS_PTRACE).
  static absl::StatusOr<std::unique_ptr<Pager>> Create(PagerOptions options);

  /// Serves a userfaultfd created by someone else, typically another process
  /// that passed it over a Unix socket (Firecracker's "Uffd" snapshot
  /// backend; apps/ssihv-uffd-handler). The pager keeps a duplicate of
  /// `uffd` (the caller still owns its fd). The creator did UFFDIO_API and
  /// registers the regions, in its own address space and in the modes it
  /// chose (Firecracker: MISSING only). On an adopted pager:
  /// - RegisterRegion only records a region: `host` is the creator's
  ///   address, which the resolving ioctls act on; nothing here touches it.
  /// - Resolver::Discard is refused (madvise cannot drop another process's
  ///   pages); REMOVE events from the creator's own madvise still arrive
  ///   and reach PageSource::OnRemove.
  /// - features() is 0: what the creator negotiated is unknown.
  /// A fault that can no longer be resolved because the creator exited
  /// fails with ESRCH through on_error.
  static absl::StatusOr<std::unique_ptr<Pager>> Adopt(int uffd,
                                                      PagerOptions options);
  /// True for a pager made by Adopt().
  bool adopted() const { return adopted_; }

  /// Registers a region in MISSING and WP modes. Only while stopped; regions
  /// must not overlap in host address or GPA. Memfd regions need kernel
  /// shmem support (MISSING_SHMEM, WP_HUGETLBFS_SHMEM: Linux 6.0+).
  absl::Status RegisterRegion(const Region& region);
  /// Registers `size` bytes of `memory` from `offset` at `gpa`.
  absl::Status RegisterGuestMemory(const GuestMemory& memory, uint64_t offset,
                                   uint64_t size, uint64_t gpa);

  /// Sets the source for every region. Only while stopped.
  absl::Status SetSource(std::shared_ptr<PageSource> source);

  /// Starts the fault threads. Needs a source and at least one region.
  absl::Status Start();
  /// Stops and joins the fault threads. Faults not yet resolved stay
  /// pending and are served after the next Start(); a source's deferred
  /// resolutions may still complete. Idempotent.
  void Stop();
  bool running() const { return running_.load(std::memory_order_acquire); }

  /// For a VMM stopping its guest after an error (on_error, a lost peer):
  /// returns every thread that a failed fault left blocked. Each page
  /// Resolver::Fail saw, and every page it fails from now on, is unprotected
  /// and, if unmapped, mapped as zeros, and its waiters are woken; a page
  /// failed after the call also gets the unmapped rest of its 2 MiB block
  /// mapped as zeros (counted in filled_ahead), so a thread walking a lost
  /// range faults once per block. A vCPU
  /// blocked in KVM_RUN on such a page waits uninterruptibly (only a fatal
  /// signal ends the wait on Linux 6.1), so without this the VMM could
  /// never join it. Call it only after every vCPU was told to stop (its
  /// kick pending): KVM then leaves KVM_RUN before the guest runs again, so
  /// the guest never reads the zeros. Irreversible; idempotent. Counted in
  /// PagerStats::released.
  void ReleaseFailedFaults();

  /// A snapshot of the counters; safe from any thread at any time.
  PagerStats Stats() const;
  void ResetStats();

  Resolver& resolver() { return resolver_; }
  const std::vector<Region>& regions() const { return regions_; }
  /// Negotiated UFFD_FEATURE_* bits and how the uffd was opened.
  uint64_t features() const;
  std::string Describe() const;

 private:
  friend class Resolver;
  Pager(PagerOptions options, std::unique_ptr<Userfaultfd> uffd);
  static absl::StatusOr<std::unique_ptr<Pager>> Make(PagerOptions options,
                                                     Userfaultfd uffd,
                                                     bool adopted);

  absl::Status RegisterWithKernel(const Region& region);
  void FaultLoop(FaultThread* self);
  /// read(2) of the uffd (blocking when nothing is pending) and its REMOVE
  /// events; read_mu_ held.
  ssize_t ReadLocked(uffd_msg* msgs, size_t max);
  void DispatchFaults(const uffd_msg* msgs, size_t n);
  void DrainBacklog(FaultThread* self);
  void ReadIntoBacklog(FaultThread* self);
  /// `more_follow`: Fault::more_follow.
  void HandlePageFault(const uffd_msg& msg, bool more_follow);
  void HandleRemove(const uffd_msg& msg);
  void ReportError(const absl::Status& status);
  const Region* RegionOfHost(uint64_t addr) const;
  void RecordResolution(FaultKind kind, int64_t start_ns);

  PagerOptions options_;
  std::unique_ptr<Userfaultfd> uffd_;
  bool adopted_ = false;         // uffd and regions belong to another process
  std::vector<Region> regions_;  // sorted by host address
  std::shared_ptr<PageSource> source_;
  Resolver resolver_{this};
  std::atomic<bool> running_{false};
  // One page per fault thread, registered MISSING while running: Stop()
  // touches them to wake the threads blocked in read(2).
  base::MappedRegion sentinel_;
  std::vector<std::unique_ptr<FaultThread>> threads_;
  std::atomic<int> live_threads_{0};
  std::atomic<bool> stopping_{false};
  // Adopted pagers: Stop() makes it readable; fault threads poll it.
  base::UniqueFd stop_fd_;
  std::mutex read_mu_;  // read(2) of the uffd + handling its REMOVE events
  // Pages of failed faults, until ReleaseFailedFaults() (then empty).
  std::mutex failed_mu_;
  std::vector<uint64_t> failed_pages_;
  bool release_failed_ = false;

  std::array<LatencyHistogram, kNumFaultKinds> latency_;
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> eexist_races_{0};
  std::atomic<uint64_t> eagain_retries_{0};
  std::atomic<uint64_t> remove_events_{0};
  std::atomic<uint64_t> removed_bytes_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> filled_ahead_{0};
  std::atomic<uint64_t> released_{0};
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_PAGER_H_
