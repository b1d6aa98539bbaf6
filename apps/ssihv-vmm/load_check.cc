#include "load_check.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "ssihv/cluster/layout.h"

namespace ssihv::vmm {
namespace {

// FNV-1a over 64-bit words: enough to tell a page changed.
uint64_t Hash(const std::array<uint8_t, cluster::kPageSize>& b, bool* zero) {
  uint64_t h = 1469598103934665603ull;
  uint64_t any = 0;
  for (size_t i = 0; i < cluster::kPageSize; i += 8) {
    uint64_t w = 0;
    for (int k = 0; k < 8; ++k) w |= uint64_t{b[i + k]} << (8 * k);
    any |= w;
    h = (h ^ w) * 1099511628211ull;
  }
  *zero = any == 0;
  return h;
}

}  // namespace

void LoadCheck::Record(const kvm::GuestMemory& memory, uint64_t gpa,
                       uint64_t len) {
  std::array<uint8_t, cluster::kPageSize> buf;
  for (uint64_t a = gpa & ~(cluster::kPageSize - 1); a < gpa + len;
       a += cluster::kPageSize) {
    if (!memory.Read(a, absl::MakeSpan(buf)).ok()) continue;
    bool zero = false;
    const uint64_t h = Hash(buf, &zero);
    pages_.push_back({a, h, zero});
  }
}

LoadCheck::Result LoadCheck::Check(const kvm::GuestMemory& memory) const {
  Result r;
  std::array<uint8_t, cluster::kPageSize> buf;
  for (const Page& p : pages_) {
    ++r.pages;
    if (!memory.Read(p.gpa, absl::MakeSpan(buf)).ok()) continue;
    bool zero = false;
    const uint64_t h = Hash(buf, &zero);
    if (h == p.hash) continue;
    if (zero && !p.zero) {
      ++r.zeroed;
      if (r.first_zeroed.size() < 8) r.first_zeroed.push_back(p.gpa);
    } else {
      ++r.changed;
    }
  }
  return r;
}

std::string LoadCheck::Describe(const Result& r) {
  std::string out = absl::StrCat("pages the loader wrote: ", r.pages,
                                 "; now all zeros: ", r.zeroed,
                                 "; changed otherwise: ", r.changed);
  for (uint64_t gpa : r.first_zeroed) {
    absl::StrAppend(&out, r.first_zeroed.front() == gpa ? " (zeroed at " : " ",
                    "0x", absl::Hex(gpa));
  }
  if (!r.first_zeroed.empty()) absl::StrAppend(&out, ")");
  return out;
}

}  // namespace ssihv::vmm
