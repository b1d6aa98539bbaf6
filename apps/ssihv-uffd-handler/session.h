// One VM served by the handler: the pager over the VM's userfaultfd (which
// Firecracker created and registered), fed by a source over the backing.
#ifndef SSIHV_APPS_UFFD_HANDLER_SESSION_H_
#define SSIHV_APPS_UFFD_HANDLER_SESSION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backing.h"
#include "mappings.h"
#include "ssihv/pager/pager.h"

namespace ssihv::uffd_handler {

class Session {
 public:
  /// Adopts `uffd` (Pager::Adopt), records `regions` (GPA = offset into the
  /// backing) and starts `fault_threads` fault threads. `on_error` runs on a
  /// fault thread for each fault that cannot be served.
  static absl::StatusOr<std::unique_ptr<Session>> Start(
      int uffd, const std::vector<GuestRegionMapping>& regions,
      MemoryBacking& backing, int fault_threads,
      std::function<void(const absl::Status&)> on_error);
  /// Stops the fault threads and closes this process's copy of the uffd.
  ~Session();

  pager::PagerStats Stats() const { return pager_->Stats(); }
  /// "1234 faults (1000 from memory, 234 zero), p50 3.9 us, ...".
  std::string Summary() const;

 private:
  explicit Session(std::unique_ptr<pager::Pager> pager)
      : pager_(std::move(pager)) {}
  std::unique_ptr<pager::Pager> pager_;
};

}  // namespace ssihv::uffd_handler

#endif  // SSIHV_APPS_UFFD_HANDLER_SESSION_H_
