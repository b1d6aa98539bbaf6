// libpager from C++ (ssihv::pager): guest RAM restored lazily from a RAM
// image. Writes a 16 MiB image with a known pattern, registers 16 MiB of
// guest RAM with a pager whose source is that image, touches the RAM from
// four threads (each first touch is a userfaultfd fault served by the
// pager), checks every byte, discards a range as a balloon would (it then
// reads zeros) and prints the pager's statistics as JSON.
//
// Build against an installed ssihv (see ../README.md):
//   cmake -S . -B build -DCMAKE_PREFIX_PATH=<prefix> && cmake --build build
// Exit status: 0 checked, 1 a wrong byte or an error.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/pager/guest_memory.h"
#include "ssihv/pager/page_source.h"
#include "ssihv/pager/pager.h"
#include "ssihv/pager/stats.h"

namespace {

using ssihv::pager::GuestMemory;
using ssihv::pager::ImageSource;
using ssihv::pager::Pager;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kRamSize = 16 << 20;

uint64_t WordAt(uint64_t gpa) { return gpa * 0x9E3779B97F4A7C15ull + 1; }

// Pages of `ram` from `threads` threads, interleaved; the number that
// differ from `expect(gpa)`.
template <typename Expect>
uint64_t CountBadPages(const uint8_t* ram, uint64_t lo, uint64_t hi,
                       int threads, Expect expect) {
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (uint64_t page = lo + t * kPage; page < hi; page += threads * kPage) {
        for (uint64_t off = 0; off < kPage; off += 8) {
          uint64_t v;
          std::memcpy(&v, ram + page + off, 8);
          if (v != expect(page + off)) {
            bad.fetch_add(1);
            break;
          }
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return bad.load();
}

absl::Status Run() {
  const std::string image =
      "/tmp/ssihv-example-image-" + std::to_string(::getpid());
  std::string bytes(kRamSize, '\0');
  for (uint64_t x = 0; x < kRamSize; x += 8) {
    const uint64_t w = WordAt(x);
    std::memcpy(&bytes[x], &w, 8);
  }
  SSIHV_RETURN_IF_ERROR(ssihv::base::WriteFileAtomically(image, bytes));
  auto source = ImageSource::OpenFlat(image);  // maps it: the file can go
  ::unlink(image.c_str());
  if (!source.ok()) return source.status();

  SSIHV_ASSIGN_OR_RETURN(GuestMemory ram, GuestMemory::Create(kRamSize));
  ssihv::pager::PagerOptions options;
  options.fault_threads = 2;
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<Pager> pager, Pager::Create(options));
  SSIHV_RETURN_IF_ERROR(pager->RegisterGuestMemory(ram, 0, kRamSize, 0));
  SSIHV_RETURN_IF_ERROR(pager->SetSource(*std::move(source)));
  SSIHV_RETURN_IF_ERROR(pager->Start());

  if (uint64_t bad = CountBadPages(ram.data(), 0, kRamSize, 4, WordAt)) {
    return absl::DataLossError(
        absl::StrCat(bad, " pages differ from the image"));
  }
  // A balloon takes 1 MiB back: it reads zeros from now on.
  constexpr uint64_t kLo = 4 << 20;
  constexpr uint64_t kHi = 5 << 20;
  SSIHV_RETURN_IF_ERROR(pager->resolver().Discard(kLo, kHi - kLo));
  if (uint64_t bad = CountBadPages(ram.data(), kLo, kHi, 2,
                                   [](uint64_t) { return uint64_t{0}; })) {
    return absl::DataLossError(
        absl::StrCat(bad, " discarded pages do not read zeros"));
  }
  pager->Stop();
  const ssihv::pager::PagerStats stats = pager->Stats();
  std::printf("%s\n", ssihv::pager::ToJson(stats).dump(2).c_str());
  const uint64_t pages = kRamSize / kPage;
  const uint64_t zero = (kHi - kLo) / kPage;
  const uint64_t copied =
      stats.faults[static_cast<size_t>(ssihv::pager::FaultKind::kLocalCopy)];
  const uint64_t zeroed =
      stats.faults[static_cast<size_t>(ssihv::pager::FaultKind::kLocalZero)];
  if (copied != pages || zeroed != zero) {
    return absl::InternalError(
        absl::StrCat("expected ", pages, " local_copy and ", zero,
                     " local_zero faults, got ", copied, " and ", zeroed));
  }
  return absl::OkStatus();
}

}  // namespace

int main() {
  absl::Status st = Run();
  if (!st.ok()) {
    std::fprintf(stderr, "example: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
