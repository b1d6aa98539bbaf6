// ssihv-uffd-handler against a client that does exactly what Firecracker
// does when it restores a snapshot with the "Uffd" memory backend
// (fc_client.h): the real binary, a real memory file, real faults.
#include <sys/mman.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "handler_fixture.h"

namespace ssihv::fc_client {
namespace {

TEST_CASE("Every byte equals the memory file, touched by several threads") {
  Fixture f(16 * kMiB);
  // Two regions, the second first in the file: offsets are honoured.
  VmOptions options;
  options.regions = {{.size = 6 * kMiB, .offset = 10 * kMiB},
                     {.size = 10 * kMiB, .offset = 0}};
  auto vm = Vm::Restore(f.socket, options);
  REQUIRE(vm.ok());
  REQUIRE(f.handler->WaitForLog("serving 2 region(s)") >= 0);
  CHECK(TouchAndCheck(**vm, 4) == 0);
  // A second pass reads what is now mapped: no fault, same bytes.
  CHECK(TouchAndCheck(**vm, 2) == 0);
}

TEST_CASE("After MADV_DONTNEED (a balloon) the range reads zeros") {
  Fixture f(8 * kMiB);
  VmOptions options;
  options.regions = {{.size = 8 * kMiB, .offset = 0}};
  auto vm = Vm::Restore(f.socket, options);
  REQUIRE(vm.ok());
  REQUIRE(TouchAndCheck(**vm, 3) == 0);
  uint8_t* base = (*vm)->region(0);
  // Firecracker's balloon: madvise(MADV_DONTNEED) of the inflated range.
  // It returns once the handler has read the REMOVE event.
  const uint64_t lo = 1 * kMiB;
  const uint64_t hi = 3 * kMiB;
  REQUIRE(::madvise(base + lo, hi - lo, MADV_DONTNEED) == 0);
  std::vector<std::thread> readers;
  std::atomic<uint64_t> not_zero{0};
  std::atomic<uint64_t> not_file{0};
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      for (uint64_t off = t * kPage; off < 8 * kMiB; off += 3 * kPage) {
        const bool removed = off >= lo && off < hi;
        if (off % (8 * kPage) == 0) base[off + 100] = 0;  // write faults too
        if (removed && !PageIsZero(base + off)) not_zero.fetch_add(1);
        uint64_t v;
        std::memcpy(&v, base + off + 8, 8);
        if (!removed && v != WordAt(off + 8)) not_file.fetch_add(1);
      }
    });
  }
  for (auto& r : readers) r.join();
  CHECK(not_zero.load() == 0);
  CHECK(not_file.load() == 0);
}

TEST_CASE("Two VMs at once, old and new Firecracker handshakes") {
  Fixture f(12 * kMiB, {"--fault-threads", "2"});
  VmOptions old_fc;  // <= v1.11: page_size_kib only, connection closed
  old_fc.regions = {{.size = 4 * kMiB, .offset = 8 * kMiB}};
  old_fc.page_size_field = PageSizeField::kPageSizeKib;
  old_fc.keep_connection = false;
  VmOptions new_fc;  // page_size, connection kept open
  new_fc.regions = {{.size = 8 * kMiB, .offset = 0},
                    {.size = 4 * kMiB, .offset = 8 * kMiB}};
  new_fc.page_size_field = PageSizeField::kPageSize;
  auto a = Vm::Restore(f.socket, old_fc);
  auto b = Vm::Restore(f.socket, new_fc);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(f.handler->WaitForLog("vm #2") >= 0);
  uint64_t bad_a = 0;
  uint64_t bad_b = 0;
  std::thread ta([&] { bad_a = TouchAndCheck(**a, 2); });
  std::thread tb([&] { bad_b = TouchAndCheck(**b, 2); });
  ta.join();
  tb.join();
  CHECK(bad_a == 0);
  CHECK(bad_b == 0);
}

}  // namespace
}  // namespace ssihv::fc_client
