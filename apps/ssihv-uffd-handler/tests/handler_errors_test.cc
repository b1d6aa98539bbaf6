// ssihv-uffd-handler: bad input is refused with a clear log line and the
// connection closed, never a crash; VMs going away; stopping.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "handler_fixture.h"

namespace ssihv::fc_client {
namespace {

// Blocks until the handler closes `conn` (recv returns 0).
bool ClosedByPeer(int conn) {
  char c;
  for (;;) {
    const ssize_t n = ::recv(conn, &c, 1, 0);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR) return errno == ECONNRESET;
  }
}

// Sends `body` with `fds` and closes the sending side, then expects the
// handler to close the connection and to log "refused" with `reason`.
void ExpectRefused(Fixture& f, const std::string& body,
                   const std::vector<int>& fds, const std::string& reason) {
  INFO("body: " << body << "; expected reason: " << reason);
  const int64_t mark = static_cast<int64_t>(f.handler->Log().size());
  auto conn = SendHandshake(f.socket, body, fds);
  REQUIRE(conn.ok());
  ::shutdown(conn->get(), SHUT_WR);  // nothing more comes (as v1.11 does)
  CHECK(ClosedByPeer(conn->get()));
  const int64_t at = f.handler->WaitForLog("refused, connection closed", mark);
  REQUIRE(at >= 0);
  CHECK(f.handler->WaitForLog(reason, at, 5) >= 0);
  CHECK(f.handler->Running());
}

std::string Region(uint64_t host, uint64_t size, uint64_t offset,
                   const std::string& page = "\"page_size\": 4096") {
  return "{\"base_host_virt_addr\": " + std::to_string(host) +
         ", \"size\": " + std::to_string(size) +
         ", \"offset\": " + std::to_string(offset) + ", " + page + "}";
}

TEST_CASE("Bad handshakes are refused and the handler keeps serving") {
  Fixture f(4 * kMiB);
  auto uffd = CreateUffd();
  REQUIRE(uffd.ok());
  const int u = uffd->get();
  const uint64_t host = 0x7f0000000000;
  const std::string ok_region = Region(host, kMiB, 0);

  ExpectRefused(f, "[{\"base_host_virt_addr\": 1,", {u}, "closed after");
  ExpectRefused(f, "[{\"size\": 4096,}]", {u}, "not valid JSON");
  ExpectRefused(f, "{\"regions\": []}", {u}, "non-empty JSON array");
  ExpectRefused(f, "[]", {u}, "non-empty JSON array");
  ExpectRefused(f, "[" + ok_region + "]", {}, "no file descriptor");
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ExpectRefused(f, "[" + ok_region + "]", {null_fd}, "is not a userfaultfd");
  ExpectRefused(f, "[" + ok_region + "]", {u, null_fd, null_fd},
                "3 file descriptors");
  ::close(null_fd);
  ExpectRefused(f,
                "[" + Region(host, kMiB, 0) + ", " +
                    Region(host + kMiB / 2, kMiB, kMiB) + "]",
                {u}, "overlaps regions[0] in the VM's address space");
  ExpectRefused(f,
                "[" + Region(host, kMiB, 0) + ", " +
                    Region(host + 2 * kMiB, kMiB, kMiB / 2) + "]",
                {u}, "overlaps regions[0] in the memory");
  ExpectRefused(f, "[" + Region(host, 2 * kMiB, 3 * kMiB) + "]", {u},
                "exceeds the memory of 4194304 bytes");
  ExpectRefused(f, "[" + Region(host, kMiB, 0, "\"page_size\": 3000") + "]",
                {u}, "regions[0].page_size: 3000 is not a power of two");
  ExpectRefused(f, "[" + Region(host, kMiB, 0, "\"page_size_kib\": 0") + "]",
                {u}, "regions[0].page_size_kib: 0 is not a power of two");
  ExpectRefused(f,
                "[" + Region(host, 2 * kMiB, 0, "\"page_size\": 2097152") + "]",
                {u}, "only 4096-byte pages are served");
  ExpectRefused(f,
                "[{\"base_host_virt_addr\": 4096, \"size\": -4096, "
                "\"offset\": 0, \"page_size\": 4096}]",
                {u}, "regions[0].size: must be an unsigned integer");
  ExpectRefused(f, "[{\"size\": 4096, \"offset\": 0, \"page_size\": 4096}]",
                {u}, "regions[0].base_host_virt_addr: missing");
  ExpectRefused(f, "[" + Region(host + 100, kMiB, 0) + "]", {u},
                "is not page-aligned");
  ExpectRefused(f, "", {}, "closed after 0 bytes");
  ExpectRefused(f, std::string(70000, '['), {u}, "more than 65536 bytes");
  // Still serving: a good VM after all that.
  VmOptions options;
  options.regions = {{.size = 4 * kMiB, .offset = 0}};
  auto vm = Vm::Restore(f.socket, options);
  REQUIRE(vm.ok());
  CHECK(TouchAndCheck(**vm, 2) == 0);
  CHECK(f.handler->Running());
}

// A Firecracker that restores, touches part of its memory from two threads
// and exits in the middle (no cleanup): run in a child process.
[[noreturn]] void ClientThatDies(const std::string& socket) {
  VmOptions options;
  options.regions = {{.size = 4 * kMiB, .offset = 0}};
  auto vm = Vm::Restore(socket, options);
  if (!vm.ok()) ::_exit(2);
  std::thread a([&] {
    for (uint64_t o = 0; o < 2 * kMiB; o += kPage) (*vm)->region(0)[o] = 1;
  });
  std::thread b([&] {
    for (uint64_t o = 2 * kMiB; o < 4 * kMiB; o += 2 * kPage) {
      if ((*vm)->region(0)[o + 8] != static_cast<uint8_t>(WordAt(o + 8))) {
        ::_exit(3);
      }
      if (o > 3 * kMiB) ::_exit(0);  // mid-run, thread `a` still faulting
    }
  });
  a.join();
  b.join();
  ::_exit(0);
}

int RunClientThatDies(const std::string& socket) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ClientThatDies(socket);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_CASE("A VM exiting mid-run ends its session; the handler goes on") {
  Fixture f(4 * kMiB);
  CHECK(RunClientThatDies(f.socket) == 0);
  CHECK(f.handler->WaitForLog("gone (its process exited)") >= 0);
  CHECK(f.handler->Running());
  VmOptions options;
  options.regions = {{.size = 4 * kMiB, .offset = 0}};
  auto vm = Vm::Restore(f.socket, options);
  REQUIRE(vm.ok());
  CHECK(TouchAndCheck(**vm, 2) == 0);
  // SIGTERM: a clean exit that removes the socket.
  CHECK(f.handler->Signal(SIGTERM) == 0);
  struct stat st {};
  CHECK(::stat(f.socket.c_str(), &st) < 0);
  CHECK(f.handler->Log().find("still served") != std::string::npos);
}

TEST_CASE("A connection that sends nothing is dropped at the timeout") {
  Fixture f(4 * kMiB, {"--handshake-timeout", "1"});
  auto conn = SendHandshake(f.socket, "[", {});  // incomplete, then silence
  REQUIRE(conn.ok());
  CHECK(ClosedByPeer(conn->get()));
  CHECK(f.handler->WaitForLog("handshake: not complete within 1 s") >= 0);
  CHECK(f.handler->Running());
}

TEST_CASE("--once: exits 0 when its VM goes away, 1 when it is refused") {
  {
    Fixture f(4 * kMiB, {"--once"});
    CHECK(RunClientThatDies(f.socket) == 0);
    CHECK(f.handler->Wait() == 0);
    struct stat st {};
    CHECK(::stat(f.socket.c_str(), &st) < 0);
  }
  {
    Fixture f(4 * kMiB, {"--once"});
    auto conn = SendHandshake(f.socket, "[", {});
    REQUIRE(conn.ok());
    conn->Reset();
    CHECK(f.handler->Wait() == 1);
    CHECK(f.handler->Log().find("refused") != std::string::npos);
  }
}

TEST_CASE("Command-line and startup errors") {
  auto run = [](const std::vector<std::string>& args) {
    auto h = HandlerProcess::Start(SSIHV_UFFD_HANDLER, args);
    REQUIRE(h.ok());
    const int status = (*h)->Wait();
    return std::make_pair(status, (*h)->Log());
  };
  auto [s1, log1] = run({"--mem-file", "/nonexistent"});
  CHECK(s1 == 2);
  CHECK(log1.find("--socket: required") != std::string::npos);
  auto [s2, log2] = run(
      {"--socket", "/tmp/x", "--mem-file", "m", "--dsm", "c", "--node", "0"});
  CHECK(s2 == 2);
  CHECK(log2.find("exactly one") != std::string::npos);
  auto [s3, log3] =
      run({"--socket", "/tmp/x", "--mem-file", "/nonexistent/mem"});
  CHECK(s3 == 1);
  CHECK(log3.find("--mem-file: open /nonexistent/mem") != std::string::npos);
  // The socket path exists: refused, and the file is left alone.
  Fixture f(4 * kMiB);
  auto [s4, log4] = run({"--socket", f.socket, "--mem-file", f.mem_file});
  CHECK(s4 == 1);
  CHECK(log4.find("the path exists") != std::string::npos);
  CHECK(f.handler->Running());
}

}  // namespace
}  // namespace ssihv::fc_client
