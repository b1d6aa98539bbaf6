#include "mappings.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ssihv::uffd_handler {

size_t CompleteJsonLength(absl::string_view data) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  bool started = false;
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return i + 1;  // a bare string value
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (started && depth == 0) return i;  // end of a bare scalar
      continue;
    }
    started = true;
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      // An unbalanced closer is complete garbage: let the parser say so.
      if (--depth <= 0) return i + 1;
    }
  }
  return 0;
}

namespace {

using nlohmann::json;

absl::Status Bad(size_t index, absl::string_view field,
                 absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("regions[", index, "].", field, ": ", what));
}

absl::StatusOr<uint64_t> Unsigned(const json& region, size_t index,
                                  const char* field) {
  auto it = region.find(field);
  if (it == region.end()) return Bad(index, field, "missing");
  if (!it->is_number_unsigned()) {
    return Bad(index, field,
               absl::StrCat("must be an unsigned integer, got ", it->dump()));
  }
  return it->get<uint64_t>();
}

absl::StatusOr<uint64_t> PageSize(const json& region, size_t index) {
  const bool has_new = region.contains("page_size");
  const bool has_old = region.contains("page_size_kib");
  if (!has_new && !has_old) {
    return Bad(index, "page_size", "missing (nor page_size_kib)");
  }
  uint64_t size = 0;
  if (has_new) {
    absl::StatusOr<uint64_t> v = Unsigned(region, index, "page_size");
    if (!v.ok()) return v.status();
    size = *v;
  }
  if (has_old) {
    // Bytes despite the name (Firecracker's deprecated field).
    absl::StatusOr<uint64_t> v = Unsigned(region, index, "page_size_kib");
    if (!v.ok()) return v.status();
    if (has_new && *v != size) {
      return Bad(index, "page_size_kib",
                 absl::StrCat(*v, " differs from page_size ", size));
    }
    size = *v;
  }
  const char* field = has_new ? "page_size" : "page_size_kib";
  if (size == 0 || (size & (size - 1)) != 0) {
    return Bad(index, field, absl::StrCat(size, " is not a power of two"));
  }
  if (size != kSupportedPageSize) {
    return Bad(index, field,
               absl::StrCat(size, ": only ", kSupportedPageSize,
                            "-byte pages are served (restore the snapshot "
                            "without huge pages)"));
  }
  return size;
}

absl::StatusOr<GuestRegionMapping> ParseRegion(const json& region, size_t index,
                                               uint64_t memory_size) {
  if (!region.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "regions[", index, "]: must be an object, got ", region.dump()));
  }
  GuestRegionMapping m;
  for (auto [field, out] :
       {std::pair{"base_host_virt_addr", &m.base_host_virt_addr},
        std::pair{"size", &m.size}, std::pair{"offset", &m.offset}}) {
    absl::StatusOr<uint64_t> v = Unsigned(region, index, field);
    if (!v.ok()) return v.status();
    *out = *v;
  }
  absl::StatusOr<uint64_t> page = PageSize(region, index);
  if (!page.ok()) return page.status();
  m.page_size = *page;
  const uint64_t mask = m.page_size - 1;
  if (m.size == 0 || (m.size & mask) != 0) {
    return Bad(index, "size",
               absl::StrCat(m.size, " is not a positive multiple of the ",
                            m.page_size, "-byte page"));
  }
  if ((m.base_host_virt_addr & mask) != 0 ||
      m.base_host_virt_addr + m.size < m.base_host_virt_addr) {
    return Bad(index, "base_host_virt_addr",
               absl::StrCat("0x", absl::Hex(m.base_host_virt_addr),
                            " is not page-aligned or the region wraps"));
  }
  if ((m.offset & mask) != 0) {
    return Bad(index, "offset",
               absl::StrCat(m.offset, " is not a multiple of the page"));
  }
  if (m.offset > memory_size || m.size > memory_size - m.offset) {
    return Bad(index, "offset",
               absl::StrCat("[", m.offset, ", ", m.offset, " + ", m.size,
                            ") exceeds the memory of ", memory_size, " bytes"));
  }
  return m;
}

// Sorted by `start`, two neighbours overlap when one starts before the
// other ends.
template <typename Start>
absl::Status CheckDisjoint(const std::vector<GuestRegionMapping>& regions,
                           Start start, absl::string_view field,
                           absl::string_view space) {
  std::vector<size_t> order(regions.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return start(regions[a]) < start(regions[b]);
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const GuestRegionMapping& prev = regions[order[k - 1]];
    if (start(prev) + prev.size > start(regions[order[k]])) {
      return Bad(
          order[k], field,
          absl::StrCat("overlaps regions[", order[k - 1], "] in the ", space));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<GuestRegionMapping>> ParseMappings(
    absl::string_view text, uint64_t memory_size) {
  json doc = json::parse(text.begin(), text.end(), nullptr,
                         /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "handshake: not valid JSON: '", absl::CHexEscape(text.substr(0, 200)),
        text.size() > 200 ? "...'" : "'"));
  }
  if (!doc.is_array() || doc.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "handshake: must be a non-empty JSON array of regions, got ",
        doc.dump().substr(0, 200)));
  }
  if (doc.size() > kMaxRegions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "handshake: ", doc.size(), " regions, at most ", kMaxRegions));
  }
  std::vector<GuestRegionMapping> regions;
  for (size_t i = 0; i < doc.size(); ++i) {
    absl::StatusOr<GuestRegionMapping> r = ParseRegion(doc[i], i, memory_size);
    if (!r.ok()) return r.status();
    regions.push_back(*r);
  }
  if (absl::Status st = CheckDisjoint(
          regions, [](const auto& r) { return r.base_host_virt_addr; },
          "base_host_virt_addr", "VM's address space");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = CheckDisjoint(
          regions, [](const auto& r) { return r.offset; }, "offset", "memory");
      !st.ok()) {
    return st;
  }
  return regions;
}

}  // namespace ssihv::uffd_handler
