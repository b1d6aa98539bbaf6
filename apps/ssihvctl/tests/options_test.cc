#include "options.h"

#include <catch2/catch.hpp>

namespace ssihv::ctl {
namespace {

std::string ErrorOf(const std::vector<std::string>& args) {
  auto r = ParseCtlArgs(args);
  REQUIRE_FALSE(r.ok());
  return std::string(r.status().message());
}

TEST_CASE("ssihvctl options: commands, defaults, values") {
  auto o = ParseCtlArgs({"--config", "c.json", "status"});
  REQUIRE(o.ok());
  CHECK(o->command == "status");
  CHECK(o->timeout == absl::Seconds(2));
  CHECK(o->interval == absl::Seconds(1));
  o = ParseCtlArgs({"pages", "0x1000", "--config=c.json", "--timeout", "0.5"});
  REQUIRE(o.ok());
  CHECK(o->gpa == "0x1000");
  CHECK(o->timeout == absl::Milliseconds(500));
  o = ParseCtlArgs(
      {"--config", "c", "top", "--count", "3", "--interval", "0.1"});
  REQUIRE(o.ok());
  CHECK(o->count == 3);
  CHECK(o->interval == absl::Milliseconds(100));
  o = ParseCtlArgs({"--config", "c", "calibrate", "--out", "m.json", "--pages",
                    "64", "--local-mib", "8", "--threads", "2"});
  REQUIRE(o.ok());
  CHECK(o->out == "m.json");
  CHECK(o->pages == 64);
  o = ParseCtlArgs({"--config", "c", "calibrate", "--node", "2"});
  REQUIRE(o.ok());  // nodes other than 0 write nothing
  CHECK(*o->node == 2);
  CHECK(ParseCtlArgs({"--help"})->help);
}

TEST_CASE("ssihvctl options: errors name the argument") {
  CHECK(ErrorOf({"--config", "c"}) == "a command is required (see --help)");
  CHECK(ErrorOf({"--config", "c", "statsu"}) ==
        "statsu: unknown command (see --help)");
  CHECK(ErrorOf({"status"}) == "--config: required");
  CHECK(ErrorOf({"--config", "c", "pages"}) ==
        "pages: needs the GPA (pages 0x100000)");
  CHECK(ErrorOf({"--config", "c", "status", "extra"}) ==
        "extra: unexpected argument");
  CHECK(ErrorOf({"--config", "c", "status", "--timeout", "x"}) ==
        "--timeout: expected seconds >= 0.001, got \"x\"");
  CHECK(ErrorOf({"--config", "c", "status", "--timeout"}) ==
        "--timeout: needs a value");
  CHECK(ErrorOf({"--config", "c", "metrics", "--node", "64"}) ==
        "--node: expected an integer in 0..63, got \"64\"");
  CHECK(ErrorOf({"--config", "c", "status", "--bogus", "1"}) ==
        "--bogus: unknown option (see --help)");
  CHECK(ErrorOf({"--config", "c", "calibrate"}) ==
        "--out: required by calibrate (node 0 writes it)");
  CHECK(ErrorOf({"--config", "c", "calibrate", "--node", "0"}) ==
        "--out: required by calibrate (node 0 writes it)");
}

}  // namespace
}  // namespace ssihv::ctl
