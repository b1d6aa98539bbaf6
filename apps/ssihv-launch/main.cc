// ssihv-launch: one ssihv-vmm process per node of a cluster config on this
// machine, one guest across them (docs/VMM.md, "Several processes").
#include <cstdio>
#include <string>
#include <vector>

#include "launcher.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<ssihv::launch::LaunchOptions> options =
      ssihv::launch::ParseLaunchArgs(args);
  if (!options.ok()) {
    std::fprintf(stderr, "ssihv-launch: %s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(ssihv::launch::LaunchUsage().c_str(), stdout);
    return 0;
  }
  absl::StatusOr<int> status = ssihv::launch::Launch(*options);
  if (!status.ok()) {
    std::fprintf(stderr, "ssihv-launch: %s\n",
                 std::string(status.status().message()).c_str());
    return 3;
  }
  return *status;
}
