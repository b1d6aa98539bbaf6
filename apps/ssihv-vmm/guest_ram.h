// Guest RAM for ssihv-vmm: one anonymous mapping of the cluster's flat RAM
// space, owned by the userfaultfd pager (libpager) with a zero-fill source,
// each node's GPA ranges registered separately and their faults counted, so
// "the pager served every node's memory" is observable.
#ifndef SSIHV_APPS_VMM_GUEST_RAM_H_
#define SSIHV_APPS_VMM_GUEST_RAM_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/pager.h"

namespace ssihv::vmm {

class GuestRam {
 public:
  /// Maps the RAM and registers every range of `layout` with a new pager
  /// (not yet started). `on_error` is the pager's unresolvable-fault hook.
  /// `fault_around` bytes (a power of two >= 4 KiB, or 0): on a fault, the
  /// not yet mapped pages of the aligned block around it (inside the same
  /// node range) are zero-filled too, sparing the guest one fault round trip
  /// per page of a block it is about to walk (boot zeroes memory in order).
  static absl::StatusOr<std::unique_ptr<GuestRam>> Create(
      const cluster::GuestLayout& layout, int fault_threads,
      uint64_t fault_around, std::function<void(const absl::Status&)> on_error);
  ~GuestRam();

  /// Host address of a layout range's first byte.
  uint8_t* HostOf(const cluster::GpaRange& range) const {
    return memory_->data() + range.ram_offset;
  }
  /// Keeps the mapping alive (handed to the KVM memory slots).
  std::shared_ptr<const void> owner() const { return memory_; }

  absl::Status Start() { return pager_->Start(); }
  void Stop() { pager_->Stop(); }
  /// Pager::ReleaseFailedFaults (the guest is stopping).
  void ReleaseFailedFaults() { pager_->ReleaseFailedFaults(); }

  pager::PagerStats Stats() const { return pager_->Stats(); }
  /// Faults served in each layout range, in layout.ranges() order.
  std::vector<uint64_t> FaultsPerRange() const;
  /// Pages zero-filled ahead of a fault (fault-around), all ranges.
  uint64_t PagesFilledAhead() const;
  const std::vector<cluster::GpaRange>& ranges() const { return ranges_; }
  /// Whether the pager has mapped (or is mapping) the page at `gpa`;
  /// nullopt outside guest RAM. Any thread.
  std::optional<bool> Mapped(uint64_t gpa) const;
  /// Pages mapped so far, and all of guest RAM's pages.
  uint64_t MappedPages() const;
  uint64_t TotalPages() const;

 private:
  class CountingSource;
  GuestRam() = default;

  std::vector<cluster::GpaRange> ranges_;
  std::shared_ptr<pager::GuestMemory> memory_;
  std::shared_ptr<CountingSource> source_;
  std::unique_ptr<pager::Pager> pager_;  // last: stops before the rest goes
};

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_GUEST_RAM_H_
