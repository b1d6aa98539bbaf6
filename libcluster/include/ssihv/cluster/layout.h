// The guest physical layout derived from a cluster config, shared by the
// ACPI tables (SRAT, e820), the VMM and the DSM directory (home of a page).
//
// Node memory is laid out in node-id order as one RAM space starting at 0.
// RAM offset x maps to GPA x below 3 GiB and to GPA x + 1 GiB from 3 GiB on:
// [3 GiB, 4 GiB) is the MMIO hole (LAPIC, IOAPIC, ...). A node's RAM may be
// split by the hole into two GPA ranges.
#ifndef SSIHV_CLUSTER_LAYOUT_H_
#define SSIHV_CLUSTER_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "ssihv/cluster/config.h"

namespace ssihv::cluster {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kMmioHoleStart = uint64_t{3} << 30;
inline constexpr uint64_t kMmioHoleEnd = uint64_t{4} << 30;

/// One contiguous piece of guest RAM owned by one node.
struct GpaRange {
  uint64_t gpa = 0;         // first guest-physical address
  uint64_t size = 0;        // bytes, a multiple of 2 MiB
  uint64_t ram_offset = 0;  // offset of `gpa` in the flat RAM space
  uint32_t node = 0;

  uint64_t end() const { return gpa + size; }
  bool Contains(uint64_t addr) const { return addr >= gpa && addr < end(); }
};

class GuestLayout {
 public:
  explicit GuestLayout(const ClusterConfig& config);

  /// Every RAM range in ascending GPA order.
  const std::vector<GpaRange>& ranges() const { return ranges_; }
  /// The ranges of one node (one, or two when split by the hole).
  std::vector<GpaRange> RangesOfNode(uint32_t node) const;

  uint64_t ram_bytes() const { return ram_bytes_; }
  /// One past the highest RAM GPA.
  uint64_t max_gpa() const;
  size_t num_nodes() const { return node_ram_start_.size(); }

  static uint64_t RamOffsetToGpa(uint64_t offset) {
    return offset < kMmioHoleStart ? offset
                                   : offset + (kMmioHoleEnd - kMmioHoleStart);
  }
  /// nullopt inside the hole.
  static std::optional<uint64_t> GpaToRamOffset(uint64_t gpa);

  /// The node whose RAM contains `gpa`, or nullopt outside RAM.
  std::optional<uint32_t> HomeOf(uint64_t gpa) const;
  /// The range containing `gpa`, or nullptr.
  const GpaRange* RangeOf(uint64_t gpa) const;

  /// vCPUs are numbered globally in node-id order; APIC ID = global index.
  uint32_t total_vcpus() const { return total_vcpus_; }
  uint32_t FirstVcpuOfNode(uint32_t node) const { return first_vcpu_[node]; }
  uint32_t VcpusOfNode(uint32_t node) const { return vcpus_[node]; }
  uint32_t NodeOfVcpu(uint32_t vcpu) const;

 private:
  std::vector<GpaRange> ranges_;
  std::vector<uint64_t> node_ram_start_;
  std::vector<uint32_t> first_vcpu_;
  std::vector<uint32_t> vcpus_;
  uint64_t ram_bytes_ = 0;
  uint32_t total_vcpus_ = 0;
};

}  // namespace ssihv::cluster

#endif  // SSIHV_CLUSTER_LAYOUT_H_
