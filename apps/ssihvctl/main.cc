// ssihvctl: the command-line client of a ssihv cluster's HTTP API, and the
// calibration of its NUMA tables (docs/API.md).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "calibrate.h"
#include "ctl.h"
#include "options.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  using namespace ssihv::ctl;
  absl::StatusOr<CtlOptions> options =
      ParseCtlArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!options.ok()) {
    std::fprintf(stderr, "ssihvctl: %s\n",
                 std::string(options.status().message()).c_str());
    return kExitUsage;
  }
  if (options->help) {
    std::fputs(CtlUsage().c_str(), stdout);
    return kExitOk;
  }
  if (options->command == "calibrate") return RunCalibrate(*options);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return RunCommand(*options, std::cout, std::cerr, &g_stop,
                    isatty(STDOUT_FILENO) == 1);
}
