// ssihv-uffd-handler: a Firecracker page-fault handler (snapshot "Uffd"
// memory backend) built on libpager. docs/PAGER.md, "Firecracker".
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "backing.h"
#include "options.h"
#include "server.h"
#include "sys.h"

namespace ssihv::uffd_handler {
namespace {

void Fail(absl::string_view what) {
  std::fprintf(stderr, "ssihv-uffd-handler: %s\n", std::string(what).c_str());
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
      options->dsm_config.empty() ? OpenMemFile(options->mem_file)
                                  : StartDsm(options->dsm_config, options->node,
                                             options->fault_threads);
  if (!backing.ok()) {
    Fail(absl::StrCat(options->dsm_config.empty() ? "--mem-file: " : "--dsm: ",
                      backing.status().message()));
    return kExitError;
  }
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
