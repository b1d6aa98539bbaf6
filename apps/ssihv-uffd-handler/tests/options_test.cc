#include "options.h"

#include <catch2/catch.hpp>

namespace ssihv::uffd_handler {
namespace {

std::string Error(const std::vector<std::string>& args) {
  auto r = ParseHandlerArgs(args);
  REQUIRE_FALSE(r.ok());
  return std::string(r.status().message());
}

TEST_CASE("Handler options") {
  auto o = ParseHandlerArgs({"--socket", "/run/fc.sock", "--mem-file=/m",
                             "--once", "--fault-threads", "3"});
  REQUIRE(o.ok());
  CHECK(o->socket == "/run/fc.sock");
  CHECK(o->mem_file == "/m");
  CHECK(o->once);
  CHECK(o->fault_threads == 3);
  CHECK(o->node == -1);
  auto d =
      ParseHandlerArgs({"--socket", "s", "--dsm", "c.json", "--node", "1"});
  REQUIRE(d.ok());
  CHECK(d->dsm_config == "c.json");
  CHECK(d->node == 1);
  CHECK_FALSE(d->once);
  CHECK(ParseHandlerArgs({"--help"})->help);

  CHECK(Error({"--mem-file", "m"}) == "--socket: required (the socket path)");
  CHECK(Error({"--socket", "s"}).find("exactly one") != std::string::npos);
  CHECK(Error({"--socket", "s", "--dsm", "c"}) ==
        "--node: required with --dsm");
  CHECK(Error({"--socket", "s", "--mem-file", "m", "--node", "0"}) ==
        "--node: only with --dsm");
  CHECK(Error({"--socket", "s", "--mem-file", "m", "--fault-threads", "0"}) ==
        "--fault-threads: '0' is not a number in 1..64");
  CHECK(Error({"--socket"}) == "--socket: needs a value");
  CHECK(Error({"--socket="}) == "--socket: empty value");
  CHECK(Error({"--bogus"}) == "unknown argument '--bogus' (see --help)");
  CHECK(Error({"--socket", "s", "--mem-file", "m", "--handshake-timeout",
               "0"}) == "--handshake-timeout: '0' is not a number in 1..3600");
  auto t = ParseHandlerArgs(
      {"--socket", "s", "--mem-file", "m", "--handshake-timeout=2"});
  REQUIRE(t.ok());
  CHECK(t->handshake_timeout_s == 2);
}

}  // namespace
}  // namespace ssihv::uffd_handler
