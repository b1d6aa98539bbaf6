// What the C API (include/ssihv/pager.h) wraps: a pager of one of two
// kinds behind one opaque handle. capi.cc holds the local kind and every
// C function; capi_dsm.cc (in ssihv_pager_dsm, so that the local pager does
// not link the protocol and the transport) adds the DSM kind.
#ifndef SSIHV_PAGER_CAPI_CAPI_INTERNAL_H_
#define SSIHV_PAGER_CAPI_CAPI_INTERNAL_H_

#include <exception>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ssihv/pager.h"
#include "ssihv/pager/pager.h"

namespace ssihv::pager::capi {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Pager& pager() = 0;
  virtual absl::Status Start() = 0;
  virtual void Stop() = 0;
  virtual PagerStats Stats() = 0;
  virtual absl::Status Discard(uint64_t gpa, uint64_t len) = 0;
  /// The RAM the pager mapped itself (DSM), or nullptr (the caller's RAM).
  virtual const GuestMemory* memory() const { return nullptr; }
};

/// "`function`: `name` is NULL".
absl::Status NullArgument(const char* function, const char* name);

/// The pager of a local (or adopted) handle, for add_range and
/// set_source_*: the caller's RAM. A DSM pager is refused.
absl::StatusOr<Pager*> StoppedLocalPager(ssihv_pager* p, const char* function);

/// Records `status` as this thread's last error and returns its code.
ssihv_status Fail(const absl::Status& status);

/// The PagerOptions of a C options struct (NULL = defaults); on_error calls
/// the C callback.
absl::StatusOr<PagerOptions> ToPagerOptions(const ssihv_pager_options* options);

/// Runs `body` (returning absl::Status), turning a C++ exception into
/// SSIHV_INTERNAL: nothing may unwind through a C caller.
template <typename Body>
ssihv_status Guard(const char* function, Body body) {
  try {
    absl::Status status = body();
    return status.ok() ? SSIHV_OK : Fail(status);
  } catch (const std::exception& e) {
    return Fail(absl::InternalError(
        absl::StrCat(function, ": unexpected exception: ", e.what())));
  } catch (...) {
    return Fail(
        absl::InternalError(absl::StrCat(function, ": unexpected exception")));
  }
}

}  // namespace ssihv::pager::capi

struct ssihv_pager {
  std::unique_ptr<ssihv::pager::capi::Backend> backend;
};

#endif  // SSIHV_PAGER_CAPI_CAPI_INTERNAL_H_
