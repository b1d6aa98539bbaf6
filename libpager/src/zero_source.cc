#include "block.h"
#include "ssihv/pager/pager.h"

namespace ssihv::pager {

ZeroSource::ZeroSource(uint64_t fault_around) {
  const bool pow2 =
      fault_around != 0 && (fault_around & (fault_around - 1)) == 0;
  if (pow2 && fault_around >= 2 * kPageSize) fault_around_ = fault_around;
}

void ZeroSource::OnFault(const Fault& fault, Resolver& resolver) {
  if (absl::Status st = resolver.ZeroFill(fault); !st.ok()) {
    resolver.Fail(fault, st);
    return;
  }
  if (fault_around_ == 0 || fault.access == FaultAccess::kWriteProtect) return;
  const Region* r = resolver.RegionOf(fault.gpa);
  if (r == nullptr) return;
  const auto [lo, hi] = BlockInRegion(*r, fault.gpa, fault_around_);
  // Upward first: the walks this helps ascend. Failures here are not the
  // fault's: the pages simply fault later.
  const uint64_t next = fault.gpa + kPageSize;
  if (next < hi) (void)resolver.ZeroFillRange(next, hi - next);
  if (lo < fault.gpa) (void)resolver.ZeroFillRange(lo, fault.gpa - lo);
}

}  // namespace ssihv::pager
