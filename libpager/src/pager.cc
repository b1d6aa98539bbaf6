#include "ssihv/pager/pager.h"

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "clock.h"
#include "fault_thread.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"
#include "ssihv/base/thread_priority.h"
#include "sys/mm.h"
#include "sys/uffd.h"
#include "userfaultfd.h"

namespace ssihv::pager {
namespace {

bool Aligned(uint64_t v) { return (v & (kPageSize - 1)) == 0; }

absl::Status CheckOptions(const PagerOptions& options) {
  if (options.fault_threads < 1 || options.fault_threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagerOptions.fault_threads: must be in [1, 256], got ",
                     options.fault_threads));
  }
  if (options.thread_nice < base::kMinNice ||
      options.thread_nice > base::kMaxNice) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagerOptions.thread_nice: must be in [", base::kMinNice,
                     ", ", base::kMaxNice, "], got ", options.thread_nice));
  }
  return absl::OkStatus();
}

}  // namespace

Pager::Pager(PagerOptions options, std::unique_ptr<Userfaultfd> uffd)
    : options_(std::move(options)), uffd_(std::move(uffd)) {}

Pager::~Pager() { Stop(); }

absl::StatusOr<std::unique_ptr<Pager>> Pager::Create(PagerOptions options) {
  SSIHV_RETURN_IF_ERROR(CheckOptions(options));
  UffdRequirements req;
  req.remove_events = options.remove_events;
  SSIHV_ASSIGN_OR_RETURN(Userfaultfd uffd, Userfaultfd::Open(req));
  return Make(std::move(options), std::move(uffd), /*adopted=*/false);
}

absl::StatusOr<std::unique_ptr<Pager>> Pager::Adopt(int uffd,
                                                    PagerOptions options) {
  SSIHV_RETURN_IF_ERROR(CheckOptions(options));
  SSIHV_ASSIGN_OR_RETURN(Userfaultfd adopted, Userfaultfd::Adopt(uffd));
  return Make(std::move(options), std::move(adopted), /*adopted=*/true);
}

absl::StatusOr<std::unique_ptr<Pager>> Pager::Make(PagerOptions options,
                                                   Userfaultfd uffd,
                                                   bool adopted) {
  SSIHV_ASSIGN_OR_RETURN(base::UniqueFd stop_fd, sys::EventfdCreate());
  std::unique_ptr<Pager> pager(new Pager(
      std::move(options), std::make_unique<Userfaultfd>(std::move(uffd))));
  pager->stop_fd_ = std::move(stop_fd);
  pager->adopted_ = adopted;
  return pager;
}

absl::Status Pager::RegisterRegion(const Region& r) {
  if (running()) {
    return absl::FailedPreconditionError(
        "Pager::RegisterRegion: only while stopped");
  }
  const uint64_t host = reinterpret_cast<uint64_t>(r.host);
  if (r.host == nullptr || !Aligned(host) || r.size == 0 || !Aligned(r.size) ||
      !Aligned(r.gpa) || r.gpa + r.size < r.gpa || host + r.size < host) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Pager::RegisterRegion host=0x", absl::Hex(host), " size=0x",
        absl::Hex(r.size), " gpa=0x", absl::Hex(r.gpa),
        ": host, size and gpa must be 4 KiB aligned, size non-zero"));
  }
  for (const Region& o : regions_) {
    const uint64_t ohost = reinterpret_cast<uint64_t>(o.host);
    if (host < ohost + o.size && ohost < host + r.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("Pager::RegisterRegion host=0x", absl::Hex(host),
                       ": overlaps the region at host=0x", absl::Hex(ohost)));
    }
    if (r.gpa < o.gpa_end() && o.gpa < r.gpa_end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Pager::RegisterRegion gpa=0x", absl::Hex(r.gpa),
                       ": overlaps the region at gpa=0x", absl::Hex(o.gpa)));
    }
  }
  // An adopted uffd's creator registered the region in its address space.
  if (!adopted_) SSIHV_RETURN_IF_ERROR(RegisterWithKernel(r));
  regions_.push_back(r);
  std::sort(regions_.begin(), regions_.end(),
            [](const Region& a, const Region& b) { return a.host < b.host; });
  return absl::OkStatus();
}

absl::Status Pager::RegisterWithKernel(const Region& r) {
  const bool shmem = r.backing == Backing::kMemfd;
  constexpr uint64_t kShmemFeatures =
      UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  if (shmem && !uffd_->Has(kShmemFeatures)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Pager::RegisterRegion gpa=0x", absl::Hex(r.gpa),
        ": memfd backing needs UFFD_FEATURE_MISSING_SHMEM and "
        "UFFD_FEATURE_WP_HUGETLBFS_SHMEM (Linux 6.0+); this kernel offers ",
        Userfaultfd::FeatureNames(uffd_->features()),
        ". Use anonymous backing."));
  }
  return uffd_->Register(r.host, r.size,
                         UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
                         shmem);
}

absl::Status Pager::RegisterGuestMemory(const GuestMemory& memory,
                                        uint64_t offset, uint64_t size,
                                        uint64_t gpa) {
  if (offset > memory.size() || size > memory.size() - offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Pager::RegisterGuestMemory offset=0x", absl::Hex(offset), " size=0x",
        absl::Hex(size), ": outside guest memory of 0x",
        absl::Hex(memory.size()), " bytes"));
  }
  return RegisterRegion({.host = memory.data() + offset,
                         .size = size,
                         .gpa = gpa,
                         .backing = memory.backing()});
}

absl::Status Pager::SetSource(std::shared_ptr<PageSource> source) {
  if (running()) {
    return absl::FailedPreconditionError(
        "Pager::SetSource: only while stopped");
  }
  source_ = std::move(source);
  return absl::OkStatus();
}

absl::Status Pager::Start() {
  if (running()) return absl::OkStatus();
  if (source_ == nullptr) {
    return absl::FailedPreconditionError("Pager::Start: no source (SetSource)");
  }
  if (regions_.empty()) {
    return absl::FailedPreconditionError(
        "Pager::Start: no region registered (RegisterRegion)");
  }
  if (adopted_) {
    // Another process's uffd (Firecracker opens it O_NONBLOCK): its fault
    // threads poll it with stop_fd_ (see FaultLoop).
    SSIHV_RETURN_IF_ERROR(sys::UffdSetNonblocking(uffd_->fd(), true));
  } else {
    // One sentinel page per fault thread: Stop() touches them (see Stop).
    const uint64_t sentinel_bytes = options_.fault_threads * kPageSize;
    SSIHV_ASSIGN_OR_RETURN(sentinel_,
                           base::MappedRegion::Anonymous(sentinel_bytes));
    SSIHV_RETURN_IF_ERROR(sys::Madvise(sentinel_.data(), sentinel_bytes,
                                       MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"));
    SSIHV_RETURN_IF_ERROR(uffd_->Register(sentinel_.data(), sentinel_bytes,
                                          UFFDIO_REGISTER_MODE_MISSING,
                                          /*shmem=*/false));
  }
  running_.store(true, std::memory_order_release);
  for (int i = 0; i < options_.fault_threads; ++i) {
    auto t = std::make_unique<FaultThread>();
    t->pager = this;
    t->index = i;
    threads_.push_back(std::move(t));
  }
  live_threads_.store(options_.fault_threads, std::memory_order_release);
  for (auto& t : threads_) {
    FaultThread* self = t.get();
    t->thread = std::thread([this, self] { FaultLoop(self); });
    base::NameThread(t->thread, absl::StrCat("ssihv-fault", self->index));
  }
  return absl::OkStatus();
}

// Fault threads block in read(2) on the uffd, so only a uffd message wakes
// them. Stop() sets stopping_ and a helper touches the sentinel pages (one
// per thread, registered MISSING, never mapped before) in turn: each touch
// wakes the thread blocked in read(2), which maps it and, like every fault
// thread after its current batch or before its next read, sees stopping_
// and exits. Once all are joined, unregistering the sentinel wakes the
// helper if its last touch found no thread left (the access then completes
// as an ordinary one), and the region is unmapped; the next Start()
// registers a new one.
void Pager::Stop() {
  if (!running()) return;
  stopping_.store(true, std::memory_order_release);
  if (adopted_) {
    // The eventfd stays readable until drained: every poller sees it.
    if (absl::Status st = sys::EventfdWrite(stop_fd_.get(), 1); !st.ok()) {
      ReportError(st);
    }
    for (auto& t : threads_) t->thread.join();
    threads_.clear();
    sys::EventfdDrain(stop_fd_.get());
    stopping_.store(false, std::memory_order_release);
    running_.store(false, std::memory_order_release);
    return;
  }
  std::thread toucher([this] {
    for (size_t i = 0; i < sentinel_.size() / kPageSize; ++i) {
      if (live_threads_.load(std::memory_order_acquire) == 0) return;
      (void)*reinterpret_cast<volatile uint8_t*>(sentinel_.data() +
                                                 i * kPageSize);
    }
  });
  for (auto& t : threads_) t->thread.join();
  if (absl::Status st = uffd_->Unregister(sentinel_.data(), sentinel_.size());
      !st.ok()) {
    ReportError(st);
  }
  toucher.join();
  threads_.clear();
  sentinel_ = base::MappedRegion();
  stopping_.store(false, std::memory_order_release);
  running_.store(false, std::memory_order_release);
}

// One fault thread at a time reads (read_mu_), blocked in read(2) until a
// message arrives (the kernel returns every message pending then, up to the
// batch); the others wait for the mutex. What was read is handled outside
// it, so the next thread reads while this one serves.
void Pager::FaultLoop(FaultThread* self) {
  tls_fault_thread = self;
  base::ApplyServiceNice(options_.thread_nice);
  uffd_msg msgs[kReadBatch];
  for (;;) {
    DrainBacklog(self);
    if (stopping_.load(std::memory_order_acquire)) break;
    if (adopted_) {
      // Non-blocking: wait for a message or Stop(); several threads may
      // wake for one message, and those that find nothing poll again.
      const int r = sys::PollUffdOrStop(uffd_->fd(), stop_fd_.get());
      if (r < 0) {
        ReportError(base::ErrnoStatus(-r, "poll uffd"));
        break;
      }
      if (r == 1) break;
    }
    ssize_t m;
    {
      std::lock_guard<std::mutex> lock(read_mu_);
      if (stopping_.load(std::memory_order_acquire)) break;
      m = ReadLocked(msgs, kReadBatch);
    }
    if (m < 0) {
      ReportError(base::ErrnoStatus(static_cast<int>(-m), "read uffd"));
      break;
    }
    DispatchFaults(msgs, static_cast<size_t>(m));
  }
  DrainBacklog(self);  // faults a pump read while this thread served
  live_threads_.fetch_sub(1, std::memory_order_acq_rel);
  tls_fault_thread = nullptr;
}

ssize_t Pager::ReadLocked(uffd_msg* msgs, size_t max) {
  // REMOVE events are handled inside the read's critical section: once the
  // event is read, the kernel lets madvise zap and return, and the very next
  // fault on those pages may be read by another thread at once; it must find
  // the source already told (else an image source would map old bytes).
  const ssize_t m = sys::UffdRead(uffd_->fd(), msgs, max);
  for (ssize_t i = 0; i < m; ++i) {
    if (msgs[i].event == UFFD_EVENT_REMOVE) HandleRemove(msgs[i]);
  }
  return m;
}

void Pager::DispatchFaults(const uffd_msg* msgs, size_t n) {
  size_t last = n;  // the batch's last page fault
  for (size_t i = n; i-- > 0;) {
    if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
      last = i;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
      HandlePageFault(msgs[i], /*more_follow=*/i < last);
    }
  }
}

void Pager::DrainBacklog(FaultThread* self) {
  while (!self->backlog.empty()) {
    std::vector<uffd_msg> batch;
    batch.swap(self->backlog);
    DispatchFaults(batch.data(), batch.size());
  }
}

// A pump never blocks. When another fault thread holds the reader role it
// is in (or about to enter) read(2) and handles whatever arrives, REMOVE
// events included. Otherwise this thread reads what is pending, and only
// that: with the role held nobody else reads, so it can switch the file to
// non-blocking for its reads (poll(2) cannot tell: on a blocking uffd it
// answers EPOLLERR). Pumps are the rare path (lock spins, EAGAIN retries).
void Pager::ReadIntoBacklog(FaultThread* self) {
  std::unique_lock<std::mutex> lock(read_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  const bool toggle = !adopted_;  // an adopted uffd is non-blocking already
  if (absl::Status st = toggle ? sys::UffdSetNonblocking(uffd_->fd(), true)
                               : absl::OkStatus();
      !st.ok()) {
    ReportError(st);
    return;
  }
  uffd_msg msgs[kReadBatch];
  for (;;) {
    const ssize_t m = ReadLocked(msgs, kReadBatch);
    for (ssize_t i = 0; i < m; ++i) {
      if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
        self->backlog.push_back(msgs[i]);
    }
    if (m < static_cast<ssize_t>(kReadBatch)) break;
  }
  if (!toggle) return;
  if (absl::Status st = sys::UffdSetNonblocking(uffd_->fd(), false); !st.ok()) {
    ReportError(st);
  }
}

void Pager::HandlePageFault(const uffd_msg& msg, bool more_follow) {
  const uint64_t addr = msg.arg.pagefault.address & ~(kPageSize - 1);
  const uint64_t sentinel = reinterpret_cast<uint64_t>(sentinel_.data());
  if (addr - sentinel < sentinel_.size()) {  // Stop()'s wake-up call
    (void)uffd_->ZeroPage(reinterpret_cast<uint8_t*>(addr), kPageSize);
    return;
  }
  messages_.fetch_add(1, std::memory_order_relaxed);
  const Region* r = RegionOfHost(addr);
  if (r == nullptr) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    ReportError(absl::InternalError(
        absl::StrCat("uffd fault at host address 0x", absl::Hex(addr),
                     " outside every registered region")));
    return;
  }
  Fault f;
  f.host = reinterpret_cast<uint8_t*>(addr);
  f.gpa = r->gpa + (addr - reinterpret_cast<uint64_t>(r->host));
  const uint64_t flags = msg.arg.pagefault.flags;
  f.access = (flags & UFFD_PAGEFAULT_FLAG_WP)      ? FaultAccess::kWriteProtect
             : (flags & UFFD_PAGEFAULT_FLAG_WRITE) ? FaultAccess::kWrite
                                                   : FaultAccess::kRead;
  f.thread_id = msg.arg.pagefault.feat.ptid;
  f.start_ns = MonotonicNs();
  f.more_follow = more_follow;
  source_->OnFault(f, resolver_);
}

void Pager::HandleRemove(const uffd_msg& msg) {
  remove_events_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t start = msg.arg.remove.start;
  const uint64_t end = msg.arg.remove.end;
  for (const Region& r : regions_) {
    const uint64_t rs = reinterpret_cast<uint64_t>(r.host);
    const uint64_t lo = std::max(start, rs);
    const uint64_t hi = std::min(end, rs + r.size);
    if (lo >= hi) continue;
    removed_bytes_.fetch_add(hi - lo, std::memory_order_relaxed);
    source_->OnRemove(r.gpa + (lo - rs), hi - lo);
  }
}

const Region* Pager::RegionOfHost(uint64_t addr) const {
  for (const Region& r : regions_) {
    const uint64_t rs = reinterpret_cast<uint64_t>(r.host);
    if (addr >= rs && addr - rs < r.size) return &r;
  }
  return nullptr;
}

void Pager::ReportError(const absl::Status& status) {
  base::Log(base::LogLevel::kError, "pager: ", status.ToString());
  if (options_.on_error) options_.on_error(status);
}

void Pager::ReleaseFailedFaults() {
  std::vector<uint64_t> pages;
  {
    std::lock_guard<std::mutex> lock(failed_mu_);
    release_failed_ = true;
    pages.swap(failed_pages_);
  }
  for (uint64_t gpa : pages) resolver_.ReleasePage(gpa);
}

void Pager::RecordResolution(FaultKind kind, int64_t start_ns) {
  latency_[static_cast<size_t>(kind)].Record(MonotonicNs() - start_ns);
}

PagerStats Pager::Stats() const {
  PagerStats s;
  for (size_t k = 0; k < kNumFaultKinds; ++k) {
    s.latency[k] = latency_[k].Summarize();
    s.buckets[k] = latency_[k].Buckets();
    s.faults[k] = s.latency[k].count;
  }
  s.all = LatencyHistogram::SummarizeMerged(latency_.data(), kNumFaultKinds);
  s.messages = messages_.load(std::memory_order_relaxed);
  s.eexist_races = eexist_races_.load(std::memory_order_relaxed);
  s.eagain_retries = eagain_retries_.load(std::memory_order_relaxed);
  s.remove_events = remove_events_.load(std::memory_order_relaxed);
  s.removed_bytes = removed_bytes_.load(std::memory_order_relaxed);
  s.errors = errors_.load(std::memory_order_relaxed);
  s.filled_ahead = filled_ahead_.load(std::memory_order_relaxed);
  s.released = released_.load(std::memory_order_relaxed);
  s.features = uffd_->features();
  return s;
}

void Pager::ResetStats() {
  for (auto& h : latency_) h.Reset();
  for (auto* c : {&messages_, &eexist_races_, &eagain_retries_, &remove_events_,
                  &removed_bytes_, &errors_, &filled_ahead_, &released_}) {
    c->store(0, std::memory_order_relaxed);
  }
}

uint64_t Pager::features() const { return uffd_->features(); }

std::string Pager::Describe() const {
  std::string s = absl::StrCat(
      "userfaultfd via ", uffd_->opened_via(), ", features ",
      Userfaultfd::FeatureNames(uffd_->features()), ", ",
      options_.fault_threads, " fault thread(s), source ",
      source_ ? std::string(source_->name()) : std::string("none"));
  for (const Region& r : regions_) {
    absl::StrAppend(&s, "; gpa [0x", absl::Hex(r.gpa), ", 0x",
                    absl::Hex(r.gpa_end()), ") ",
                    std::string(BackingName(r.backing)));
  }
  return s;
}

}  // namespace ssihv::pager
