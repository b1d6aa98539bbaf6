// The DSM node's side of run grants (docs/PAGER.md, "Run grants"): the
// pages of one kDataRun are mapped with one UFFDIO_COPY per stretch of
// contiguous guest-physical pages, and the home write-protects the pages it
// grants the same way; single pages keep the per-page path (MapReceived).
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "clock.h"
#include "dsm/engine.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

namespace {

// The source of an all-zero run (kFlagZero): never written. Not const so
// that it lives in .bss rather than 256 KiB of the binary's read-only data.
alignas(4096) uint8_t zero_run[dir::kMaxRunPages * kPageSize];

bool Mergeable(const dir::Effect& a, const dir::Effect& b) {
  return a.type == b.type && b.page == a.page + 1 &&
         (a.type == dir::EffectType::kMapReceived
              ? a.writable == b.writable && a.zero == b.zero
              : a.type == dir::EffectType::kWriteProtect);
}

}  // namespace

size_t DsmEngine::RunOfEffects(const std::vector<dir::Effect>& effects,
                               size_t i) {
  const dir::EffectType type = effects[i].type;
  if (type != dir::EffectType::kMapReceived &&
      type != dir::EffectType::kWriteProtect) {
    return 1;
  }
  size_t n = 1;
  while (i + n < effects.size() &&
         Mergeable(effects[i + n - 1], effects[i + n]))
    ++n;
  return n;
}

template <typename Fn>
absl::Status DsmEngine::ForEachGpaStretch(dir::PageId first, uint64_t count,
                                          Fn fn) {
  uint64_t start = 0;
  for (uint64_t k = 1; k <= count; ++k) {
    if (k == count || GpaOf(first + k) != GpaOf(first + k - 1) + kPageSize) {
      SSIHV_RETURN_IF_ERROR(fn(first + start, k - start));
      start = k;
    }
  }
  return absl::OkStatus();
}

absl::Status DsmEngine::ExecuteRun(const std::vector<dir::Effect>& effects,
                                   size_t i, size_t n, Ctx& ctx) {
  const dir::Effect& head = effects[i];
  if (head.type == dir::EffectType::kMapReceived) {
    return MapReceivedRun(head.page, n, head.zero, head.writable, ctx);
  }
  const int64_t now = MonotonicNs();
  for (size_t k = i; k < i + n; ++k) {
    hold_->OnTaken(effects[k].page, now, /*for_write=*/false);  // downgrades
    downgrade_->OnReadDowngrade(effects[k].page, now);
  }
  return ForEachGpaStretch(
      head.page, n, [this](dir::PageId first, uint64_t count) {
        return pager_->resolver().WriteProtect(GpaOf(first), count * kPageSize);
      });
}

absl::StatusOr<const uint8_t*> DsmEngine::ReceivedBytes(dir::PageId page,
                                                        bool zero,
                                                        const Ctx& ctx) const {
  if (zero) return zero_run;
  const uint64_t offset = (page - ctx.data_first) * kPageSize;
  if (page < ctx.data_first || offset + kPageSize > ctx.page_bytes.size()) {
    return absl::InternalError(
        absl::StrCat("kMapReceived of page ", page, " without its bytes"));
  }
  return ctx.page_bytes.data() + offset;
}

// Remote bytes land in the page straight from the transport's receive
// buffer (UFFDIO_COPY, MODE_WP for a Shared copy).
absl::Status DsmEngine::MapReceived(const dir::Effect& e, Ctx& ctx) {
  SSIHV_ASSIGN_OR_RETURN(const uint8_t* bytes,
                         ReceivedBytes(e.page, e.zero, ctx));
  // A read refresh's answer that no fault waits for is held, so that the
  // read that takes it is seen (dsm/read_refresh.h).
  if (!e.writable && refresh_->Outstanding(e.page)) {
    SSIHV_ASSIGN_OR_RETURN(bool held,
                           HoldMarker(e.page, e.zero ? nullptr : bytes));
    if (held) return absl::OkStatus();
  }
  SSIHV_RETURN_IF_ERROR(InstallReceived(e.page, bytes, e.writable));
  // A write miss answered with a page nobody wrote: a first touch of
  // memory homed elsewhere, whose neighbours are likely next.
  if (e.writable && e.zero) ctx.first_touch_remote = e.page;
  CompleteWaiters(e.page,
                  e.writable ? FaultKind::kRemoteWrite : FaultKind::kRemoteRead,
                  ctx);
  return absl::OkStatus();
}

absl::Status DsmEngine::InstallReceived(dir::PageId page, const uint8_t* bytes,
                                        bool writable) {
  Resolver& r = pager_->resolver();
  bool installed = false;
  SSIHV_RETURN_IF_ERROR(r.CopyPage(GpaOf(page), bytes, !writable, &installed));
  if (!installed) {
    // An old copy is still mapped (its invalidation is behind this data):
    // replace it, never leave stale bytes under a new grant.
    reinstalls_.fetch_add(1, std::memory_order_relaxed);
    SSIHV_RETURN_IF_ERROR(r.Discard(GpaOf(page), kPageSize));
    SSIHV_RETURN_IF_ERROR(
        r.CopyPage(GpaOf(page), bytes, !writable, &installed));
    if (!installed) {
      return absl::InternalError(
          absl::StrCat("page ", page, " still mapped after a discard"));
    }
  }
  SetPopulated(page, true);
  return absl::OkStatus();
}

// One UFFDIO_COPY for the stretch (read-only for a read run, writable for a
// write run's zeros); the kernel stops at a page that is
// still mapped (a stale copy whose invalidation is behind this grant, as in
// MapReceived): that page goes the per-page way, then the rest of the
// stretch is copied again in one call.
absl::Status DsmEngine::MapReceivedRun(dir::PageId first, uint64_t count,
                                       bool zero, bool writable, Ctx& ctx) {
  const FaultKind kind =
      writable ? FaultKind::kRemoteWrite : FaultKind::kRemoteRead;
  SSIHV_ASSIGN_OR_RETURN(const uint8_t* base, ReceivedBytes(first, zero, ctx));
  if (!zero) {
    SSIHV_RETURN_IF_ERROR(ReceivedBytes(first + count - 1, zero, ctx).status());
  }
  // A read run's first page stays unmapped, the next window's trigger
  // (held.cc): the walk faults there, locally, and asks for more.
  if (!writable) {
    SSIHV_ASSIGN_OR_RETURN(bool held, HoldMarker(first, zero ? nullptr : base));
    if (held) {
      ++first;
      --count;
      if (!zero) base += kPageSize;
    }
  }
  Resolver& r = pager_->resolver();
  auto stretch = [&](dir::PageId from, uint64_t pages) -> absl::Status {
    const uint8_t* src = zero ? zero_run : base + (from - first) * kPageSize;
    uint64_t done = 0;
    while (done < pages) {
      run_copies_.fetch_add(1, std::memory_order_relaxed);
      SSIHV_ASSIGN_OR_RETURN(
          uint64_t bytes,
          r.CopyRange(GpaOf(from + done), src + done * kPageSize,
                      (pages - done) * kPageSize, !writable));
      for (uint64_t k = 0; k < bytes / kPageSize; ++k) {
        SetPopulated(from + done + k, true);
        CompleteWaiters(from + done + k, kind, ctx);
      }
      done += bytes / kPageSize;
      if (done == pages) break;
      run_pages_one_by_one_.fetch_add(1, std::memory_order_relaxed);
      SSIHV_RETURN_IF_ERROR(
          InstallReceived(from + done, src + done * kPageSize, writable));
      CompleteWaiters(from + done, kind, ctx);
      ++done;
    }
    return absl::OkStatus();
  };
  return ForEachGpaStretch(first, count, stretch);
}

// The bytes of each populated page, zeros for the others (never read
// through an unmapped page: that would fault); the zero flag, without
// bytes, when no page of the run was ever mapped here.
void DsmEngine::StageRun(uint32_t to, dir::Message msg, StagedFrames& staged) {
  if (msg.flags & dir::kFlagWrite) {  // a write run's answer: never bytes
    dir::EncodeHeader(msg, staged.Add(to, nullptr, dir::kHeaderSize));
    return;
  }
  bool any = false;
  for (dir::PageId p = msg.page; p < msg.page + msg.pages() && !any; ++p) {
    any = Populated(p) || held_->Contains(p);
  }
  msg.flags = any ? static_cast<uint8_t>(msg.flags & ~dir::kFlagZero)
                  : static_cast<uint8_t>(msg.flags | dir::kFlagZero);
  uint8_t* frame =
      staged.Add(to, nullptr, dir::kHeaderSize + msg.payload_bytes());
  dir::EncodeHeader(msg, frame);
  if (!any) return;
  uint8_t* out = frame + dir::kHeaderSize;
  for (dir::PageId p = msg.page; p < msg.page + msg.pages(); ++p) {
    downgrade_->OnServed(p);
    uint8_t* dst = out + (p - msg.page) * kPageSize;
    const uint8_t* bytes = BytesToSend(p, dst);
    if (bytes == nullptr) {
      std::memset(dst, 0, kPageSize);
    } else if (bytes != dst) {
      std::memcpy(dst, bytes, kPageSize);
    }
  }
}

}  // namespace ssihv::pager
