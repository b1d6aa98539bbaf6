#include "guest_ram.h"

#include <algorithm>

#include "ssihv/base/status_macros.h"

namespace ssihv::vmm {

// Counts each fault against its layout range, then zero-fills it.
class GuestRam::CountingSource final : public pager::PageSource {
 public:
  explicit CountingSource(const std::vector<cluster::GpaRange>& ranges)
      : ranges_(ranges), counts_(ranges.size()) {}

  void OnFault(const pager::Fault& fault, pager::Resolver& resolver) override {
    auto it = std::upper_bound(
        ranges_.begin(), ranges_.end(), fault.gpa,
        [](uint64_t gpa, const cluster::GpaRange& r) { return gpa < r.gpa; });
    if (it != ranges_.begin() && (it - 1)->Contains(fault.gpa)) {
      counts_[static_cast<size_t>(it - 1 - ranges_.begin())].fetch_add(
          1, std::memory_order_relaxed);
    }
    zero_.OnFault(fault, resolver);
  }
  std::string_view name() const override { return "zero"; }

  std::vector<uint64_t> Counts() const {
    std::vector<uint64_t> out;
    for (const auto& c : counts_)
      out.push_back(c.load(std::memory_order_relaxed));
    return out;
  }

 private:
  const std::vector<cluster::GpaRange> ranges_;
  std::vector<std::atomic<uint64_t>> counts_;
  pager::ZeroSource zero_;
};

absl::StatusOr<std::unique_ptr<GuestRam>> GuestRam::Create(
    const cluster::GuestLayout& layout, int fault_threads,
    std::function<void(const absl::Status&)> on_error) {
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
  ram->source_ = std::make_shared<CountingSource>(ram->ranges_);
  SSIHV_RETURN_IF_ERROR(ram->pager_->SetSource(ram->source_));
  return ram;
}

GuestRam::~GuestRam() {
  if (pager_) pager_->Stop();
}

std::vector<uint64_t> GuestRam::FaultsPerRange() const {
  return source_->Counts();
}

}  // namespace ssihv::vmm
