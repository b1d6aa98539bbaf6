#include "guest_ram.h"

#include <algorithm>
#include <bit>
#include <optional>

#include "ssihv/base/status_macros.h"

namespace ssihv::vmm {

// Zero-fills faults, counting them per layout range, and fills the rest of
// the fault's aligned block ahead of the guest. A bitmap of the pages this
// source mapped keeps fault-around from touching mapped pages (which would
// only come back as EEXIST races); every page is mapped through this source.
class GuestRam::CountingSource final : public pager::PageSource {
 public:
  CountingSource(const std::vector<cluster::GpaRange>& ranges,
                 uint64_t ram_bytes, uint64_t fault_around)
      : ranges_(ranges),
        counts_(ranges.size()),
        fault_around_(fault_around),
        mapped_((ram_bytes / pager::kPageSize + 63) / 64),
        zero_page_(pager::kPageSize, 0) {}

  void OnFault(const pager::Fault& fault, pager::Resolver& resolver) override {
    const cluster::GpaRange* range = RangeOf(fault.gpa);
    if (range != nullptr) {
      counts_[static_cast<size_t>(range - ranges_.data())].fetch_add(
          1, std::memory_order_relaxed);
      MarkMapped(*range, fault.gpa);
    }
    zero_.OnFault(fault, resolver);  // the vCPU resumes first
    if (range != nullptr && fault_around_ > pager::kPageSize) {
      FillAround(*range, fault.gpa, resolver);
    }
  }

  void OnRemove(uint64_t gpa, uint64_t len) override {
    for (uint64_t p = gpa; p < gpa + len; p += pager::kPageSize) {
      const cluster::GpaRange* range = RangeOf(p);
      if (range == nullptr) continue;
      uint64_t page = (range->ram_offset + p - range->gpa) / pager::kPageSize;
      mapped_[page / 64].fetch_and(~(1ull << (page % 64)),
                                   std::memory_order_relaxed);
    }
  }

  std::string_view name() const override { return "zero"; }

  std::vector<uint64_t> Counts() const {
    std::vector<uint64_t> out;
    for (const auto& c : counts_)
      out.push_back(c.load(std::memory_order_relaxed));
    return out;
  }
  uint64_t filled_ahead() const {
    return filled_ahead_.load(std::memory_order_relaxed);
  }
  std::optional<bool> Mapped(uint64_t gpa) const {
    const cluster::GpaRange* range = RangeOf(gpa);
    if (range == nullptr) return std::nullopt;
    const uint64_t page =
        (range->ram_offset + gpa - range->gpa) / pager::kPageSize;
    return (mapped_[page / 64].load(std::memory_order_relaxed) >> (page % 64)) &
           1;
  }
  uint64_t MappedPages() const {
    uint64_t n = 0;
    for (const auto& w : mapped_) {
      n += std::popcount(w.load(std::memory_order_relaxed));
    }
    return n;
  }

 private:
  const cluster::GpaRange* RangeOf(uint64_t gpa) const {
    auto it = std::upper_bound(
        ranges_.begin(), ranges_.end(), gpa,
        [](uint64_t g, const cluster::GpaRange& r) { return g < r.gpa; });
    if (it == ranges_.begin() || !(it - 1)->Contains(gpa)) return nullptr;
    return &*(it - 1);
  }

  // Sets the page's bit; returns whether it was clear.
  bool MarkMapped(const cluster::GpaRange& range, uint64_t gpa) {
    uint64_t page = (range.ram_offset + gpa - range.gpa) / pager::kPageSize;
    uint64_t bit = 1ull << (page % 64);
    return !(mapped_[page / 64].fetch_or(bit, std::memory_order_relaxed) & bit);
  }

  // Upward first: the walks this helps (zeroing, memmap init) ascend.
  void FillAround(const cluster::GpaRange& range, uint64_t gpa,
                  pager::Resolver& resolver) {
    const uint64_t block = gpa & ~(fault_around_ - 1);
    const uint64_t lo = std::max(block, range.gpa);
    const uint64_t hi = std::min(block + fault_around_, range.end());
    auto fill = [&](uint64_t p) {
      if (!MarkMapped(range, p)) return;
      bool installed = false;
      if (resolver.CopyPage(p, zero_page_.data(), false, &installed).ok() &&
          installed) {
        filled_ahead_.fetch_add(1, std::memory_order_relaxed);
      }
    };
    for (uint64_t p = gpa + pager::kPageSize; p < hi; p += pager::kPageSize)
      fill(p);
    for (uint64_t p = lo; p < gpa; p += pager::kPageSize) fill(p);
  }

  const std::vector<cluster::GpaRange> ranges_;
  std::vector<std::atomic<uint64_t>> counts_;
  const uint64_t fault_around_;
  std::vector<std::atomic<uint64_t>> mapped_;  // one bit per RAM page
  std::atomic<uint64_t> filled_ahead_{0};
  const std::vector<uint8_t> zero_page_;
  pager::ZeroSource zero_;
};

absl::StatusOr<std::unique_ptr<GuestRam>> GuestRam::Create(
    const cluster::GuestLayout& layout, int fault_threads,
    uint64_t fault_around, std::function<void(const absl::Status&)> on_error) {
  if (fault_around != 0 && (fault_around < pager::kPageSize ||
                            (fault_around & (fault_around - 1)) != 0)) {
    return absl::InvalidArgumentError(
        "fault-around: must be 0 or a power of two of at least 4 KiB");
  }
  std::unique_ptr<GuestRam> ram(new GuestRam());
  ram->ranges_ = layout.ranges();
  SSIHV_ASSIGN_OR_RETURN(pager::GuestMemory memory,
                         pager::GuestMemory::Create(layout.ram_bytes()));
  ram->memory_ = std::make_shared<pager::GuestMemory>(std::move(memory));
  SSIHV_ASSIGN_OR_RETURN(
      ram->pager_, pager::Pager::Create({.fault_threads = fault_threads,
                                         .on_error = std::move(on_error)}));
  for (const cluster::GpaRange& r : ram->ranges_) {
    SSIHV_RETURN_IF_ERROR(ram->pager_->RegisterGuestMemory(
        *ram->memory_, r.ram_offset, r.size, r.gpa));
  }
  ram->source_ = std::make_shared<CountingSource>(
      ram->ranges_, layout.ram_bytes(), fault_around);
  SSIHV_RETURN_IF_ERROR(ram->pager_->SetSource(ram->source_));
  return ram;
}

GuestRam::~GuestRam() {
  if (pager_) pager_->Stop();
}

std::vector<uint64_t> GuestRam::FaultsPerRange() const {
  return source_->Counts();
}

uint64_t GuestRam::PagesFilledAhead() const { return source_->filled_ahead(); }

std::optional<bool> GuestRam::Mapped(uint64_t gpa) const {
  return source_->Mapped(gpa);
}

uint64_t GuestRam::MappedPages() const { return source_->MappedPages(); }

uint64_t GuestRam::TotalPages() const {
  uint64_t n = 0;
  for (const cluster::GpaRange& r : ranges_) n += r.size / pager::kPageSize;
  return n;
}

}  // namespace ssihv::vmm
