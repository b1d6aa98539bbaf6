// Remote images: a read-only image (a snapshot's memory file) that one node
// of a cluster exports and the pagers of the other nodes map page by page,
// on first touch, with the transport's page fetch: one RDMA READ of the
// exporter's registered memory, or a request on a TCP fetch lane. The image
// does not change while it is exported, so a fetch needs no coherence
// protocol and no grant: the case where a one-sided read is correct (the
// DSM's guest RAM is not one: docs/PAGER.md, "Remote reads").
#ifndef SSIHV_PAGER_REMOTE_IMAGE_H_
#define SSIHV_PAGER_REMOTE_IMAGE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/pager/page_source.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::pager {

class RemoteImageSource;

/// The request an importer sends the exporter for the image's size; the
/// answer's payload is the size, 8 bytes little-endian.
inline constexpr rdmax::MessageType kImageInfoType = 0x5D10;
/// The exporter's region holding the image, and the importer's local-only
/// staging region (RDMA READ destinations).
inline constexpr rdmax::RegionId kImageRegion = 1;
inline constexpr rdmax::RegionId kImageStagingRegion = 2;

/// Serves `size` bytes at `image` to the other nodes of the transport's
/// cluster until destroyed.
class ImageExport {
 public:
  /// Registers the image as region kImageRegion, answers kImageInfoType
  /// requests, and starts `transport` (not started yet; this export owns its
  /// message handler). `image` must stay mapped and unchanged until the
  /// export is destroyed; `size` is a positive multiple of 4 KiB.
  static absl::StatusOr<std::unique_ptr<ImageExport>> Start(
      std::unique_ptr<rdmax::Transport> transport, const uint8_t* image,
      uint64_t size);
  /// Withdraws the region (no peer reads it after this) and shuts the
  /// transport down.
  ~ImageExport();

  uint64_t size() const { return size_; }
  rdmax::Transport& transport() { return *transport_; }

 private:
  ImageExport(std::unique_ptr<rdmax::Transport> transport, uint64_t size)
      : transport_(std::move(transport)), size_(size) {}

  std::unique_ptr<rdmax::Transport> transport_;
  uint64_t size_;
};

struct RemoteImageOptions {
  /// The exporting node.
  rdmax::NodeId peer = 0;
  /// How long Connect waits for the exporter to be reachable, and how long
  /// a fault waits for it to be back when the connection dropped (the
  /// transport redials) before the fault fails.
  absl::Duration peer_timeout = absl::Seconds(60);
  /// Pages of registered staging memory the fetches land in (RDMA READ
  /// straight into it; one page per fault in flight, so at least the
  /// number of fault threads). A fetch that finds none free bounces.
  uint32_t staging_pages = 64;
  /// Fetch-ahead: a fault at the page after the guest's previous fault
  /// fetches this many pages from it in the same round trip, kept (in 4
  /// windows per guest) until the guest faults on them. 0 or 1: off; at
  /// most 64.
  uint32_t fetch_ahead_pages = 16;
};

/// The importing side: one per process, shared by its guests' sources.
class RemoteImage {
 public:
  /// Starts `transport` (not started yet), waits for the exporter and asks
  /// it for the image's size. Errors name the peer.
  static absl::StatusOr<std::unique_ptr<RemoteImage>> Connect(
      std::unique_ptr<rdmax::Transport> transport, RemoteImageOptions options);
  /// Shuts the transport down (faults in flight fail).
  ~RemoteImage();

  uint64_t size() const { return size_; }
  rdmax::NodeId peer() const { return options_.peer; }
  rdmax::Transport& transport() { return *transport_; }

  /// A page source for one guest: GPA `gpa` + x holds image byte x. Pages
  /// outside the image, and pages the guest discarded since, read as zeros;
  /// write-protect faults are unprotected. A fetched page is mapped
  /// writable (the guest's private copy). A fetch that fails (the exporter
  /// gone) fails the fault with Unavailable: Resolver::Fail,
  /// PagerOptions::on_error (other codes there come from mapping the page,
  /// e.g. the guest's process exiting). Pages
  /// fetched ahead count as kLocalCopy when a fault takes them. The source
  /// must not outlive this RemoteImage.
  absl::StatusOr<std::unique_ptr<PageSource>> NewSource(uint64_t gpa = 0);

 private:
  friend class RemoteImageSource;
  RemoteImage(std::unique_ptr<rdmax::Transport> transport,
              RemoteImageOptions options, base::MappedRegion staging)
      : transport_(std::move(transport)),
        options_(options),
        staging_(std::move(staging)) {}
  absl::Status AskSize(absl::Time deadline);
  /// Copies `pages` pages at image offset `offset` into `dst`: a fault
  /// thread blocks here for one round trip (or, while the exporter is
  /// unreachable, up to peer_timeout).
  absl::Status FetchPages(uint64_t offset, uint8_t* dst, uint32_t pages);
  /// A free staging page, or nullptr when all are in use.
  uint8_t* TakeStaging();
  void ReturnStaging(uint8_t* page);

  std::unique_ptr<rdmax::Transport> transport_;
  const RemoteImageOptions options_;
  base::MappedRegion staging_;
  uint64_t size_ = 0;
  std::mutex staging_mu_;
  std::vector<uint8_t*> free_staging_;  // guarded by staging_mu_
  std::atomic<rdmax::RegionId> next_region_{kImageStagingRegion + 1};
};

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_REMOTE_IMAGE_H_
