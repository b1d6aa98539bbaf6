// Memory regions: the ones this node registered (LocalRegions, served to
// peers and used as RDMA READ destinations) and the ones each peer
// advertised (PeerRegions, checked before a fetch is even sent).
#ifndef SSIHV_RDMAX_REGIONS_H_
#define SSIHV_RDMAX_REGIONS_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::rdmax {

/// Whether [offset, offset + length) lies inside a region of
/// `region_length` bytes (no overflow for any input).
inline bool InBounds(uint64_t region_length, uint64_t offset, uint64_t length) {
  return length > 0 && offset <= region_length &&
         length <= region_length - offset;
}

absl::Status OutsideRegion(NodeId node, RegionId region, uint64_t offset,
                           uint64_t length, uint64_t region_length);

struct LocalRegion {
  RegionId id = 0;
  uint8_t* base = nullptr;
  size_t length = 0;
  RegionAccess access = RegionAccess::kRemoteRead;
  // RDMA: the memory registration (opaque here) and its keys.
  void* mr = nullptr;
  uint32_t lkey = 0;
  uint32_t rkey = 0;
};

class LocalRegions {
 public:
  /// InvalidArgument for a null/empty range, AlreadyExists for a taken id.
  absl::Status Validate(RegionId id, const void* base, size_t length) const;
  void Add(const LocalRegion& region);
  /// NotFound when absent.
  absl::StatusOr<LocalRegion> Remove(RegionId id);

  /// Entries of every exported region (for the region table frame).
  std::vector<RegionEntry> ExportedEntries() const;
  static RegionEntry EntryOf(const LocalRegion& region);

  /// Serving a peer's fetch: with the shared lock held for as long as the
  /// bytes are read (so UnregisterRegion waits for it), the address of
  /// [offset, offset + length) of exported region `id`, or why not.
  class ReadLock {
   public:
    explicit ReadLock(const LocalRegions& r) : lock_(r.mu_) {}

   private:
    std::shared_lock<std::shared_mutex> lock_;
  };
  /// Call with a ReadLock held.
  absl::StatusOr<const uint8_t*> ResolveForServing(NodeId self, RegionId id,
                                                   uint64_t offset,
                                                   uint64_t length) const;
  /// The registered region (any access) containing [p, p + length): an RDMA
  /// READ destination. nullopt when none does.
  std::optional<LocalRegion> Containing(const void* p, size_t length) const;

  /// Exclusive lock, held while adding/removing and while snapshotting the
  /// table for a new connection (so a region is advertised exactly once).
  std::shared_mutex& mutex() const { return mu_; }

 private:
  mutable std::shared_mutex mu_;
  std::vector<LocalRegion> regions_;
};

class PeerRegions {
 public:
  void Reset(const std::vector<RegionEntry>& entries);
  /// Adds or replaces one region.
  void Add(const RegionEntry& entry);
  void Remove(uint32_t id);
  /// The entry for a fetch of [offset, offset + length), NotFound or
  /// OutOfRange otherwise.
  absl::StatusOr<RegionEntry> Check(NodeId peer, RegionId id, uint64_t offset,
                                    uint64_t length) const;

 private:
  mutable std::mutex mu_;
  std::vector<RegionEntry> entries_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_REGIONS_H_
