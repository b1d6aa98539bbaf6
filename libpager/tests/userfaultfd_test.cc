// The RAII userfaultfd layer on its own, driven by hand (no Pager).
#include "userfaultfd.h"

#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/mman.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <thread>

#include "ssihv/base/mapped_region.h"
#include "sys/uffd.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

constexpr uint64_t kPage = 4096;

uffd_msg ReadOneMessage(const Userfaultfd& uffd) {
  pollfd p{uffd.fd(), POLLIN, 0};
  REQUIRE(::poll(&p, 1, 20000) == 1);
  uffd_msg msg{};
  REQUIRE(sys::UffdRead(uffd.fd(), &msg, 1) == 1);
  return msg;
}

struct Fixture {
  Fixture() {
    auto u = Userfaultfd::Open({});
    REQUIRE(u.ok());
    uffd = std::make_unique<Userfaultfd>(*std::move(u));
    auto m = base::MappedRegion::Anonymous(16 * kPage);
    REQUIRE(m.ok());
    mem = *std::move(m);
    REQUIRE(
        uffd->Register(mem.data(), mem.size(),
                       UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
                       false)
            .ok());
  }
  std::unique_ptr<Userfaultfd> uffd;
  base::MappedRegion mem;
};

TEST_CASE("Open negotiates write-protect and REMOVE events") {
  auto uffd = Userfaultfd::Open({});
  REQUIRE(uffd.ok());
  CHECK(uffd->Has(UFFD_FEATURE_PAGEFAULT_FLAG_WP));
  CHECK(uffd->Has(UFFD_FEATURE_EVENT_REMOVE));
  CHECK(!uffd->Has(UFFD_FEATURE_SIGBUS));  // faults must be delivered
  CHECK((uffd->opened_via() == "/dev/userfaultfd" ||
         uffd->opened_via() == "userfaultfd(2)"));
  const std::string names = Userfaultfd::FeatureNames(uffd->features());
  CHECK(names.find("PAGEFAULT_FLAG_WP") != std::string::npos);
  CHECK(names.find("EVENT_REMOVE") != std::string::npos);
}

TEST_CASE("Open without remove_events leaves EVENT_REMOVE off") {
  UffdRequirements req;
  req.remove_events = false;
  auto uffd = Userfaultfd::Open(req);
  REQUIRE(uffd.ok());
  CHECK(!uffd->Has(UFFD_FEATURE_EVENT_REMOVE));
  CHECK(uffd->Has(UFFD_FEATURE_PAGEFAULT_FLAG_WP));
}

TEST_CASE("FeatureNames spells each bit") {
  CHECK(Userfaultfd::FeatureNames(UFFD_FEATURE_THREAD_ID |
                                  UFFD_FEATURE_MINOR_SHMEM) ==
        "THREAD_ID|MINOR_SHMEM");
  CHECK(Userfaultfd::FeatureNames(0).empty());
}

TEST_CASE("Register rejects an unaligned range, naming the call") {
  Fixture f;
  absl::Status st = f.uffd->Register(f.mem.data() + 1, kPage,
                                     UFFDIO_REGISTER_MODE_MISSING, false);
  REQUIRE(!st.ok());
  CHECK(st.message().find("UFFDIO_REGISTER") != absl::string_view::npos);
}

TEST_CASE(
    "A missing fault is resolved by UFFDIO_COPY; a second copy is EEXIST") {
  Fixture f;
  uint8_t* page = f.mem.data() + 3 * kPage;
  std::atomic<uint64_t> seen{0};
  std::thread reader(
      [&] { seen = *reinterpret_cast<volatile uint64_t*>(page + 8); });
  uffd_msg msg = ReadOneMessage(*f.uffd);
  CHECK(msg.event == UFFD_EVENT_PAGEFAULT);
  CHECK((msg.arg.pagefault.address & ~(kPage - 1)) ==
        reinterpret_cast<uint64_t>(page));
  CHECK((msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) == 0);
  alignas(4096) uint8_t src[kPage];
  testing::FillPattern(src, 0x3000);
  CHECK(f.uffd->Copy(page, src, kPage, false) == 0);
  reader.join();
  CHECK(seen == 0x3008);
  CHECK(f.uffd->Copy(page, src, kPage, false) == EEXIST);
  CHECK(f.uffd->ZeroPage(page, kPage) == EEXIST);
}

TEST_CASE("THREAD_ID reports the faulting thread") {
  Fixture f;
  if (!f.uffd->Has(UFFD_FEATURE_THREAD_ID)) return;  // kernel < 4.14
  uint8_t* page = f.mem.data();
  std::atomic<pid_t> tid{0};
  std::thread writer([&] {
    tid = testing::CurrentTid();
    *reinterpret_cast<volatile uint8_t*>(page) = 1;
  });
  uffd_msg msg = ReadOneMessage(*f.uffd);
  CHECK((msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0);
  CHECK(f.uffd->ZeroPage(page, kPage) == 0);  // write then COWs in-kernel
  writer.join();
  CHECK(static_cast<pid_t>(msg.arg.pagefault.feat.ptid) == tid.load());
  CHECK(page[0] == 1);
}

TEST_CASE("COPY with MODE_WP maps read-only; a write faults WP until cleared") {
  Fixture f;
  uint8_t* page = f.mem.data() + kPage;
  alignas(4096) uint8_t src[kPage] = {};
  src[0] = 42;
  // Populate read-only without a pending fault (DSM's Shared copy).
  REQUIRE(f.uffd->Copy(page, src, kPage, /*write_protect=*/true) == 0);
  CHECK(page[0] == 42);  // reads need no fault
  std::thread writer([&] { *reinterpret_cast<volatile uint8_t*>(page) = 7; });
  uffd_msg msg = ReadOneMessage(*f.uffd);
  CHECK((msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0);
  CHECK((msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0);
  CHECK(page[0] == 42);  // the write has not happened
  REQUIRE(f.uffd->WriteProtect(page, kPage, false) == 0);  // wakes
  writer.join();
  CHECK(page[0] == 7);
}

TEST_CASE("UFFDIO_WRITEPROTECT on a present page; UFFDIO_WAKE after EEXIST") {
  Fixture f;
  uint8_t* page = f.mem.data() + 2 * kPage;
  REQUIRE(f.uffd->ZeroPage(page, kPage) == 0);
  REQUIRE(f.uffd->Copy(page, page, kPage, false) == EEXIST);
  REQUIRE(f.uffd->WriteProtect(page, kPage, true) == 0);
  std::thread writer([&] { *reinterpret_cast<volatile uint8_t*>(page) = 9; });
  uffd_msg msg = ReadOneMessage(*f.uffd);
  CHECK((msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0);
  REQUIRE(f.uffd->WriteProtect(page, kPage, false) == 0);
  writer.join();
  CHECK(page[0] == 9);
  CHECK(f.uffd->Wake(page, kPage) == 0);  // nobody waits: harmless
}

TEST_CASE("MADV_DONTNEED queues a REMOVE event and blocks until it is read") {
  Fixture f;
  uint8_t* page = f.mem.data() + 5 * kPage;
  alignas(4096) uint8_t src[kPage];
  testing::FillPattern(src, 0x5000);
  REQUIRE(f.uffd->Copy(page, src, kPage, false) == 0);
  std::atomic<bool> returned{false};
  std::thread zapper([&] {
    ::madvise(page, kPage, MADV_DONTNEED);
    returned = true;
  });
  uffd_msg msg = ReadOneMessage(*f.uffd);
  CHECK(msg.event == UFFD_EVENT_REMOVE);
  CHECK(msg.arg.remove.start == reinterpret_cast<uint64_t>(page));
  CHECK(msg.arg.remove.end == reinterpret_cast<uint64_t>(page) + kPage);
  zapper.join();
  CHECK(returned);
  // Missing again: the next access faults rather than seeing the old bytes.
  std::atomic<uint8_t> seen{0xff};
  std::thread reader(
      [&] { seen = *reinterpret_cast<volatile uint8_t*>(page); });
  uffd_msg again = ReadOneMessage(*f.uffd);
  CHECK(again.event == UFFD_EVENT_PAGEFAULT);
  REQUIRE(f.uffd->ZeroPage(page, kPage) == 0);
  reader.join();
  CHECK(seen == 0);
}

}  // namespace
}  // namespace ssihv::pager
