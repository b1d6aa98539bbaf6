// rdma_pin_probe: measures why the DSM node does not register guest RAM as
// an RDMA memory region (docs/PAGER.md, "Remote reads"). Needs a verbs
// device (the lab VM's rxe0):
//
//   tests/lab/run.sh -- build-pager/bench/pager/rdma_pin_probe [--pages N]
//
// Maps N pages of anonymous guest RAM and registers them with a pager
// (zero-fill source, MISSING+WP), then with ibv_reg_mr on the first device
// (which pins them). It reports what registering untouched uffd-armed RAM
// does (on Linux 6.1: EFAULT, long-term GUP cannot wait for a userfault)
// and what registering it costs once populated. Raw libibverbs: the
// transport registers only its own buffers. (The probe's stale-READ part,
// a DONTNEED'd page read through the MR by a peer, used the transport's
// one-sided fetch; it went with that API, see docs/PAGER.md.)
#include <infiniband/verbs.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ssihv/pager/pager.h"

namespace {

constexpr uint64_t kPage = 4096;

int Fail(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "rdma_pin_probe: %s: %s\n", what, st.ToString().c_str());
  return 1;
}

struct DeviceListDeleter {
  void operator()(ibv_device** list) const { ibv_free_device_list(list); }
};
struct ContextDeleter {
  void operator()(ibv_context* ctx) const { ibv_close_device(ctx); }
};
struct PdDeleter {
  void operator()(ibv_pd* pd) const { ibv_dealloc_pd(pd); }
};
struct MrDeleter {
  void operator()(ibv_mr* mr) const { ibv_dereg_mr(mr); }
};
using Mr = std::unique_ptr<ibv_mr, MrDeleter>;

// ibv_reg_mr over [p, p + length) for remote READs, as an exporting node
// would; the elapsed time in *ms. nullptr with errno set on failure.
Mr Register(ibv_pd* pd, uint8_t* p, size_t length, double* ms) {
  const auto t0 = std::chrono::steady_clock::now();
  Mr mr(ibv_reg_mr(pd, p, length,
                   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ));
  *ms = std::chrono::duration<double, std::milli>(
            std::chrono::steady_clock::now() - t0)
            .count();
  return mr;
}

}  // namespace

int main(int argc, char** argv) {
  namespace pg = ssihv::pager;
  uint64_t pages = 16384;
  if (argc == 3 && std::strcmp(argv[1], "--pages") == 0) {
    pages = std::strtoull(argv[2], nullptr, 10);
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: rdma_pin_probe [--pages N]\n");
    return 2;
  }
  int devices = 0;
  std::unique_ptr<ibv_device*, DeviceListDeleter> list(
      ibv_get_device_list(&devices));
  if (list == nullptr || devices == 0) {
    std::printf("SKIP rdma: no RDMA device\n");
    return 77;
  }
  std::unique_ptr<ibv_context, ContextDeleter> ctx(
      ibv_open_device(list.get()[0]));
  std::unique_ptr<ibv_pd, PdDeleter> pd(ctx ? ibv_alloc_pd(ctx.get())
                                            : nullptr);
  if (pd == nullptr) {
    std::fprintf(stderr, "rdma_pin_probe: ibv_open_device/ibv_alloc_pd: %s\n",
                 std::strerror(errno));
    return 1;
  }

  auto mem = pg::GuestMemory::Create(pages * kPage);
  if (!mem.ok()) return Fail("guest memory", mem.status());
  auto pager = pg::Pager::Create({});
  if (!pager.ok()) return Fail("pager", pager.status());
  absl::Status st = (*pager)->RegisterGuestMemory(*mem, 0, mem->size(), 0);
  if (st.ok()) st = (*pager)->SetSource(std::make_shared<pg::ZeroSource>());
  if (st.ok()) st = (*pager)->Start();
  if (!st.ok()) return Fail("pager start", st);

  // 1. The MR over RAM the pager has not populated yet.
  double ms = 0;
  Mr mr = Register(pd.get(), mem->data(), mem->size(), &ms);
  const int err = errno;
  std::printf(
      "ibv_reg_mr over %llu untouched pages of uffd-armed anonymous RAM: "
      "%s after %.1f ms, %llu uffd faults served during the call\n",
      static_cast<unsigned long long>(pages),
      mr ? "registered" : std::strerror(err), ms,
      static_cast<unsigned long long>((*pager)->Stats().total_faults()));
  mr.reset();

  // 2. Populated first (every page faulted in through the pager).
  for (uint64_t p = 0; p < pages; ++p) {
    *reinterpret_cast<volatile uint64_t*>(mem->data() + p * kPage) = p;
  }
  mr = Register(pd.get(), mem->data(), mem->size(), &ms);
  if (mr == nullptr) {
    std::fprintf(stderr, "rdma_pin_probe: ibv_reg_mr of populated RAM: %s\n",
                 std::strerror(errno));
    return 1;
  }
  std::printf(
      "ibv_reg_mr over the same pages once populated: %.1f ms (%.2f "
      "us per page)\n",
      ms, ms * 1000 / static_cast<double>(pages));
  return 0;
}
