#include "ssihv/base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "ssihv/base/mapped_region.h"

using ssihv::base::MappedRegion;
using ssihv::base::UniqueFd;

static bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST_CASE("UniqueFd closes on destruction and transfers on move") {
  int raw = ::open("/dev/null", O_RDONLY);
  REQUIRE(raw >= 0);
  {
    UniqueFd a(raw);
    UniqueFd b(std::move(a));
    CHECK_FALSE(a.valid());
    CHECK(b.get() == raw);
    CHECK(IsOpen(raw));
  }
  CHECK_FALSE(IsOpen(raw));
}

TEST_CASE("UniqueFd Release gives up ownership; Reset closes") {
  int raw = ::open("/dev/null", O_RDONLY);
  UniqueFd a(raw);
  CHECK(a.Release() == raw);
  CHECK(IsOpen(raw));
  UniqueFd b(raw);
  b.Reset();
  CHECK_FALSE(IsOpen(raw));
}

TEST_CASE("MappedRegion maps writable memory and moves ownership") {
  auto r = MappedRegion::Anonymous(1 << 20);
  REQUIRE(r.ok());
  r->data()[4095] = 7;
  MappedRegion moved = std::move(*r);
  CHECK(moved.data()[4095] == 7);
  CHECK(moved.size() == (1 << 20));
  CHECK_FALSE(r->valid());
}

TEST_CASE("MappedRegion reports mmap failure with its size") {
  auto r = MappedRegion::Shared(-1, 4096);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("size=4096") != absl::string_view::npos);
}
