// --export and --remote-mem: one handler exports the snapshot's memory file
// to a cluster, another serves a VM from it, fetching each page on first
// touch over the transport (TCP here; RDMA in the lab).
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "handler_fixture.h"
#include "ssihv/testing/cluster_files.h"

namespace ssihv::fc_client {
namespace {

// A directory with the memory file and a 2-node cluster config.
struct Files {
  explicit Files(uint64_t size) {
    char tmpl[] = "/tmp/ssihv-uffd-handler-remote.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    socket = dir + "/uffd.sock";
    mem_file = dir + "/mem";
    WriteMemFile(mem_file, size);
    auto c = testing::WriteClusterConfig(dir, 2);
    REQUIRE(c.ok());
    config = *c;
  }
  ~Files() {
    for (const std::string& f : {mem_file, socket, config, dir + "/secret"}) {
      ::unlink(f.c_str());
    }
    ::rmdir(dir.c_str());
  }
  std::unique_ptr<HandlerProcess> Exporter() {
    auto h = HandlerProcess::Start(
        SSIHV_UFFD_HANDLER,
        {"--mem-file", mem_file, "--export", config, "--node", "0"});
    REQUIRE(h.ok());
    REQUIRE((*h)->WaitForLog("serving memory file") >= 0);
    return *std::move(h);
  }
  std::unique_ptr<HandlerProcess> Importer(
      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--socket", socket, "--remote-mem",    config,
        "--node",   "1",    "--fault-threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto h = HandlerProcess::Start(SSIHV_UFFD_HANDLER, args);
    REQUIRE(h.ok());
    REQUIRE((*h)->WaitForLog("listening on") >= 0);
    return *std::move(h);
  }
  std::string dir, socket, mem_file, config;
};

TEST_CASE("--remote-mem: a VM reads the memory file another node exports") {
  Files f(4 * kMiB);
  auto exporter = f.Exporter();
  CHECK(exporter->Log().find("exported as node 0 of") != std::string::npos);
  auto importer = f.Importer();
  CHECK(importer->Log().find("exported by node 0 of") != std::string::npos);
  VmOptions options;
  options.regions = {{.size = 1 * kMiB, .offset = 3 * kMiB},
                     {.size = 3 * kMiB, .offset = 0}};
  auto vm = Vm::Restore(f.socket, options);
  REQUIRE(vm.ok());
  CHECK(TouchAndCheck(**vm, 2) == 0);
  CHECK(importer->Signal(SIGTERM) == 0);
  CHECK(exporter->Signal(SIGTERM) == 0);
  CHECK(exporter->Log().find("stopping") != std::string::npos);
}

// In a child process (the handler stops a VM by killing its process): maps
// the first page, says so on `ready`, waits for `go`, then touches the rest.
[[noreturn]] void VmChild(const std::string& socket, int ready, int go) {
  VmOptions options;
  options.regions = {{.size = 1 * kMiB, .offset = 0}};
  auto vm = Vm::Restore(socket, options);
  if (!vm.ok()) ::_exit(2);
  uint64_t w;
  std::memcpy(&w, (*vm)->region(0), 8);
  if (w != WordAt(0)) ::_exit(3);
  char c = 'r';
  if (::write(ready, &c, 1) != 1 || ::read(go, &c, 1) != 1) ::_exit(4);
  for (uint64_t o = kPage; o < kMiB; o += kPage) {
    std::memcpy(&w, (*vm)->region(0) + o, 8);
    if (w != WordAt(o)) ::_exit(5);  // zeros in place of the page
  }
  ::_exit(0);  // every page served: the exporter was not lost after all
}

TEST_CASE("--remote-mem: a VM whose exporter is lost for good is stopped") {
  Files f(1 * kMiB);
  auto exporter = f.Exporter();
  auto importer = f.Importer({"--peer-timeout", "1", "--once"});
  int ready[2], go[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) VmChild(f.socket, ready[1], go[0]);
  char c;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  CHECK(exporter->Signal(SIGKILL) == 128 + SIGKILL);
  REQUIRE(::write(go[1], &c, 1) == 1);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  // Killed, not left waiting on the page and not given zeros.
  CHECK(WIFSIGNALED(status));
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
  CHECK(importer->Wait() == 1);  // --once, and its VM had to be stopped
  const std::string log = importer->Log();
  CHECK(log.find("cannot be served") != std::string::npos);
  CHECK(log.find("from node 0") != std::string::npos);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
}

TEST_CASE("--remote-mem and --export: startup errors name the flag") {
  Files f(1 * kMiB);
  auto run = [](const std::vector<std::string>& args) {
    auto h = HandlerProcess::Start(SSIHV_UFFD_HANDLER, args);
    REQUIRE(h.ok());
    const int status = (*h)->Wait();
    return std::make_pair(status, (*h)->Log());
  };
  // Nobody exports: it gives up after --peer-timeout, naming the node.
  auto [s1, log1] = run({"--socket", f.socket, "--remote-mem", f.config,
                         "--node", "1", "--peer-timeout", "1"});
  CHECK(s1 == 1);
  CHECK(log1.find("--remote-mem: image exporter node 0 not reached") !=
        std::string::npos);
  auto [s2, log2] =
      run({"--mem-file", f.mem_file, "--export", f.config, "--node", "5"});
  CHECK(s2 == 1);
  CHECK(log2.find("--export " + f.config + ": --node 5: not a node of") !=
        std::string::npos);
  // A VM whose memory reaches past the exported file is refused.
  auto exporter = f.Exporter();
  auto importer = f.Importer({"--once"});
  VmOptions options;
  options.regions = {{.size = 2 * kMiB, .offset = 0}};
  (void)Vm::Restore(f.socket, options);
  CHECK(importer->Wait() == 1);
  CHECK(importer->Log().find("refused") != std::string::npos);
}

}  // namespace
}  // namespace ssihv::fc_client
