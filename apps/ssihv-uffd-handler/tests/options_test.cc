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
        "--node: only with --dsm, --remote-mem or --export");
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

TEST_CASE("Handler options: exporting a memory file, and importing it") {
  auto e = ParseHandlerArgs(
      {"--mem-file", "m", "--export", "c.json", "--node", "0"});
  REQUIRE(e.ok());  // export only: no socket needed
  CHECK(e->export_config == "c.json");
  CHECK(e->socket.empty());
  auto r = ParseHandlerArgs({"--socket", "s", "--remote-mem", "c.json",
                             "--node", "2", "--exporter", "1", "--peer-timeout",
                             "5", "--fetch-ahead", "0"});
  REQUIRE(r.ok());
  CHECK(r->remote_mem == "c.json");
  CHECK(r->node == 2);
  CHECK(r->exporter == 1);
  CHECK(r->peer_timeout_s == 5);
  CHECK(r->fetch_ahead == 0);
  auto d =
      ParseHandlerArgs({"--socket", "s", "--remote-mem", "c", "--node", "1"});
  REQUIRE(d.ok());
  CHECK(d->exporter == 0);
  CHECK(d->peer_timeout_s == 60);
  CHECK(d->fetch_ahead == 16);
  CHECK(Error({"--socket", "s", "--mem-file", "m", "--fetch-ahead", "4"}) ==
        "--fetch-ahead: only with --remote-mem");
  CHECK(Error({"--socket", "s", "--remote-mem", "c", "--node", "1",
               "--fetch-ahead", "65"}) ==
        "--fetch-ahead: '65' is not a number in 0..64");

  CHECK(Error({"--socket", "s", "--remote-mem", "c"}) ==
        "--node: required with --remote-mem");
  CHECK(Error({"--mem-file", "m", "--export", "c"}) ==
        "--node: required with --export");
  CHECK(Error({"--socket", "s", "--dsm", "c", "--export", "c", "--node",
               "0"}) == "--export: only with --mem-file (the file it serves)");
  CHECK(Error({"--socket", "s", "--mem-file", "m", "--remote-mem", "c",
               "--node", "0"})
            .find("exactly one") != std::string::npos);
  CHECK(Error({"--socket", "s", "--mem-file", "m", "--exporter", "1"}) ==
        "--exporter: only with --remote-mem");
  CHECK(Error({"--socket", "s", "--mem-file", "m", "--peer-timeout=3"}) ==
        "--peer-timeout: only with --remote-mem");
  CHECK(Error({"--socket", "s", "--remote-mem", "c", "--node", "0"}) ==
        "--exporter 0: must be another node than --node");
  CHECK(Error({"--mem-file", "m", "--export", "c", "--node", "0", "--once"}) ==
        "--once: only with --socket");
  CHECK(Error({"--socket", "s", "--remote-mem", "c", "--node", "1",
               "--peer-timeout", "0"}) ==
        "--peer-timeout: '0' is not a number in 1..3600");
}

}  // namespace
}  // namespace ssihv::uffd_handler
