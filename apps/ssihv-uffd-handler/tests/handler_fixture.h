// Shared by the handler's end-to-end tests: a memory file with a known
// pattern, the handler serving it, and the guest-side checks.
#ifndef SSIHV_APPS_UFFD_HANDLER_TESTS_HANDLER_FIXTURE_H_
#define SSIHV_APPS_UFFD_HANDLER_TESTS_HANDLER_FIXTURE_H_

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fc_client.h"
#include "handler_process.h"
#include "ssihv/base/file_util.h"

namespace ssihv::fc_client {

inline constexpr uint64_t kPage = 4096;
inline constexpr uint64_t kMiB = 1 << 20;

// The memory file: every 8-byte word at file offset x holds a non-zero
// function of x, so a page from the wrong offset, or zeros, is told apart.
inline uint64_t WordAt(uint64_t offset) {
  return (offset + 8) * 0x9E3779B97F4A7C15ull;
}

// Writes a memory file of `size` bytes holding WordAt's pattern.
inline void WriteMemFile(const std::string& path, uint64_t size) {
  std::string bytes(size, '\0');
  for (uint64_t x = 0; x < size; x += 8) {
    const uint64_t w = WordAt(x);
    std::memcpy(bytes.data() + x, &w, 8);
  }
  REQUIRE(base::WriteFileAtomically(path, bytes).ok());
}

struct Fixture {
  std::string dir;
  std::string socket;
  std::string mem_file;
  uint64_t mem_size = 0;
  std::unique_ptr<HandlerProcess> handler;

  explicit Fixture(uint64_t size, std::vector<std::string> extra_args = {}) {
    char tmpl[] = "/tmp/ssihv-uffd-handler-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    socket = dir + "/uffd.sock";
    mem_file = dir + "/mem";
    mem_size = size;
    WriteMemFile(mem_file, size);
    std::vector<std::string> args = {"--socket", socket, "--mem-file",
                                     mem_file};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    auto h = HandlerProcess::Start(SSIHV_UFFD_HANDLER, args);
    REQUIRE(h.ok());
    handler = *std::move(h);
    REQUIRE(handler->WaitForLog("listening on") >= 0);
  }
  ~Fixture() {
    handler.reset();
    ::unlink(mem_file.c_str());
    ::unlink(socket.c_str());
    ::rmdir(dir.c_str());
  }
};

// Touches every page of every region from `threads` threads, interleaved
// (thread t takes pages t, t + threads, ...); a quarter of the first
// touches are writes (of the byte the file holds there). Returns the pages
// whose bytes differ from the file at the region's offset.
inline uint64_t TouchAndCheck(const Vm& vm, int threads) {
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (size_t r = 0; r < vm.num_regions(); ++r) {
        const uint64_t pages = vm.spec(r).size / kPage;
        for (uint64_t p = static_cast<uint64_t>(t); p < pages; p += threads) {
          volatile uint8_t* page = vm.region(r) + p * kPage;
          const uint64_t file_off = vm.spec(r).offset + p * kPage;
          if (p % 4 == 0) {
            const uint64_t w = WordAt(file_off);
            page[0] = static_cast<uint8_t>(w);  // a write fault
          }
          for (uint64_t o = 0; o < kPage; o += 8) {
            uint64_t v;
            std::memcpy(&v, const_cast<uint8_t*>(page) + o, 8);
            if (v != WordAt(file_off + o)) {
              bad.fetch_add(1);
              break;
            }
          }
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return bad.load();
}

inline bool PageIsZero(const uint8_t* page) {
  for (uint64_t o = 0; o < kPage; ++o) {
    if (page[o] != 0) return false;
  }
  return true;
}

}  // namespace ssihv::fc_client

#endif  // SSIHV_APPS_UFFD_HANDLER_TESTS_HANDLER_FIXTURE_H_
