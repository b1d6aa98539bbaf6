#include "ssihv/pager/remote_image.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "fetch_ahead.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/pager/discarded_pages.h"
#include "ssihv/pager/pager.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::pager {

// One guest's view of the image: its own record of discarded pages and its
// own fetch-ahead windows (registered staging memory, so that a window is
// one RDMA READ straight into it).
class RemoteImageSource final : public PageSource {
 public:
  RemoteImageSource(RemoteImage* image, uint64_t gpa, uint32_t ahead_pages,
                    base::MappedRegion windows, rdmax::RegionId region)
      : image_(image),
        gpa_(gpa),
        discarded_(gpa, image->size()),
        windows_(std::move(windows)),
        region_(region) {
    if (windows_.size() > 0) {
      ahead_.emplace(ahead_pages, windows_.data());
    }
  }
  ~RemoteImageSource() override {
    if (windows_.size() > 0) {
      (void)image_->transport().UnregisterRegion(region_);
    }
  }

  void OnFault(const Fault& fault, Resolver& resolver) override {
    absl::Status st;
    const bool inside = fault.gpa >= gpa_ && fault.gpa - gpa_ < image_->size();
    if (fault.access == FaultAccess::kWriteProtect) {
      st = resolver.Unprotect(fault);
    } else if (!inside || discarded_.Contains(fault.gpa)) {
      st = resolver.ZeroFill(fault);
    } else {
      st = Serve(fault, resolver);
    }
    if (!st.ok()) resolver.Fail(fault, st);
  }
  void OnRemove(uint64_t gpa, uint64_t len) override {
    discarded_.Add(gpa, len);
  }
  std::string_view name() const override { return "remote-image"; }

 private:
  // A page fetched ahead is a local copy (kLocalCopy); a page fetched for
  // this fault, with or without the pages after it, a remote one.
  absl::Status Serve(const Fault& fault, Resolver& resolver) {
    const FaultKind remote =
        fault.is_write() ? FaultKind::kRemoteWrite : FaultKind::kRemoteRead;
    const uint64_t offset = fault.gpa - gpa_;
    if (!ahead_) return FetchAndMap(fault, resolver, remote);
    FetchAhead::Held held = ahead_->Take(offset, fault.thread_id);
    if (held.page != nullptr) {
      absl::Status st =
          resolver.Copy(fault, held.page, false, FaultKind::kLocalCopy);
      ahead_->Release(held.window);
      return st;
    }
    FetchAhead::Plan plan = ahead_->Miss(offset, image_->size(), held.follows);
    if (plan.window < 0) return FetchAndMap(fault, resolver, remote);
    absl::Status st = image_->FetchPages(offset, plan.dst, plan.pages);
    ahead_->Filled(plan.window, offset, plan.pages, st.ok());
    if (st.ok()) st = resolver.Copy(fault, plan.dst, false, remote);
    ahead_->Release(plan.window);
    return st;
  }

  absl::Status FetchAndMap(const Fault& fault, Resolver& resolver,
                           FaultKind kind) {
    alignas(64) static thread_local uint8_t bounce[kPageSize];
    uint8_t* staging = image_->TakeStaging();
    uint8_t* page = staging != nullptr ? staging : bounce;
    absl::Status st = image_->FetchPages(fault.gpa - gpa_, page, 1);
    if (st.ok()) st = resolver.Copy(fault, page, false, kind);
    if (staging != nullptr) image_->ReturnStaging(staging);
    return st;
  }

  RemoteImage* const image_;
  const uint64_t gpa_;
  DiscardedPages discarded_;
  base::MappedRegion windows_;  // empty without fetch-ahead
  const rdmax::RegionId region_;
  std::optional<FetchAhead> ahead_;
};

absl::StatusOr<std::unique_ptr<ImageExport>> ImageExport::Start(
    std::unique_ptr<rdmax::Transport> transport, const uint8_t* image,
    uint64_t size) {
  if (transport == nullptr || image == nullptr || size == 0 ||
      size % kPageSize != 0 ||
      reinterpret_cast<uintptr_t>(image) % kPageSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ImageExport: needs a transport and a page-aligned image whose size "
        "is a positive multiple of 4096 (size ",
        size, ")"));
  }
  std::unique_ptr<ImageExport> e(new ImageExport(std::move(transport), size));
  rdmax::Transport* t = e->transport_.get();
  t->SetMessageHandler([t, size](const rdmax::Message& m) {
    if (m.request_id == 0) return;  // no one-way messages in this protocol
    const rdmax::ReplyToken to = rdmax::ReplyToken::For(m);
    if (m.type != kImageInfoType || !m.payload.empty()) {
      (void)t->ReplyError(
          to, absl::InvalidArgumentError(absl::StrCat(
                  "image export: unknown request type 0x", absl::Hex(m.type),
                  " with ", m.payload.size(), " payload bytes")));
      return;
    }
    uint8_t answer[8];
    rdmax::PutU64(answer, size);
    (void)t->Reply(to, kImageInfoType, answer);
  });
  // The transport only reads the region (peers' fetches); registration
  // takes a non-const pointer for the RDMA memory registration's sake.
  SSIHV_RETURN_IF_ERROR(t->RegisterRegion(kImageRegion,
                                          const_cast<uint8_t*>(image), size,
                                          rdmax::RegionAccess::kRemoteRead));
  SSIHV_RETURN_IF_ERROR(t->Start());
  return e;
}

ImageExport::~ImageExport() {
  absl::Status st = transport_->UnregisterRegion(kImageRegion);
  if (!st.ok())
    base::Log(base::LogLevel::kWarning, "image export: ", st.message());
  transport_->Shutdown();
}

absl::StatusOr<std::unique_ptr<RemoteImage>> RemoteImage::Connect(
    std::unique_ptr<rdmax::Transport> transport, RemoteImageOptions options) {
  if (transport == nullptr || options.peer == transport->self()) {
    return absl::InvalidArgumentError(
        "RemoteImage: needs a transport, and the exporter must be another "
        "node");
  }
  const uint32_t pages = std::max<uint32_t>(options.staging_pages, 1);
  SSIHV_ASSIGN_OR_RETURN(base::MappedRegion staging,
                         base::MappedRegion::Anonymous(pages * kPageSize));
  std::unique_ptr<RemoteImage> r(
      new RemoteImage(std::move(transport), options, std::move(staging)));
  for (uint32_t i = 0; i < pages; ++i) {
    r->free_staging_.push_back(r->staging_.data() + i * kPageSize);
  }
  // Local only: the READs' destination, never advertised to peers.
  SSIHV_RETURN_IF_ERROR(r->transport_->RegisterRegion(
      kImageStagingRegion, r->staging_.data(), r->staging_.size(),
      rdmax::RegionAccess::kLocalOnly));
  SSIHV_RETURN_IF_ERROR(r->transport_->Start());
  SSIHV_RETURN_IF_ERROR(r->AskSize(absl::Now() + options.peer_timeout));
  return r;
}

absl::Status RemoteImage::AskSize(absl::Time deadline) {
  const rdmax::NodeId peer = options_.peer;
  absl::Status st = transport_->WaitForPeer(peer, deadline);
  if (!st.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "image exporter node ", peer, " not reached within ",
        absl::FormatDuration(options_.peer_timeout), ": ", st.message()));
  }
  uint8_t answer[8];
  absl::StatusOr<size_t> n =
      transport_->CallSync(peer, kImageInfoType, {}, absl::MakeSpan(answer));
  if (!n.ok() || *n != sizeof(answer)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "image exporter node ", peer, ": no image size in its answer (",
        n.ok() ? absl::StrCat(*n, " bytes") : std::string(n.status().message()),
        "): is it an image export?"));
  }
  size_ = rdmax::GetU64(answer);
  if (size_ == 0 || size_ % kPageSize != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("image exporter node ", peer, ": image size ", size_,
                     " is not a positive multiple of 4096"));
  }
  return absl::OkStatus();
}

RemoteImage::~RemoteImage() {
  // Before the staging memory goes: no READ lands in it after this.
  transport_->Shutdown();
  transport_.reset();
}

absl::StatusOr<std::unique_ptr<PageSource>> RemoteImage::NewSource(
    uint64_t gpa) {
  const uint32_t pages =
      std::min(options_.fetch_ahead_pages, FetchAhead::kMaxPages);
  if (pages < 2) {
    return std::unique_ptr<PageSource>(
        new RemoteImageSource(this, gpa, 0, base::MappedRegion(), 0));
  }
  SSIHV_ASSIGN_OR_RETURN(
      base::MappedRegion windows,
      base::MappedRegion::Anonymous(uint64_t{FetchAhead::kWindows} * pages *
                                    kPageSize));
  const rdmax::RegionId region = next_region_.fetch_add(1);
  SSIHV_RETURN_IF_ERROR(transport_->RegisterRegion(
      region, windows.data(), windows.size(), rdmax::RegionAccess::kLocalOnly));
  return std::unique_ptr<PageSource>(
      new RemoteImageSource(this, gpa, pages, std::move(windows), region));
}

absl::Status RemoteImage::FetchPages(uint64_t offset, uint8_t* dst,
                                     uint32_t pages) {
  const uint64_t len = uint64_t{pages} * kPageSize;
  if (offset % kPageSize != 0 || pages == 0 || offset >= size_ ||
      len > size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat(
        "remote image: ", pages, " page(s) at offset 0x", absl::Hex(offset),
        " are not pages of the image (0x", absl::Hex(size_), " bytes)"));
  }
  const auto fetch = [&] {
    return transport_->Fetch(options_.peer, kImageRegion, offset,
                             absl::MakeSpan(dst, len));
  };
  absl::Status st = fetch();
  // The connection to the exporter dropped (a restart, a network outage):
  // the transport redials; wait for it up to peer_timeout and fetch again.
  // Only then does the fault fail.
  const absl::Time deadline = absl::Now() + options_.peer_timeout;
  while ((absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) &&
         absl::Now() < deadline &&
         transport_->WaitForPeer(options_.peer, deadline).ok()) {
    st = fetch();
  }
  if (!st.ok()) {
    // Unavailable whatever the transport said: the page cannot be had.
    return absl::UnavailableError(
        absl::StrCat("remote image: page at offset 0x", absl::Hex(offset),
                     " from node ", options_.peer, ": ", st.message()));
  }
  return st;
}

uint8_t* RemoteImage::TakeStaging() {
  std::lock_guard<std::mutex> lock(staging_mu_);
  if (free_staging_.empty()) return nullptr;
  uint8_t* page = free_staging_.back();
  free_staging_.pop_back();
  return page;
}

void RemoteImage::ReturnStaging(uint8_t* page) {
  std::lock_guard<std::mutex> lock(staging_mu_);
  free_staging_.push_back(page);
}

}  // namespace ssihv::pager
