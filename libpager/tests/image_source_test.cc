#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "ssihv/base/file_util.h"
#include "ssihv/pager/pager.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::FillPattern;
using testing::HasPattern;
using testing::IsZero;
using testing::Settled;

/// A temporary image file of `pages` pages, page i holding the pattern of
/// GPA `pattern_base + i * 4096`; removed on destruction.
struct TempImage {
  TempImage(uint64_t pages, uint64_t pattern_base) {
    char tmpl[] = "/tmp/ssihv-image-XXXXXX";
    int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    std::string bytes(pages * kPageSize, '\0');
    for (uint64_t i = 0; i < pages; ++i) {
      FillPattern(reinterpret_cast<uint8_t*>(bytes.data()) + i * kPageSize,
                  pattern_base + i * kPageSize);
    }
    REQUIRE(base::WriteFileAtomically(path, bytes).ok());
  }
  ~TempImage() { ::unlink(path.c_str()); }
  std::string path;
};

struct SourcedPager {
  SourcedPager(uint64_t pages, std::shared_ptr<PageSource> source,
               uint64_t gpa) {
    auto m = GuestMemory::Create(pages * kPageSize);
    REQUIRE(m.ok());
    mem = *std::move(m);
    PagerOptions options;
    options.fault_threads = 2;
    auto p = Pager::Create(std::move(options));
    REQUIRE(p.ok());
    pager = *std::move(p);
    REQUIRE(pager->RegisterGuestMemory(mem, 0, mem.size(), gpa).ok());
    REQUIRE(pager->SetSource(std::move(source)).ok());
    REQUIRE(pager->Start().ok());
  }
  uint8_t* Page(uint64_t i) { return mem.data() + i * kPageSize; }
  GuestMemory mem;
  std::unique_ptr<Pager> pager;
};

TEST_CASE("Image source serves the file, and zeros outside it") {
  TempImage image(8, 0x10000);
  auto src = ImageSource::OpenFlat(image.path, 0x10000);
  REQUIRE(src.ok());
  SourcedPager env(16, std::shared_ptr<PageSource>(*std::move(src)), 0x10000);
  for (uint64_t i = 0; i < 8; ++i) {
    CHECK(HasPattern(env.Page(i), 0x10000 + i * kPageSize));
  }
  for (uint64_t i = 8; i < 16; ++i) CHECK(IsZero(env.Page(i)));
  PagerStats s = Settled(*env.pager);
  CHECK(s.faults[static_cast<size_t>(FaultKind::kLocalCopy)] == 8);
  CHECK(s.faults[static_cast<size_t>(FaultKind::kLocalZero)] == 8);
}

TEST_CASE("Image extents map file offsets to GPAs") {
  TempImage image(4, 0);  // page i holds pattern i*4096
  auto src = ImageSource::Open(
      image.path, {{.gpa = 0x8000, .file_offset = 0x2000, .size = 0x2000},
                   {.gpa = 0x1000, .file_offset = 0, .size = 0x1000}});
  REQUIRE(src.ok());
  SourcedPager env(12, std::shared_ptr<PageSource>(*std::move(src)), 0);
  CHECK(IsZero(env.Page(0)));
  CHECK(HasPattern(env.Page(1), 0));
  CHECK(HasPattern(env.Page(8), 0x2000));
  CHECK(HasPattern(env.Page(9), 0x3000));
  CHECK(IsZero(env.Page(10)));
}

TEST_CASE("A discarded image page comes back zero, not the image bytes") {
  TempImage image(8, 0);
  auto src = ImageSource::OpenFlat(image.path);
  REQUIRE(src.ok());
  SourcedPager env(8, std::shared_ptr<PageSource>(*std::move(src)), 0);
  for (uint64_t i = 0; i < 8; ++i)
    REQUIRE(HasPattern(env.Page(i), i * kPageSize));
  REQUIRE(env.pager->resolver().Discard(2 * kPageSize, 3 * kPageSize).ok());
  for (uint64_t i = 0; i < 8; ++i) {
    if (i >= 2 && i < 5) {
      CHECK(IsZero(env.Page(i)));
    } else {
      CHECK(HasPattern(env.Page(i), i * kPageSize));
    }
  }
}

TEST_CASE("After Discard returns, no fault thread serves the old image bytes") {
  // The REMOVE event is read by one fault thread; madvise returns as soon as
  // it is read, and the next fault may reach another fault thread at once.
  constexpr uint64_t kPages = 64;
  TempImage image(kPages, 0);
  auto src = ImageSource::OpenFlat(image.path);
  REQUIRE(src.ok());
  SourcedPager env(kPages, std::shared_ptr<PageSource>(*std::move(src)), 0);
  std::atomic<bool> stop{false};
  std::vector<std::thread> noise;
  for (int t = 0; t < 2; ++t) {  // keep every fault thread busy
    noise.emplace_back([&, t] {
      uint64_t i = t;
      while (!stop) {
        (void)IsZero(env.Page(kPages / 2 + i++ % (kPages / 2)));
      }
    });
  }
  int stale = 0;
  for (int round = 0; round < 400; ++round) {
    const uint64_t i = round % (kPages / 2);
    (void)IsZero(env.Page(i));
    REQUIRE(env.pager->resolver().Discard(i * kPageSize, kPageSize).ok());
    stale += !IsZero(env.Page(i));
  }
  stop = true;
  for (auto& t : noise) t.join();
  CHECK(stale == 0);
}

TEST_CASE("Image errors name the path and extent") {
  auto missing = ImageSource::OpenFlat("/nonexistent/ssihv.img");
  REQUIRE(!missing.ok());
  CHECK(missing.status().message().find("/nonexistent/ssihv.img") !=
        absl::string_view::npos);
  TempImage image(2, 0);
  auto outside = ImageSource::Open(
      image.path, {{.gpa = 0, .file_offset = 0x1000, .size = 0x2000}});
  REQUIRE(!outside.ok());
  CHECK(outside.status().message().find("extent[0]") !=
        absl::string_view::npos);
  auto overlap = ImageSource::Open(
      image.path, {{.gpa = 0, .file_offset = 0, .size = 0x2000},
                   {.gpa = 0x1000, .file_offset = 0, .size = 0x1000}});
  REQUIRE(!overlap.ok());
  CHECK(overlap.status().message().find("overlaps") != absl::string_view::npos);
  auto unaligned = ImageSource::Open(
      image.path, {{.gpa = 0x800, .file_offset = 0, .size = 0x1000}});
  CHECK(absl::IsInvalidArgument(unaligned.status()));
}

TEST_CASE("FromMemory: one mapping, a source per guest, discards apart") {
  // The caller's memory, shared by two sources (two guests).
  std::vector<uint8_t> image(16 * kPageSize);
  for (uint64_t i = 0; i < 16; ++i)
    FillPattern(&image[i * kPageSize], i * kPageSize);
  auto a = ImageSource::FromMemory(image.data(), image.size());
  auto b = ImageSource::FromMemory(image.data(), image.size(), 0x100000);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  SourcedPager ea(16, std::shared_ptr<PageSource>(*std::move(a)), 0);
  SourcedPager eb(16, std::shared_ptr<PageSource>(*std::move(b)), 0x100000);
  for (uint64_t i = 0; i < 16; ++i) {
    CHECK(HasPattern(ea.Page(i), i * kPageSize));
    CHECK(HasPattern(eb.Page(i), i * kPageSize));
  }
  // A discard in one guest does not change what the other is served.
  REQUIRE(ea.pager->resolver().Discard(2 * kPageSize, 2 * kPageSize).ok());
  REQUIRE(
      eb.pager->resolver().Discard(0x100000 + 2 * kPageSize, kPageSize).ok());
  CHECK(IsZero(ea.Page(2)));
  CHECK(IsZero(ea.Page(3)));
  CHECK(IsZero(eb.Page(2)));
  CHECK(HasPattern(ea.Page(4), 4 * kPageSize));
  // Nothing wrote the caller's memory.
  CHECK(HasPattern(&image[2 * kPageSize], 2 * kPageSize));

  CHECK(absl::IsInvalidArgument(
      ImageSource::FromMemory(nullptr, kPageSize).status()));
  CHECK(absl::IsInvalidArgument(
      ImageSource::FromMemory(image.data(), 100).status()));
  CHECK(absl::IsInvalidArgument(
      ImageSource::FromMemory(image.data(), 0).status()));
}

}  // namespace
}  // namespace ssihv::pager
