#include "console.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

namespace ssihv::vmm {
namespace {

TEST_CASE("PanicDetector finds Linux's panic banner in the byte stream") {
  PanicDetector d;
  for (char c : std::string("[ 1.0] Kernel pan")) d.Feed(c);
  CHECK_FALSE(d.panicked());
  for (char c : std::string("ic - not syncing: Attempted to kill init!\n"))
    d.Feed(c);
  CHECK(d.panicked());
  PanicDetector near;
  for (char c : std::string("KKernel panic - not syncin")) near.Feed(c);
  CHECK_FALSE(near.panicked());
  for (char c : std::string("Kernel panic - not syncing")) near.Feed(c);
  CHECK(near.panicked());
}

TEST_CASE("EscapeFilter: Ctrl-A x stops, Ctrl-A Ctrl-A sends one Ctrl-A") {
  EscapeFilter f;
  std::string out;
  CHECK_FALSE(f.Feed('l', &out));
  CHECK_FALSE(f.Feed(0x01, &out));
  CHECK_FALSE(f.Feed(0x01, &out));
  CHECK(out == std::string("l\x01"));
  CHECK_FALSE(f.Feed(0x01, &out));
  CHECK(f.Feed('x', &out));
}

TEST_CASE("Console output is line-buffered and flushed on Stop") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  auto console = Console::Create(-1, p[1]);
  REQUIRE(console.ok());
  for (char c : std::string("boot\nprompt# ")) (*console)->Output(c);
  char buf[64] = {};
  ssize_t n = ::read(p[0], buf, sizeof(buf));
  CHECK(std::string(buf, n) == "boot\n");
  (*console)->Stop();
  n = ::read(p[0], buf, sizeof(buf));
  CHECK(std::string(buf, n) == "prompt# ");
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
}  // namespace ssihv::vmm
