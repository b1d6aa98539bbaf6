// ssihv-uffd-handler: a Firecracker page-fault handler (snapshot "Uffd"
// memory backend) built on libpager. docs/PAGER.md, "Firecracker".
#include <signal.h>
#include <string.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backing.h"
#include "options.h"
#include "server.h"
#include "ssihv/base/log.h"
#include "sys.h"

namespace ssihv::uffd_handler {
namespace {

using base::Log;
using base::LogLevel;

void Fail(absl::string_view what) {
  std::fprintf(stderr, "ssihv-uffd-handler: %s\n", std::string(what).c_str());
}

absl::StatusOr<std::unique_ptr<MemoryBacking>> OpenBacking(
    const HandlerOptions& o) {
  absl::StatusOr<std::unique_ptr<MemoryBacking>> backing;
  const char* flag = "--mem-file: ";
  if (!o.dsm_config.empty()) {
    flag = "--dsm: ";
    backing = StartDsm(o.dsm_config, o.node, o.fault_threads);
  } else if (!o.remote_mem.empty()) {
    flag = "--remote-mem: ";
    backing = OpenRemoteMem(o.remote_mem, o.node, o.exporter, o.peer_timeout_s,
                            o.fetch_ahead);
  } else {
    backing = OpenMemFile(o.mem_file, o.export_config, o.node);
  }
  if (!backing.ok()) {
    return absl::Status(backing.status().code(),
                        absl::StrCat(flag, backing.status().message()));
  }
  return backing;
}

// --export without --socket: serve the other nodes until a stop signal.
int ExportOnly(const MemoryBacking& backing, int signal_fd) {
  absl::StatusOr<base::UniqueFd> epoll = sys::EpollCreate();
  absl::Status st = epoll.ok()
                        ? sys::EpollAdd(epoll->get(), signal_fd, EPOLLIN, 0)
                        : epoll.status();
  if (!st.ok()) {
    Fail(st.message());
    return kExitError;
  }
  Log(LogLevel::kInfo, "ssihv-uffd-handler: serving ", backing.Describe());
  epoll_event ev;
  int sig = 0;
  while (sig == 0 && sys::EpollWait(epoll->get(), &ev, 1, -1) >= 0) {
    sig = sys::ReadSignal(signal_fd);
  }
  Log(LogLevel::kInfo, "ssihv-uffd-handler: ", strsignal(sig), ": stopping");
  return kExitOk;
}

int Main(int argc, char** argv) {
  absl::StatusOr<HandlerOptions> options =
      ParseHandlerArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!options.ok()) {
    Fail(options.status().message());
    return kExitUsage;
  }
  if (options->help) {
    std::fputs(HandlerUsage().c_str(), stdout);
    return kExitOk;
  }
  signal(SIGPIPE, SIG_IGN);
  // Before any thread exists, so that every thread inherits the mask and
  // the signals reach the event loop's signalfd only.
  absl::StatusOr<base::UniqueFd> signals =
      sys::BlockedSignalFd({SIGINT, SIGTERM, SIGHUP});
  if (!signals.ok()) {
    Fail(signals.status().message());
    return kExitError;
  }
  absl::StatusOr<std::unique_ptr<MemoryBacking>> backing =
      OpenBacking(*options);
  if (!backing.ok()) {
    Fail(backing.status().message());
    return kExitError;
  }
  if (options->socket.empty()) return ExportOnly(**backing, signals->get());
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Create(*options, *std::move(backing), *std::move(signals));
  if (!server.ok()) {
    Fail(absl::StrCat("--socket: ", server.status().message()));
    return kExitError;
  }
  return (*server)->Run();
}

}  // namespace
}  // namespace ssihv::uffd_handler

int main(int argc, char** argv) {
  return ssihv::uffd_handler::Main(argc, argv);
}
