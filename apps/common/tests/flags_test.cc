#include "flags.h"

#include <catch2/catch.hpp>

namespace ssihv::apps {
namespace {

struct Parsed {
  std::string path;
  int n = 7;
  bool on = false;
};

absl::Status Parse(const std::vector<std::string>& args, Parsed* p) {
  return ParseFlags(args, {{"--path", "", true, StringFlag(&p->path)},
                           {"--n", "", true, IntFlag(&p->n, 1, 64)},
                           {"--on", "-o", false, BoolFlag(&p->on)}});
}

std::string Error(const std::vector<std::string>& args) {
  Parsed p;
  absl::Status st = Parse(args, &p);
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  return std::string(st.message());
}

TEST_CASE("Both value forms, switches, aliases, defaults") {
  Parsed p;
  REQUIRE(Parse({"--path", "a=b", "--n=12", "-o"}, &p).ok());
  CHECK(p.path == "a=b");
  CHECK(p.n == 12);
  CHECK(p.on);
  Parsed q;
  REQUIRE(Parse({}, &q).ok());
  CHECK(q.n == 7);
  CHECK_FALSE(q.on);
}

TEST_CASE("Errors name the flag") {
  CHECK(Error({"--bogus"}) == "unknown argument '--bogus' (see --help)");
  CHECK(Error({"-x=1"}) == "unknown argument '-x=1' (see --help)");
  CHECK(Error({"--path"}) == "--path: needs a value");
  CHECK(Error({"--path="}) == "--path: empty value");
  CHECK(Error({"--on=yes"}) == "--on: takes no value");
  CHECK(Error({"--n", "65"}) == "--n: '65' is not a number in 1..64");
  CHECK(Error({"--n", "x"}) == "--n: 'x' is not a number in 1..64");
}

}  // namespace
}  // namespace ssihv::apps
