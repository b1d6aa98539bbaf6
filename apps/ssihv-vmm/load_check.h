// What the loader wrote, remembered page by page (a hash each), so that when
// the guest dies early (a triple fault) the VMM can say whether guest memory
// still holds it: a page the loader filled that now reads as zeros means
// memory was lost under the guest (a pager, KVM or host bug), not a guest
// bug. Printed with the stop statistics (docs/VMM.md, "Stop reasons").
#ifndef SSIHV_APPS_VMM_LOAD_CHECK_H_
#define SSIHV_APPS_VMM_LOAD_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ssihv/kvm/guest_memory.h"

namespace ssihv::vmm {

class LoadCheck {
 public:
  /// Remembers the pages of [gpa, gpa + len) as they are now.
  void Record(const kvm::GuestMemory& memory, uint64_t gpa, uint64_t len);

  struct Result {
    uint64_t pages = 0;    // pages recorded
    uint64_t zeroed = 0;   // now all zeros, not before
    uint64_t changed = 0;  // otherwise different (the guest may do that)
    std::vector<uint64_t> first_zeroed;  // up to 8 GPAs
  };
  Result Check(const kvm::GuestMemory& memory) const;
  /// One line: "loader pages: N, now zeroed Z, changed C [gpa ...]".
  static std::string Describe(const Result& r);

 private:
  struct Page {
    uint64_t gpa;
    uint64_t hash;
    bool zero;
  };
  std::vector<Page> pages_;
};

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_LOAD_CHECK_H_
