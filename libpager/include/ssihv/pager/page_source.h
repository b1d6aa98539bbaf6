// PageSource: where the bytes of a faulting page come from. The pager calls
// the source for every fault; the source resolves it through the Resolver,
// immediately (local sources) or later from another thread (the DSM node,
// whose bytes arrive from the network).
#ifndef SSIHV_PAGER_PAGE_SOURCE_H_
#define SSIHV_PAGER_PAGE_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/pager/discarded_pages.h"
#include "ssihv/pager/fault.h"

namespace ssihv::pager {

class Resolver;

class PageSource {
 public:
  virtual ~PageSource() = default;

  /// Called on a fault thread for each fault read from the uffd. The source
  /// resolves it through `resolver` (ZeroFill, Copy, Unprotect, or Fail)
  /// before returning or later from any thread; until then the faulting
  /// thread (a vCPU) stays blocked. Several threads faulting on one page
  /// produce one call each: resolving any of them wakes all of them, and
  /// resolving the others is harmless (counted as an EEXIST race). While it
  /// runs, this fault thread serves no other fault: do not block on I/O.
  virtual void OnFault(const Fault& fault, Resolver& resolver) = 0;

  /// [gpa, gpa + len) is being dropped by MADV_DONTNEED / MADV_REMOVE (a
  /// UFFD_EVENT_REMOVE; the kernel zaps the pages right after the event is
  /// read). The next access to those pages faults again and must see zeros
  /// or freshly fetched bytes, never what the source served before. Called
  /// on a fault thread while it holds the uffd's read lock, before any later
  /// fault is read: keep it short (set a bit) and take no lock that OnFault
  /// holds, because it may also run re-entrantly inside an OnFault of the
  /// same thread whose resolution waits for the REMOVE event (EAGAIN).
  virtual void OnRemove(uint64_t /*gpa*/, uint64_t /*len*/) {}

  /// For logs and stats ("zero", "image", "dsm").
  virtual std::string_view name() const = 0;
};

/// Every page starts as zeros: read faults map the shared zero page (no
/// memory used until the first write), write faults a zeroed private page.
/// With `fault_around` (a power of two >= 8 KiB), after resolving a fault it
/// also maps zeroed pages on the rest of the fault's aligned block (the
/// faulting thread has already resumed): a guest that walks its memory —
/// a kernel zeroing or initialising it — then faults once per block instead
/// of once per page. Other values disable it.
class ZeroSource final : public PageSource {
 public:
  explicit ZeroSource(uint64_t fault_around = 0);
  void OnFault(const Fault& fault, Resolver& resolver) override;
  std::string_view name() const override { return "zero"; }
  uint64_t fault_around() const { return fault_around_; }

 private:
  uint64_t fault_around_ = 0;
};

/// One piece of an image file: file bytes [file_offset, file_offset + size)
/// back guest-physical [gpa, gpa + size). All three are multiples of 4 KiB.
struct ImageExtent {
  uint64_t gpa = 0;
  uint64_t file_offset = 0;
  uint64_t size = 0;
};

/// Pages come from a file (a raw RAM image or snapshot) mapped read-only;
/// pages outside every extent, and pages the guest discarded since, are
/// zero-filled. The file must not shrink while the source is in use (the
/// mapping would raise SIGBUS).
class ImageSource final : public PageSource {
 public:
  /// Opens `path`; every extent must lie inside the file and extents must
  /// not overlap in GPA. Errors name the path and the extent index.
  static absl::StatusOr<std::unique_ptr<ImageSource>> Open(
      const std::string& path, std::vector<ImageExtent> extents);
  /// The whole file backs GPAs [gpa, gpa + file size).
  static absl::StatusOr<std::unique_ptr<ImageSource>> OpenFlat(
      const std::string& path, uint64_t gpa = 0);
  /// `size` bytes of memory at `image` (a snapshot the caller mapped once
  /// for several sources: one per VM, each with its own record of discarded
  /// pages) back GPAs [gpa, gpa + size). Not owned: it must stay mapped,
  /// and its bytes unchanged, while the source is in use.
  static absl::StatusOr<std::unique_ptr<ImageSource>> FromMemory(
      const uint8_t* image, uint64_t size, uint64_t gpa = 0);

  void OnFault(const Fault& fault, Resolver& resolver) override;
  void OnRemove(uint64_t gpa, uint64_t len) override;
  std::string_view name() const override { return "image"; }

 private:
  struct Extent {
    ImageExtent range;
    DiscardedPages discarded;  // pages that now read as zeros
  };

  ImageSource(base::MappedRegion file, const uint8_t* image,
              std::vector<Extent> extents)
      : file_(std::move(file)), image_(image), extents_(std::move(extents)) {}
  static absl::StatusOr<std::vector<Extent>> CheckExtents(
      const std::string& what, uint64_t image_size,
      std::vector<ImageExtent> extents);
  const Extent* ExtentOf(uint64_t gpa) const;

  base::MappedRegion file_;  // the mapped file (Open), or empty (FromMemory)
  const uint8_t* image_;     // its bytes, or the caller's
  std::vector<Extent> extents_;  // sorted by gpa
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_PAGE_SOURCE_H_
