// Resolver: the fault-resolving and page-mapping operations of a Pager.
#include <linux/userfaultfd.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "block.h"
#include "clock.h"
#include "fault_thread.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/pager/pager.h"
#include "sys/mm.h"
#include "userfaultfd.h"

namespace ssihv::pager {
namespace {

// Source of writable zero pages: UFFDIO_COPY from here costs one 4 KiB copy,
// less than mapping the zero page and taking a copy-on-write fault after.
alignas(4096) const uint8_t kZeroPage[kPageSize] = {};

absl::Status IoctlStatus(int err, absl::string_view op, uint64_t gpa) {
  return base::ErrnoStatus(err, absl::StrCat(op, " gpa=0x", absl::Hex(gpa)));
}

}  // namespace

// EAGAIN means a non-cooperative event (here: REMOVE from MADV_DONTNEED) is
// changing the mappings and has not been read from the uffd yet; the kernel
// clears it once the event is read and the madvise caller resumes
// (fs/userfaultfd.c, mmap_changing). On a fault thread this thread may be
// the only reader, and the event may sit behind page faults in the queue, so
// it reads everything pending into its backlog (handled once the current
// fault returns) before retrying. Other threads just yield to the readers.
template <typename Op>
int Resolver::RetryEagain(Op op) {
  int err = op();
  while (err == EAGAIN) {
    pager_->eagain_retries_.fetch_add(1, std::memory_order_relaxed);
    if (FaultThread* self = tls_fault_thread;
        self != nullptr && self->pager == pager_) {
      pager_->ReadIntoBacklog(self);
    } else if (!pager_->running()) {
      return EAGAIN;  // nobody reads the event: it would never clear
    }
    sched_yield();
    err = op();
  }
  return err;
}

absl::Status Resolver::CopyAt(uint8_t* host, uint64_t gpa, const void* bytes,
                              bool read_only, bool* installed, bool* raced) {
  const Userfaultfd& uffd = *pager_->uffd_;
  const int err =
      RetryEagain([&] { return uffd.Copy(host, bytes, kPageSize, read_only); });
  *installed = err == 0;
  *raced = err == EEXIST;
  if (err == 0) return absl::OkStatus();
  if (err == EEXIST) {
    // Mapped by someone else; UFFDIO_COPY does not wake on failure.
    pager_->eexist_races_.fetch_add(1, std::memory_order_relaxed);
    (void)uffd.Wake(host, kPageSize);
    return absl::OkStatus();
  }
  return IoctlStatus(err, read_only ? "UFFDIO_COPY(MODE_WP)" : "UFFDIO_COPY",
                     gpa);
}

absl::Status Resolver::Copy(const Fault& fault, const void* bytes,
                            bool read_only, FaultKind kind, bool* installed) {
  bool done = false;
  bool raced = false;
  absl::Status st =
      CopyAt(fault.host, fault.gpa, bytes, read_only, &done, &raced);
  if (done) pager_->RecordResolution(kind, fault.start_ns);
  if (installed != nullptr) *installed = done;
  return st;
}

absl::Status Resolver::ZeroFill(const Fault& fault) {
  switch (fault.access) {
    case FaultAccess::kWriteProtect:
      return Unprotect(fault, FaultKind::kLocalZero);
    case FaultAccess::kWrite:
      return Copy(fault, kZeroPage, false, FaultKind::kLocalZero);
    case FaultAccess::kRead:
      break;
  }
  const Userfaultfd& uffd = *pager_->uffd_;
  const int err =
      RetryEagain([&] { return uffd.ZeroPage(fault.host, kPageSize); });
  if (err == 0) {
    pager_->RecordResolution(FaultKind::kLocalZero, fault.start_ns);
    return absl::OkStatus();
  }
  if (err == EEXIST) {
    pager_->eexist_races_.fetch_add(1, std::memory_order_relaxed);
    (void)uffd.Wake(fault.host, kPageSize);
    return absl::OkStatus();
  }
  return IoctlStatus(err, "UFFDIO_ZEROPAGE", fault.gpa);
}

absl::Status Resolver::Unprotect(const Fault& fault, FaultKind kind) {
  const Userfaultfd& uffd = *pager_->uffd_;
  // Clearing WP wakes the waiters; on a page no longer mapped (zapped
  // meanwhile) it is a no-op and the waiter re-faults as missing.
  const int err = RetryEagain(
      [&] { return uffd.WriteProtect(fault.host, kPageSize, false); });
  if (err != 0)
    return IoctlStatus(err, "UFFDIO_WRITEPROTECT(clear)", fault.gpa);
  pager_->RecordResolution(kind, fault.start_ns);
  return absl::OkStatus();
}

void Resolver::Fail(const Fault& fault, const absl::Status& status) {
  pager_->errors_.fetch_add(1, std::memory_order_relaxed);
  bool release_now = false;
  {
    // Recorded before on_error runs: it may stop the VMM, which releases.
    std::lock_guard<std::mutex> lock(pager_->failed_mu_);
    release_now = pager_->release_failed_;
    if (!release_now) pager_->failed_pages_.push_back(fault.gpa);
  }
  pager_->ReportError(absl::Status(
      status.code(),
      absl::StrCat("unresolved ", std::string(FaultAccessName(fault.access)),
                   " fault at gpa=0x", absl::Hex(fault.gpa), " (thread ",
                   fault.thread_id, "): ", status.message())));
  if (release_now) {
    ReleasePage(fault.gpa);
    // And the rest of its 2 MiB block (unmapped pages only): a thread that
    // walks a lost range, such as node 0's loader writing an initrd into a
    // dead node's memory, then takes one fault per block, not per page.
    constexpr uint64_t kBlock = 2 << 20;
    if (const Region* r = RegionOfGpa(fault.gpa, kPageSize)) {
      const GpaRange b = BlockInRegion(*r, fault.gpa, kBlock);
      (void)ZeroFillRange(b.begin, b.end - b.begin);
    }
  }
}

// Best effort, every step: the VMM is stopping and only needs the waiters
// back. Map zeros if the page is missing (EEXIST: mapped, left alone), then
// unprotect it (a write-protect fault), then wake whoever still waits. In
// this order a missing page's waiters wake once, on a mapped page (the
// clear wakes too: unprotecting first would re-fault them as missing).
void Resolver::ReleasePage(uint64_t gpa) {
  const Region* r = RegionOfGpa(gpa, kPageSize);
  if (r == nullptr) return;
  const Userfaultfd& uffd = *pager_->uffd_;
  uint8_t* host = r->host + (gpa - r->gpa);
  (void)RetryEagain(
      [&] { return uffd.Copy(host, kZeroPage, kPageSize, false); });
  (void)RetryEagain([&] { return uffd.WriteProtect(host, kPageSize, false); });
  (void)uffd.Wake(host, kPageSize);
  pager_->released_.fetch_add(1, std::memory_order_relaxed);
}

void Resolver::Complete(const Fault& fault, FaultKind kind) {
  pager_->RecordResolution(kind, fault.start_ns);
}

void Resolver::PumpEvents() {
  if (FaultThread* self = tls_fault_thread;
      self != nullptr && self->pager == pager_) {
    pager_->ReadIntoBacklog(self);
  }
}

const Region* Resolver::RegionOfGpa(uint64_t gpa, uint64_t len) const {
  for (const Region& r : pager_->regions_) {
    if (gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.gpa_end() - gpa) {
      return &r;
    }
  }
  return nullptr;
}

uint8_t* Resolver::HostAddress(uint64_t gpa) const {
  const Region* r = RegionOfGpa(gpa, 1);
  return r == nullptr ? nullptr : r->host + (gpa - r->gpa);
}

bool Resolver::OnFaultThread() const {
  return tls_fault_thread != nullptr && tls_fault_thread->pager == pager_;
}

namespace {

absl::Status OutsideRegions(absl::string_view op, uint64_t gpa, uint64_t len) {
  return absl::InvalidArgumentError(
      absl::StrCat(op, " gpa=0x", absl::Hex(gpa), " len=0x", absl::Hex(len),
                   ": not page-aligned or not inside one registered region"));
}

bool PageAligned(uint64_t gpa, uint64_t len) {
  return ((gpa | len) & (kPageSize - 1)) == 0 && len != 0;
}

}  // namespace

absl::Status Resolver::CopyPage(uint64_t gpa, const void* bytes, bool read_only,
                                bool* installed) {
  const Region* r =
      PageAligned(gpa, kPageSize) ? RegionOfGpa(gpa, kPageSize) : nullptr;
  if (r == nullptr) return OutsideRegions("Resolver::CopyPage", gpa, kPageSize);
  bool done = false;
  bool raced = false;
  absl::Status st =
      CopyAt(r->host + (gpa - r->gpa), gpa, bytes, read_only, &done, &raced);
  if (installed != nullptr) *installed = done;
  return st;
}

absl::StatusOr<uint64_t> Resolver::CopyRange(uint64_t gpa, const void* bytes,
                                             uint64_t len, bool read_only) {
  const Region* r = PageAligned(gpa, len) ? RegionOfGpa(gpa, len) : nullptr;
  if (r == nullptr) return OutsideRegions("Resolver::CopyRange", gpa, len);
  const Userfaultfd& uffd = *pager_->uffd_;
  uint8_t* host = r->host + (gpa - r->gpa);
  const auto* src = static_cast<const uint8_t*>(bytes);
  uint64_t off = 0;
  while (off < len) {
    int64_t done = 0;
    // As in ZeroFillRange: a positive `done` is progress (answered as
    // EAGAIN), a mapped first page EEXIST, EAGAIN without progress a
    // REMOVE event in flight.
    const int err = RetryEagain([&] {
      const int e =
          uffd.Copy(host + off, src + off, len - off, read_only, &done);
      return (e == EAGAIN && done > 0) ? 0 : e;
    });
    if (err == EEXIST) break;
    if (err != 0) {
      return IoctlStatus(
          err, read_only ? "UFFDIO_COPY(MODE_WP, range)" : "UFFDIO_COPY(range)",
          gpa + off);
    }
    off += done > 0 ? static_cast<uint64_t>(done) : len - off;
  }
  return off;
}

absl::Status Resolver::WriteProtect(uint64_t gpa, uint64_t len) {
  const Region* r = PageAligned(gpa, len) ? RegionOfGpa(gpa, len) : nullptr;
  if (r == nullptr) return OutsideRegions("Resolver::WriteProtect", gpa, len);
  const Userfaultfd& uffd = *pager_->uffd_;
  uint8_t* host = r->host + (gpa - r->gpa);
  const int err =
      RetryEagain([&] { return uffd.WriteProtect(host, len, true); });
  if (err != 0) return IoctlStatus(err, "UFFDIO_WRITEPROTECT(set)", gpa);
  return absl::OkStatus();
}

absl::Status Resolver::Unprotect(uint64_t gpa, uint64_t len) {
  const Region* r = PageAligned(gpa, len) ? RegionOfGpa(gpa, len) : nullptr;
  if (r == nullptr) return OutsideRegions("Resolver::Unprotect", gpa, len);
  const Userfaultfd& uffd = *pager_->uffd_;
  uint8_t* host = r->host + (gpa - r->gpa);
  const int err =
      RetryEagain([&] { return uffd.WriteProtect(host, len, false); });
  if (err != 0) return IoctlStatus(err, "UFFDIO_WRITEPROTECT(clear)", gpa);
  return absl::OkStatus();
}

absl::Status Resolver::Discard(uint64_t gpa, uint64_t len) {
  const Region* r = PageAligned(gpa, len) ? RegionOfGpa(gpa, len) : nullptr;
  if (r == nullptr) return OutsideRegions("Resolver::Discard", gpa, len);
  if (pager_->adopted()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Resolver::Discard gpa=0x", absl::Hex(gpa),
        ": the memory belongs to the process that created the userfaultfd "
        "(Pager::Adopt); only it can madvise its pages"));
  }
  const bool remove_events = pager_->uffd_->Has(UFFD_FEATURE_EVENT_REMOVE);
  if (remove_events && !pager_->running()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Resolver::Discard gpa=0x", absl::Hex(gpa),
                     ": pager stopped; nobody would read the REMOVE event"));
  }
  uint8_t* host = r->host + (gpa - r->gpa);
  // Private anonymous: DONTNEED frees the page. Shared memfd: DONTNEED only
  // drops the PTE and the page cache would map the old bytes back without a
  // fault, so punch the hole instead.
  const bool shmem = r->backing == Backing::kMemfd;
  auto discard = [host, len, shmem] {
    return shmem ? sys::Madvise(host, len, MADV_REMOVE, "MADV_REMOVE")
                 : sys::Madvise(host, len, MADV_DONTNEED, "MADV_DONTNEED");
  };
  if (!remove_events || !OnFaultThread()) return discard();
  // This thread may be the only uffd reader: madvise elsewhere, read here.
  absl::Status status;
  std::atomic<bool> done{false};
  std::thread helper([&] {
    status = discard();
    done.store(true, std::memory_order_release);
  });
  while (!done.load(std::memory_order_acquire)) {
    PumpEvents();
    sched_yield();
  }
  helper.join();
  return status;
}

namespace {
// Source of multi-page zero copies (.bss: reading it maps nothing).
constexpr uint64_t kZeroChunk = 64 * kPageSize;
alignas(4096) const uint8_t kZeroChunkBytes[kZeroChunk] = {};
}  // namespace

absl::StatusOr<uint64_t> Resolver::ZeroFillRange(uint64_t gpa, uint64_t len,
                                                 bool writable) {
  const Region* r = PageAligned(gpa, len) ? RegionOfGpa(gpa, len) : nullptr;
  if (r == nullptr) return OutsideRegions("Resolver::ZeroFillRange", gpa, len);
  const Userfaultfd& uffd = *pager_->uffd_;
  uint8_t* host = r->host + (gpa - r->gpa);
  uint64_t off = 0;
  uint64_t mapped = 0;
  while (off < len) {
    const uint64_t chunk =
        writable ? std::min(len - off, kZeroChunk) : len - off;
    int64_t done = 0;
    // The kernel fills page by page and stops at the first mapped one: a
    // positive `done` is progress (answered as EAGAIN), a mapped first page
    // is EEXIST, and EAGAIN with no progress is a REMOVE event in flight.
    const int err = RetryEagain([&] {
      const int e =
          writable ? uffd.Copy(host + off, kZeroChunkBytes, chunk, false, &done)
                   : uffd.ZeroPage(host + off, chunk, &done);
      return (e == EAGAIN && done > 0) ? 0 : e;
    });
    if (err == 0) {
      const uint64_t n = done > 0 ? static_cast<uint64_t>(done) : chunk;
      mapped += n / kPageSize;
      off += n;
    } else if (err == EEXIST) {
      off += kPageSize;  // already mapped: leave it alone
    } else {
      return IoctlStatus(
          err, writable ? "UFFDIO_COPY(zeros)" : "UFFDIO_ZEROPAGE", gpa + off);
    }
  }
  pager_->filled_ahead_.fetch_add(mapped, std::memory_order_relaxed);
  return mapped;
}

absl::Status Resolver::Wake(uint64_t gpa, uint64_t len) {
  const Region* r = PageAligned(gpa, len) ? RegionOfGpa(gpa, len) : nullptr;
  if (r == nullptr) return OutsideRegions("Resolver::Wake", gpa, len);
  if (int err = pager_->uffd_->Wake(r->host + (gpa - r->gpa), len); err != 0) {
    return IoctlStatus(err, "UFFDIO_WAKE", gpa);
  }
  return absl::OkStatus();
}

}  // namespace ssihv::pager
