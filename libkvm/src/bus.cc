#include "ssihv/kvm/bus.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"

namespace ssihv::kvm {

absl::Status Bus::Register(uint64_t base, uint64_t length,
                           std::shared_ptr<BusDevice> device) {
  if (length == 0 || device == nullptr || base + length < base) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, " bus: bad registration at 0x", absl::Hex(base)));
  }
  for (const Entry& e : entries_) {
    if (base < e.base + e.length && e.base < base + length) {
      return absl::AlreadyExistsError(absl::StrCat(
          name_, " bus: [0x", absl::Hex(base), ", 0x", absl::Hex(base + length),
          ") overlaps [0x", absl::Hex(e.base), ", 0x",
          absl::Hex(e.base + e.length), ")"));
    }
  }
  auto pos =
      std::lower_bound(entries_.begin(), entries_.end(), base,
                       [](const Entry& e, uint64_t b) { return e.base < b; });
  entries_.insert(pos, Entry{base, length, std::move(device)});
  return absl::OkStatus();
}

const Bus::Entry* Bus::Find(uint64_t addr, uint64_t len) const {
  auto it =
      std::upper_bound(entries_.begin(), entries_.end(), addr,
                       [](uint64_t a, const Entry& e) { return a < e.base; });
  if (it == entries_.begin()) return nullptr;
  const Entry& e = *--it;
  if (addr - e.base >= e.length || len > e.length - (addr - e.base)) {
    return nullptr;
  }
  return &e;
}

void Bus::Trace(const char* dir, uint64_t addr, absl::Span<const uint8_t> data,
                const bool claimed) const {
  if (addr >= quiet_base_ && addr < quiet_end_) return;
  uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min<size_t>(data.size(), 8));
  base::Log(base::LogLevel::kInfo, name_, " ", dir, " 0x", absl::Hex(addr),
            " size ", data.size(), " value 0x", absl::Hex(v),
            claimed ? "" : " (unclaimed)");
}

bool Bus::Read(uint64_t addr, absl::Span<uint8_t> data) {
  if (const Entry* e = Find(addr, data.size())) {
    e->device->Read(addr - e->base, data);
    if (trace_) Trace("read", addr, data, true);
    return true;
  }
  std::memset(data.data(), 0xff, data.size());
  if (trace_) Trace("read", addr, data, false);
  if (unclaimed_.fetch_add(1, std::memory_order_relaxed) < 16) {
    base::Log(base::LogLevel::kDebug, name_, " bus: unclaimed read of ",
              data.size(), " bytes at 0x", absl::Hex(addr));
  }
  return false;
}

bool Bus::Write(uint64_t addr, absl::Span<const uint8_t> data) {
  if (trace_) Trace("write", addr, data, Find(addr, data.size()) != nullptr);
  if (const Entry* e = Find(addr, data.size())) {
    e->device->Write(addr - e->base, data);
    return true;
  }
  if (unclaimed_.fetch_add(1, std::memory_order_relaxed) < 16) {
    base::Log(base::LogLevel::kDebug, name_, " bus: unclaimed write of ",
              data.size(), " bytes at 0x", absl::Hex(addr));
  }
  return false;
}

}  // namespace ssihv::kvm
