#include "ssihv/cluster/layout.h"

#include <algorithm>
#include <cassert>

namespace ssihv::cluster {

GuestLayout::GuestLayout(const ClusterConfig& config) {
  uint64_t offset = 0;
  uint32_t vcpu = 0;
  for (const NodeConfig& node : config.nodes) {
    node_ram_start_.push_back(offset);
    first_vcpu_.push_back(vcpu);
    vcpus_.push_back(node.vcpus);
    vcpu += node.vcpus;
    uint64_t start = offset;
    uint64_t end = offset + node.memory_bytes();
    // A node straddling the hole start becomes two GPA ranges.
    if (start < kMmioHoleStart && end > kMmioHoleStart) {
      ranges_.push_back({start, kMmioHoleStart - start, start, node.id});
      ranges_.push_back({kMmioHoleEnd, end - kMmioHoleStart, kMmioHoleStart,
                         node.id});
    } else {
      ranges_.push_back({RamOffsetToGpa(start), end - start, start, node.id});
    }
    offset = end;
  }
  ram_bytes_ = offset;
  total_vcpus_ = vcpu;
}

std::vector<GpaRange> GuestLayout::RangesOfNode(uint32_t node) const {
  std::vector<GpaRange> out;
  for (const GpaRange& r : ranges_) {
    if (r.node == node) out.push_back(r);
  }
  return out;
}

uint64_t GuestLayout::max_gpa() const {
  return ranges_.empty() ? 0 : ranges_.back().end();
}

std::optional<uint64_t> GuestLayout::GpaToRamOffset(uint64_t gpa) {
  if (gpa < kMmioHoleStart) return gpa;
  if (gpa < kMmioHoleEnd) return std::nullopt;
  return gpa - (kMmioHoleEnd - kMmioHoleStart);
}

const GpaRange* GuestLayout::RangeOf(uint64_t gpa) const {
  // Ranges are sorted by GPA: find the last one starting at or below gpa.
  auto it = std::upper_bound(
      ranges_.begin(), ranges_.end(), gpa,
      [](uint64_t a, const GpaRange& r) { return a < r.gpa; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  return it->Contains(gpa) ? &*it : nullptr;
}

std::optional<uint32_t> GuestLayout::HomeOf(uint64_t gpa) const {
  const GpaRange* r = RangeOf(gpa);
  if (r == nullptr) return std::nullopt;
  return r->node;
}

uint32_t GuestLayout::NodeOfVcpu(uint32_t vcpu) const {
  assert(vcpu < total_vcpus_);
  // The last node whose first vCPU is <= vcpu; memory-only nodes share their
  // first index with the next node and so are never that last one.
  auto it = std::upper_bound(first_vcpu_.begin(), first_vcpu_.end(), vcpu);
  return static_cast<uint32_t>(it - first_vcpu_.begin()) - 1;
}

}  // namespace ssihv::cluster
