#include "regions.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ssihv::rdmax {

absl::Status OutsideRegion(NodeId node, RegionId region, uint64_t offset,
                           uint64_t length, uint64_t region_length) {
  return absl::OutOfRangeError(absl::StrCat(
      "fetch node=", node, " region=", region, " offset=0x", absl::Hex(offset),
      " length=", length, ": outside the region (", region_length, " bytes)"));
}

absl::Status LocalRegions::Validate(RegionId id, const void* base,
                                    size_t length) const {
  if (base == nullptr || length == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RegisterRegion id=", id, ": empty range"));
  }
  uintptr_t b = reinterpret_cast<uintptr_t>(base);
  if (b + length < b) {
    return absl::InvalidArgumentError(
        absl::StrCat("RegisterRegion id=", id, ": range wraps around"));
  }
  for (const LocalRegion& r : regions_) {
    if (r.id == id) {
      return absl::AlreadyExistsError(
          absl::StrCat("RegisterRegion id=", id, ": id already registered"));
    }
  }
  return absl::OkStatus();
}

void LocalRegions::Add(const LocalRegion& region) {
  regions_.push_back(region);
}

absl::StatusOr<LocalRegion> LocalRegions::Remove(RegionId id) {
  auto it = std::find_if(regions_.begin(), regions_.end(),
                         [&](const LocalRegion& r) { return r.id == id; });
  if (it == regions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("UnregisterRegion id=", id, ": not registered"));
  }
  LocalRegion r = *it;
  regions_.erase(it);
  return r;
}

RegionEntry LocalRegions::EntryOf(const LocalRegion& r) {
  RegionEntry e;
  e.id = r.id;
  e.rkey = r.rkey;
  e.base = r.mr != nullptr ? reinterpret_cast<uint64_t>(r.base) : 0;
  e.length = r.length;
  return e;
}

std::vector<RegionEntry> LocalRegions::ExportedEntries() const {
  std::vector<RegionEntry> out;
  for (const LocalRegion& r : regions_) {
    if (r.access == RegionAccess::kRemoteRead) out.push_back(EntryOf(r));
  }
  return out;
}

absl::StatusOr<const uint8_t*> LocalRegions::ResolveForServing(
    NodeId self, RegionId id, uint64_t offset, uint64_t length) const {
  for (const LocalRegion& r : regions_) {
    if (r.id != id || r.access != RegionAccess::kRemoteRead) continue;
    if (!InBounds(r.length, offset, length)) {
      return OutsideRegion(self, id, offset, length, r.length);
    }
    return r.base + offset;
  }
  return absl::NotFoundError(
      absl::StrCat("fetch node=", self, " region=", id, ": no such region"));
}

std::optional<LocalRegion> LocalRegions::Containing(const void* p,
                                                    size_t length) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (const LocalRegion& r : regions_) {
    uintptr_t b = reinterpret_cast<uintptr_t>(r.base);
    if (a >= b && InBounds(r.length, a - b, length)) return r;
  }
  return std::nullopt;
}

void PeerRegions::Reset(const std::vector<RegionEntry>& entries) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_ = entries;
}

void PeerRegions::Add(const RegionEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  for (RegionEntry& e : entries_) {
    if (e.id == entry.id) {
      e = entry;
      return;
    }
  }
  entries_.push_back(entry);
}

void PeerRegions::Remove(uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(
      std::remove_if(entries_.begin(), entries_.end(),
                     [&](const RegionEntry& e) { return e.id == id; }),
      entries_.end());
}

absl::StatusOr<RegionEntry> PeerRegions::Check(NodeId peer, RegionId id,
                                               uint64_t offset,
                                               uint64_t length) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const RegionEntry& e : entries_) {
    if (e.id != id) continue;
    if (!InBounds(e.length, offset, length)) {
      return OutsideRegion(peer, id, offset, length, e.length);
    }
    return e;
  }
  return absl::NotFoundError(absl::StrCat("fetch node=", peer, " region=", id,
                                          ": the peer exports no such region"));
}

}  // namespace ssihv::rdmax
