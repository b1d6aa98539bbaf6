// The C API (include/ssihv/pager.h) over the public C++ API: Pager,
// PageSource, the built-in sources. Only public libpager headers are used,
// so the pager's internals can change under it.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "capi_internal.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/pager.h"
#include "ssihv/pager/page_source.h"
#include "ssihv/pager/pager.h"
#include "ssihv/pager/stats.h"

namespace ssihv::pager::capi {
namespace {

thread_local std::string tls_last_error;

// A pager over RAM the caller mapped (or, adopted, over another process's).
class LocalBackend final : public Backend {
 public:
  explicit LocalBackend(std::unique_ptr<Pager> pager)
      : pager_(std::move(pager)) {}
  Pager& pager() override { return *pager_; }
  absl::Status Start() override { return pager_->Start(); }
  void Stop() override { pager_->Stop(); }
  PagerStats Stats() override { return pager_->Stats(); }
  absl::Status Discard(uint64_t gpa, uint64_t len) override {
    return pager_->resolver().Discard(gpa, len);
  }

 private:
  std::unique_ptr<Pager> pager_;
};

// Pages from the caller's fill callback, copied from a per-thread buffer.
class CallbackSource final : public PageSource {
 public:
  CallbackSource(ssihv_fill_fn fill, ssihv_remove_fn remove, void* ctx)
      : fill_(fill), remove_(remove), ctx_(ctx) {}

  void OnFault(const Fault& fault, Resolver& resolver) override {
    if (fault.access == FaultAccess::kWriteProtect) {
      if (absl::Status st = resolver.Unprotect(fault); !st.ok()) {
        resolver.Fail(fault, st);
      }
      return;
    }
    alignas(4096) static thread_local uint8_t page[kPageSize];
    const int result = fill_(ctx_, fault.gpa, page, fault.is_write() ? 1 : 0);
    absl::Status st;
    if (result == SSIHV_FILL_COPY) {
      st = resolver.Copy(fault, page, /*read_only=*/false,
                         FaultKind::kLocalCopy);
    } else if (result == SSIHV_FILL_ZERO) {
      st = resolver.ZeroFill(fault);
    } else {
      st = absl::InternalError(absl::StrCat("fill callback returned ", result,
                                            " for gpa=0x",
                                            absl::Hex(fault.gpa)));
    }
    if (!st.ok()) resolver.Fail(fault, st);
  }

  void OnRemove(uint64_t gpa, uint64_t len) override {
    if (remove_ != nullptr) remove_(ctx_, gpa, len);
  }

  std::string_view name() const override { return "callback"; }

 private:
  const ssihv_fill_fn fill_;
  const ssihv_remove_fn remove_;
  void* const ctx_;
};

ssihv_latency ToC(const LatencySummary& s) {
  return ssihv_latency{s.count,  s.mean_us, s.p50_us,
                       s.p90_us, s.p99_us,  s.max_us};
}

// Creates a local or adopted pager with `make` and wraps it in *out.
ssihv_status CreateLocal(
    const char* function, const ssihv_pager_options* options, ssihv_pager** out,
    absl::FunctionRef<absl::StatusOr<std::unique_ptr<Pager>>(PagerOptions)>
        make) {
  return Guard(function, [&]() -> absl::Status {
    if (out == nullptr) return NullArgument(function, "out");
    *out = nullptr;
    SSIHV_ASSIGN_OR_RETURN(PagerOptions pager_options, ToPagerOptions(options));
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<Pager> pager,
                           make(std::move(pager_options)));
    *out = new ssihv_pager{std::make_unique<LocalBackend>(std::move(pager))};
    return absl::OkStatus();
  });
}

}  // namespace

absl::Status NullArgument(const char* function, const char* name) {
  return absl::InvalidArgumentError(
      absl::StrCat(function, ": ", name, " is NULL"));
}

// add_range / set_source_*: the local pager, stopped.
absl::StatusOr<Pager*> StoppedLocalPager(ssihv_pager* p, const char* function) {
  if (p == nullptr) return NullArgument(function, "pager");
  if (p->backend->memory() != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        function, ": a DSM pager maps its own RAM and is its own source"));
  }
  return &p->backend->pager();
}

ssihv_status Fail(const absl::Status& status) {
  tls_last_error = std::string(status.message());
  const int code = static_cast<int>(status.code());
  return code >= SSIHV_CANCELLED && code <= SSIHV_UNAUTHENTICATED
             ? static_cast<ssihv_status>(code)
             : SSIHV_UNKNOWN;
}

absl::StatusOr<PagerOptions> ToPagerOptions(
    const ssihv_pager_options* options) {
  PagerOptions out;
  if (options == nullptr) return out;
  if (options->fault_threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ssihv_pager_options.fault_threads: must be in [1, 256] (0 means 1), "
        "got ",
        options->fault_threads));
  }
  if (options->fault_threads != 0) {
    out.fault_threads = static_cast<int>(options->fault_threads);
  }
  if (options->on_error != nullptr) {
    ssihv_error_fn fn = options->on_error;
    void* ctx = options->on_error_ctx;
    out.on_error = [fn, ctx](const absl::Status& st) {
      const std::string message(st.message());
      fn(ctx, static_cast<ssihv_status>(st.code()), message.c_str());
    };
  }
  return out;
}

}  // namespace ssihv::pager::capi

using ssihv::pager::FaultKind;
using ssihv::pager::FaultKindName;
using ssihv::pager::Pager;
using ssihv::pager::PagerOptions;
using ssihv::pager::PagerStats;
using ssihv::pager::capi::CreateLocal;
using ssihv::pager::capi::Guard;
using ssihv::pager::capi::NullArgument;
using ssihv::pager::capi::StoppedLocalPager;
using ssihv::pager::capi::ToPagerOptions;

extern "C" {

const char* ssihv_status_name(int status) {
  if (status < SSIHV_OK || status > SSIHV_UNAUTHENTICATED) return "UNKNOWN";
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (int c = SSIHV_OK; c <= SSIHV_UNAUTHENTICATED; ++c) {
      v.push_back(absl::StatusCodeToString(static_cast<absl::StatusCode>(c)));
    }
    return v;
  }();
  return names[static_cast<size_t>(status)].c_str();
}

const char* ssihv_last_error(void) {
  return ssihv::pager::capi::tls_last_error.c_str();
}

ssihv_status ssihv_pager_create(const ssihv_pager_options* options,
                                ssihv_pager** out) {
  return CreateLocal("ssihv_pager_create", options, out, [](PagerOptions o) {
    return Pager::Create(std::move(o));
  });
}

ssihv_status ssihv_pager_create_for_uffd(int uffd,
                                         const ssihv_pager_options* options,
                                         ssihv_pager** out) {
  return CreateLocal(
      "ssihv_pager_create_for_uffd", options, out,
      [uffd](PagerOptions o) { return Pager::Adopt(uffd, std::move(o)); });
}

void ssihv_pager_destroy(ssihv_pager* pager) {
  if (pager == nullptr) return;
  // Nothing may unwind into C: a failure to join a thread is reported, not
  // thrown (it cannot happen short of a broken runtime).
  (void)Guard("ssihv_pager_destroy", [&] {
    pager->backend->Stop();
    delete pager;
    return absl::OkStatus();
  });
}

ssihv_status ssihv_pager_add_range(ssihv_pager* pager, void* host,
                                   uint64_t size, uint64_t gpa,
                                   uint32_t flags) {
  constexpr const char* kFn = "ssihv_pager_add_range";
  return Guard(kFn, [&]() -> absl::Status {
    SSIHV_ASSIGN_OR_RETURN(Pager * p, StoppedLocalPager(pager, kFn));
    if ((flags & ~SSIHV_RANGE_SHMEM) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          kFn, ": unknown flags 0x", absl::Hex(flags & ~SSIHV_RANGE_SHMEM)));
    }
    return p->RegisterRegion(
        {.host = static_cast<uint8_t*>(host),
         .size = size,
         .gpa = gpa,
         .backing = (flags & SSIHV_RANGE_SHMEM)
                        ? ssihv::pager::Backing::kMemfd
                        : ssihv::pager::Backing::kAnonymous});
  });
}

ssihv_status ssihv_pager_memory(ssihv_pager* pager, void** host,
                                uint64_t* size) {
  constexpr const char* kFn = "ssihv_pager_memory";
  return Guard(kFn, [&]() -> absl::Status {
    if (pager == nullptr) return NullArgument(kFn, "pager");
    if (host == nullptr || size == nullptr) {
      return NullArgument(kFn, "host or size");
    }
    const ssihv::pager::GuestMemory* memory = pager->backend->memory();
    if (memory == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(kFn,
                       ": only a DSM pager maps its RAM; this one serves the "
                       "caller's ranges"));
    }
    *host = memory->data();
    *size = memory->size();
    return absl::OkStatus();
  });
}

ssihv_status ssihv_pager_set_source_zero(ssihv_pager* pager,
                                         uint64_t fault_around) {
  constexpr const char* kFn = "ssihv_pager_set_source_zero";
  return Guard(kFn, [&]() -> absl::Status {
    SSIHV_ASSIGN_OR_RETURN(Pager * p, StoppedLocalPager(pager, kFn));
    auto source = std::make_shared<ssihv::pager::ZeroSource>(fault_around);
    if (fault_around != 0 && source->fault_around() != fault_around) {
      return absl::InvalidArgumentError(
          absl::StrCat(kFn, ": fault_around=", fault_around,
                       ": must be 0 or a power of two of at least 8192"));
    }
    return p->SetSource(std::move(source));
  });
}

ssihv_status ssihv_pager_set_source_file(ssihv_pager* pager, const char* path,
                                         const ssihv_file_extent* extents,
                                         size_t count) {
  constexpr const char* kFn = "ssihv_pager_set_source_file";
  return Guard(kFn, [&]() -> absl::Status {
    SSIHV_ASSIGN_OR_RETURN(Pager * p, StoppedLocalPager(pager, kFn));
    if (path == nullptr) return NullArgument(kFn, "path");
    if (count != 0 && extents == nullptr) return NullArgument(kFn, "extents");
    std::unique_ptr<ssihv::pager::ImageSource> source;
    if (count == 0) {
      SSIHV_ASSIGN_OR_RETURN(source, ssihv::pager::ImageSource::OpenFlat(path));
    } else {
      std::vector<ssihv::pager::ImageExtent> v;
      for (size_t i = 0; i < count; ++i) {
        v.push_back({.gpa = extents[i].gpa,
                     .file_offset = extents[i].file_offset,
                     .size = extents[i].size});
      }
      SSIHV_ASSIGN_OR_RETURN(source, ssihv::pager::ImageSource::Open(path, v));
    }
    return p->SetSource(std::move(source));
  });
}

ssihv_status ssihv_pager_set_source_callback(ssihv_pager* pager,
                                             ssihv_fill_fn fill,
                                             ssihv_remove_fn remove,
                                             void* ctx) {
  constexpr const char* kFn = "ssihv_pager_set_source_callback";
  return Guard(kFn, [&]() -> absl::Status {
    SSIHV_ASSIGN_OR_RETURN(Pager * p, StoppedLocalPager(pager, kFn));
    if (fill == nullptr) return NullArgument(kFn, "fill");
    return p->SetSource(std::make_shared<ssihv::pager::capi::CallbackSource>(
        fill, remove, ctx));
  });
}

ssihv_status ssihv_pager_start(ssihv_pager* pager) {
  return Guard("ssihv_pager_start", [&]() -> absl::Status {
    if (pager == nullptr) return NullArgument("ssihv_pager_start", "pager");
    return pager->backend->Start();
  });
}

void ssihv_pager_stop(ssihv_pager* pager) {
  if (pager == nullptr) return;
  (void)Guard("ssihv_pager_stop", [&] {
    pager->backend->Stop();
    return absl::OkStatus();
  });
}

ssihv_status ssihv_pager_discard(ssihv_pager* pager, uint64_t gpa,
                                 uint64_t size) {
  return Guard("ssihv_pager_discard", [&]() -> absl::Status {
    if (pager == nullptr) return NullArgument("ssihv_pager_discard", "pager");
    return pager->backend->Discard(gpa, size);
  });
}

const char* ssihv_fault_kind_name(int kind) {
  if (kind < 0 || kind >= SSIHV_FAULT_KINDS) return "unknown";
  // FaultKindName returns views of string literals: NUL-terminated.
  return FaultKindName(static_cast<FaultKind>(kind)).data();
}

ssihv_status ssihv_pager_get_stats(const ssihv_pager* pager,
                                   ssihv_pager_stats* out) {
  constexpr const char* kFn = "ssihv_pager_get_stats";
  return Guard(kFn, [&]() -> absl::Status {
    if (pager == nullptr || out == nullptr) {
      return NullArgument(kFn, "pager or out");
    }
    static_assert(SSIHV_FAULT_KINDS == ssihv::pager::kNumFaultKinds);
    const PagerStats s = pager->backend->Stats();
    std::memset(out, 0, sizeof(*out));
    for (size_t k = 0; k < ssihv::pager::kNumFaultKinds; ++k) {
      out->faults[k] = s.faults[k];
      out->latency[k] = ssihv::pager::capi::ToC(s.latency[k]);
    }
    out->all = ssihv::pager::capi::ToC(s.all);
    out->messages = s.messages;
    out->eexist_races = s.eexist_races;
    out->eagain_retries = s.eagain_retries;
    out->remove_events = s.remove_events;
    out->removed_bytes = s.removed_bytes;
    out->errors = s.errors;
    out->filled_ahead = s.filled_ahead;
    out->features = s.features;
    return absl::OkStatus();
  });
}

}  // extern "C"
