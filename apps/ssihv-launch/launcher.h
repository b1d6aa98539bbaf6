// ssihv-launch: one ssihv-vmm process per node of a cluster config, on this
// machine (docs/VMM.md, "Several processes"). Node 0 keeps the terminal (the
// guest's console); the other nodes' output is relayed to stderr, each line
// prefixed with its node. SIGINT/SIGTERM/SIGHUP reach every node; the
// launcher exits with node 0's status.
#ifndef SSIHV_APPS_LAUNCH_LAUNCHER_H_
#define SSIHV_APPS_LAUNCH_LAUNCHER_H_

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ssihv::launch {

struct LaunchOptions {
  /// The cluster config every node gets (required: the launcher counts its
  /// nodes). Empty: DefaultLaunchConfigJson().
  std::string config_path;
  /// The ssihv-vmm binary; empty: FindVmm().
  std::string vmm;
  /// Arguments passed to every node, after --config and before --node.
  std::vector<std::string> vmm_args;
  /// How long the other nodes may take to stop after node 0 exited before
  /// they are killed.
  std::chrono::seconds grace{20};
  bool help = false;
};

/// Parses the launcher's own flags; everything else goes to ssihv-vmm.
/// InvalidArgument names the flag.
absl::StatusOr<LaunchOptions> ParseLaunchArgs(
    const std::vector<std::string>& args);
std::string LaunchUsage();

/// The ssihv-vmm beside this executable (same folder, or ../ssihv-vmm/ in a
/// build tree), else the one on PATH.
absl::StatusOr<std::string> FindVmm();

/// The cluster the launcher runs without --config: ssihv-vmm's embedded
/// 2-node default with its nodes at SLIT distance 100, far enough that the
/// guest keeps tasks on their node (docs/CLUSTER_CONFIG.md, "Distances of a
/// guest across processes").
std::string DefaultLaunchConfigJson();

/// A config every node can use: the given one when it names a secret_file;
/// otherwise a copy in a private folder (0700) that names a fresh random
/// secret (0600) there, so the nodes still authenticate each other. Returns
/// the path to pass to the nodes and, in `*note`, what was done.
absl::StatusOr<std::string> PrepareConfig(const std::string& config_path,
                                          const std::string& scratch_dir,
                                          std::string* note);

/// Starts every node, relays, forwards signals, waits. Returns node 0's
/// exit status (128 + signal if it was killed).
absl::StatusOr<int> Launch(const LaunchOptions& options);

}  // namespace ssihv::launch

#endif  // SSIHV_APPS_LAUNCH_LAUNCHER_H_
