// Command line of ssihvctl (docs/API.md, "ssihvctl").
#ifndef SSIHV_APPS_SSIHVCTL_OPTIONS_H_
#define SSIHV_APPS_SSIHVCTL_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ssihv::ctl {

struct CtlOptions {
  std::string config_path;
  /// Per request to a node.
  absl::Duration timeout = absl::Seconds(2);
  /// "status", "pages", "pause", "resume", "stop", "metrics", "top",
  /// "calibrate".
  std::string command;
  std::string gpa;  ///< pages
  /// status and top: the sampling interval of the rates.
  absl::Duration interval = absl::Seconds(1);
  int count = 0;                 ///< top: refreshes; 0 = until interrupted
  std::optional<uint32_t> node;  ///< metrics, calibrate, pages hot: only it
  // ---- calibrate ----
  std::string out;
  uint32_t pages = 1024;    ///< remote pages per pair of nodes
  uint32_t local_mib = 64;  ///< local latency/bandwidth buffer
  int threads = 4;          ///< concurrent faulting threads (bandwidth)
  absl::Duration calibrate_timeout = absl::Seconds(300);
  bool help = false;
};

/// Parses argv (argv[0] skipped). InvalidArgument names the argument.
absl::StatusOr<CtlOptions> ParseCtlArgs(const std::vector<std::string>& args);
std::string CtlUsage();

/// Exit statuses (docs/API.md).
enum CtlExit : int {
  kExitOk = 0,         ///< done; every node asked answered
  kExitNodeDown = 1,   ///< a node did not answer or an action failed on one
                       ///< (the output shows which); or no node answered
  kExitUsage = 2,      ///< bad command line
  kExitConfig = 3,     ///< bad config, token file, or no api_address at all
  kExitRefused = 4,    ///< the API refused the request (401, 400, 404, 409)
  kExitCalibrate = 5,  ///< calibration failed (no output written)
};

}  // namespace ssihv::ctl

#endif  // SSIHV_APPS_SSIHVCTL_OPTIONS_H_
