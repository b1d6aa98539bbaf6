// Guest-physical to host-virtual translation over the RAM the VMM mapped.
// Pure bookkeeping (no KVM): the boot code writes the kernel, boot_params and
// page tables through it, and unit tests run it over plain buffers.
#ifndef SSIHV_KVM_GUEST_MEMORY_H_
#define SSIHV_KVM_GUEST_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ssihv::kvm {

/// One contiguous guest-physical range backed by host memory.
struct GuestRegion {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;

  uint64_t end() const { return gpa + size; }
};

/// A set of non-overlapping guest regions. Does not own the host memory:
/// the Vm (memory slots) or the test keeps it alive.
class GuestMemory {
 public:
  /// Adds a region; InvalidArgument if it overlaps one already added, is
  /// empty, or wraps around the address space.
  absl::Status AddRegion(const GuestRegion& region);

  /// Host pointer for [gpa, gpa + len), or nullptr unless one region holds
  /// the whole span.
  uint8_t* HostAddress(uint64_t gpa, uint64_t len) const;

  /// Copies `data` to guest-physical `gpa`; the error names the range.
  absl::Status Write(uint64_t gpa, absl::Span<const uint8_t> data) const;
  /// Copies guest-physical [gpa, gpa + out.size()) into `out`.
  absl::Status Read(uint64_t gpa, absl::Span<uint8_t> out) const;

  /// Typed helpers for little-endian scalars and structs.
  template <typename T>
  absl::Status WriteObject(uint64_t gpa, const T& value) const {
    return Write(gpa, absl::MakeConstSpan(
                          reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }
  template <typename T>
  absl::StatusOr<T> ReadObject(uint64_t gpa) const {
    T value{};
    absl::Status st = Read(
        gpa, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
    if (!st.ok()) return st;
    return value;
  }

  /// True if [gpa, gpa + len) lies entirely inside one region.
  bool Contains(uint64_t gpa, uint64_t len) const {
    return HostAddress(gpa, len) != nullptr;
  }

  const std::vector<GuestRegion>& regions() const { return regions_; }

 private:
  std::vector<GuestRegion> regions_;  // sorted by gpa
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_GUEST_MEMORY_H_
