// The commands of ssihvctl that talk to the nodes' API (status, pages,
// pause/resume/stop, metrics, top). Output goes to the given streams so the
// tests run them in-process against real servers.
#ifndef SSIHV_APPS_SSIHVCTL_CTL_H_
#define SSIHV_APPS_SSIHVCTL_CTL_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "options.h"
#include "ssihv/cluster/config.h"
#include "ssihv/control/client.h"

namespace ssihv::ctl {

/// What every command needs: the config, the token, the options.
struct Context {
  cluster::ClusterConfig config;
  /// api_token_file's token; empty when the config has none or it could
  /// not be read (token_error says why).
  std::string token;
  std::string token_error;
  CtlOptions options;
};

/// One node's answer to one request.
struct Answer {
  uint32_t node = 0;
  std::string address;  ///< its api_address; empty: none configured
  absl::StatusOr<control::ClientResponse> response;
};

/// Sends `method target` to every node with an api_address (or only
/// `only`), all at once, each bounded by options.timeout. In node order.
std::vector<Answer> AskAll(const Context& ctx, const std::string& method,
                           const std::string& target,
                           std::optional<uint32_t> only = std::nullopt);

/// Loads the config and the token and runs options.command (not
/// calibrate). `stop` ends `top` early (Ctrl-C); `terminal` makes `top`
/// redraw in place. Returns the exit status (CtlExit).
int RunCommand(const CtlOptions& options, std::ostream& out, std::ostream& err,
               const std::atomic<bool>* stop = nullptr, bool terminal = false);

// The commands (ctl.cc, views.cc).
int Status(const Context& ctx, std::ostream& out, std::ostream& err);
int Top(const Context& ctx, std::ostream& out, std::ostream& err,
        const std::atomic<bool>* stop, bool terminal);
int Pages(const Context& ctx, std::ostream& out, std::ostream& err);
int Action(const Context& ctx, std::ostream& out, std::ostream& err);
int Metrics(const Context& ctx, std::ostream& out, std::ostream& err);

/// "connect 127.0.0.1:1: Connection refused", or "HTTP 503: <error>".
std::string Describe(const absl::StatusOr<control::ClientResponse>& r);

}  // namespace ssihv::ctl

#endif  // SSIHV_APPS_SSIHVCTL_CTL_H_
