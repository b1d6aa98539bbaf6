#include "session.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::uffd_handler {

absl::StatusOr<std::unique_ptr<Session>> Session::Start(
    int uffd, const std::vector<GuestRegionMapping>& regions,
    MemoryBacking& backing, int fault_threads,
    std::function<void(const absl::Status&)> on_error) {
  pager::PagerOptions options;
  options.fault_threads = fault_threads;
  options.on_error = std::move(on_error);
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<pager::Pager> pager,
                         pager::Pager::Adopt(uffd, std::move(options)));
  for (const GuestRegionMapping& r : regions) {
    SSIHV_RETURN_IF_ERROR(pager->RegisterRegion(
        {.host = reinterpret_cast<uint8_t*>(r.base_host_virt_addr),
         .size = r.size,
         .gpa = r.offset}));
  }
  SSIHV_ASSIGN_OR_RETURN(std::shared_ptr<pager::PageSource> source,
                         backing.NewSource());
  SSIHV_RETURN_IF_ERROR(pager->SetSource(std::move(source)));
  SSIHV_RETURN_IF_ERROR(pager->Start());
  return std::unique_ptr<Session>(new Session(std::move(pager)));
}

Session::~Session() { pager_->Stop(); }

std::string Session::Summary() const {
  const pager::PagerStats s = pager_->Stats();
  const auto kind = [&s](pager::FaultKind k) {
    return s.faults[static_cast<size_t>(k)];
  };
  return absl::StrFormat(
      "%d faults (%d from memory, %d zero), p50 %.1f us, p99 %.1f us, "
      "%d REMOVE events (%d bytes), %d EEXIST races, %d errors",
      s.total_faults(), kind(pager::FaultKind::kLocalCopy),
      kind(pager::FaultKind::kLocalZero), s.all.p50_us, s.all.p99_us,
      s.remove_events, s.removed_bytes, s.eexist_races, s.errors);
}

}  // namespace ssihv::uffd_handler
