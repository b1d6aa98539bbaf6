// BM_Floor/uffd_copy: the floor every pager benchmark is measured against.
// A minimal C-style userfaultfd handler, no library code: one thread blocked
// in read(2) on the uffd resolving each fault with one UFFDIO_COPY from a
// static page. Registered MISSING only, no features, no epoll, no stats.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "bench_util.h"

namespace ssihv::bench {
namespace {

alignas(4096) uint8_t g_src_page[kPage] = {1};

struct Floor {
  int uffd = -1;
  uint8_t* region = nullptr;
  uint64_t pages = 0;
  uint8_t* sentinel = nullptr;  // the handler exits after resolving it
  pthread_t handler{};
};

void* Handler(void* arg) {
  Floor* f = static_cast<Floor*>(arg);
  for (;;) {
    uffd_msg msg;
    if (read(f->uffd, &msg, sizeof(msg)) != sizeof(msg)) continue;
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    uffdio_copy copy;
    copy.dst = msg.arg.pagefault.address & ~(kPage - 1);
    copy.src = reinterpret_cast<uint64_t>(g_src_page);
    copy.len = kPage;
    copy.mode = 0;
    copy.copy = 0;
    ioctl(f->uffd, UFFDIO_COPY, &copy);
    if (copy.dst == reinterpret_cast<uint64_t>(f->sentinel)) return nullptr;
  }
}

int OpenUffd() {
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
    close(dev);
    if (fd >= 0) return fd;
  }
  return static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC));
}

bool SetUp(Floor* f, uint64_t pages) {
  f->uffd = OpenUffd();
  if (f->uffd < 0) return false;
  uffdio_api api = {UFFD_API, 0, 0};
  if (ioctl(f->uffd, UFFDIO_API, &api) != 0) return false;
  f->pages = pages;
  void* p = mmap(nullptr, (pages + 1) * kPage, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  f->region = static_cast<uint8_t*>(p);
  madvise(p, (pages + 1) * kPage, MADV_NOHUGEPAGE);
  f->sentinel = f->region + pages * kPage;
  uffdio_register reg;
  reg.range.start = reinterpret_cast<uint64_t>(p);
  reg.range.len = (pages + 1) * kPage;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(f->uffd, UFFDIO_REGISTER, &reg) != 0) return false;
  return pthread_create(&f->handler, nullptr, Handler, f) == 0;
}

void TearDown(Floor* f) {
  Touch(f->sentinel);
  pthread_join(f->handler, nullptr);
  munmap(f->region, (f->pages + 1) * kPage);
  close(f->uffd);
}

void BM_FloorUffdCopy(benchmark::State& state) {
  Floor f;
  const uint64_t pages = std::min<uint64_t>(state.max_iterations, kWindowPages);
  if (!SetUp(&f, pages)) {
    state.SkipWithError("userfaultfd unavailable");
    return;
  }
  std::vector<int64_t> ns = WalkWindow(state, f.region, pages, Touch);
  TearDown(&f);
  SetPercentiles(state, ns);
}

}  // namespace

void RegisterFloorBenchmarks() {
  benchmark::RegisterBenchmark("BM_Floor/uffd_copy", BM_FloorUffdCopy);
}

}  // namespace ssihv::bench
