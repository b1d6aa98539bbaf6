#include "ssihv/pager/pager.h"

namespace ssihv::pager {

void ZeroSource::OnFault(const Fault& fault, Resolver& resolver) {
  if (absl::Status st = resolver.ZeroFill(fault); !st.ok()) {
    resolver.Fail(fault, st);
  }
}

}  // namespace ssihv::pager
