#include "ssihv/kvm/guest_memory.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ssihv::kvm {

absl::Status GuestMemory::AddRegion(const GuestRegion& region) {
  if (region.size == 0 || region.host == nullptr ||
      region.gpa + region.size < region.gpa) {
    return absl::InvalidArgumentError(
        absl::StrCat("guest region gpa=0x", absl::Hex(region.gpa), " size=0x",
                     absl::Hex(region.size), ": empty, unbacked or wrapping"));
  }
  for (const GuestRegion& r : regions_) {
    if (region.gpa < r.end() && r.gpa < region.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("guest region [0x", absl::Hex(region.gpa), ", 0x",
                       absl::Hex(region.end()), ") overlaps [0x",
                       absl::Hex(r.gpa), ", 0x", absl::Hex(r.end()), ")"));
    }
  }
  auto pos = std::lower_bound(
      regions_.begin(), regions_.end(), region.gpa,
      [](const GuestRegion& r, uint64_t gpa) { return r.gpa < gpa; });
  regions_.insert(pos, region);
  return absl::OkStatus();
}

uint8_t* GuestMemory::HostAddress(uint64_t gpa, uint64_t len) const {
  auto it = std::upper_bound(
      regions_.begin(), regions_.end(), gpa,
      [](uint64_t a, const GuestRegion& r) { return a < r.gpa; });
  if (it == regions_.begin()) return nullptr;
  const GuestRegion& r = *--it;
  uint64_t off = gpa - r.gpa;
  if (off >= r.size || len > r.size - off) return nullptr;
  return r.host + off;
}

absl::Status GuestMemory::Write(uint64_t gpa,
                                absl::Span<const uint8_t> data) const {
  if (data.empty()) return absl::OkStatus();
  uint8_t* dst = HostAddress(gpa, data.size());
  if (dst == nullptr) {
    return absl::OutOfRangeError(
        absl::StrCat("guest write [0x", absl::Hex(gpa), ", 0x",
                     absl::Hex(gpa + data.size()), "): not inside guest RAM"));
  }
  std::memcpy(dst, data.data(), data.size());
  return absl::OkStatus();
}

absl::Status GuestMemory::Read(uint64_t gpa, absl::Span<uint8_t> out) const {
  if (out.empty()) return absl::OkStatus();
  const uint8_t* src = HostAddress(gpa, out.size());
  if (src == nullptr) {
    return absl::OutOfRangeError(
        absl::StrCat("guest read [0x", absl::Hex(gpa), ", 0x",
                     absl::Hex(gpa + out.size()), "): not inside guest RAM"));
  }
  std::memcpy(out.data(), src, out.size());
  return absl::OkStatus();
}

}  // namespace ssihv::kvm
