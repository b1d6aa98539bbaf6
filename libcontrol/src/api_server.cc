// ApiServer: the composition a node process needs (config -> token ->
// listener -> handler), so that the VMM starts its API in one call.
#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/control/server.h"

namespace ssihv::control {

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(
    const cluster::ClusterConfig& config, uint32_t self, VmNode* node,
    ServerOptions options) {
  if (self >= config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("api: node ", self, " is not in the config (",
                     config.num_nodes(), " nodes)"));
  }
  const std::string& address = config.nodes[self].api_address;
  if (address.empty()) return std::unique_ptr<ApiServer>();
  const std::string key = absl::StrCat("nodes[", self, "].api_address");
  ApiAuth auth;
  if (!config.api_token_file.empty()) {
    SSIHV_ASSIGN_OR_RETURN(auth.token, LoadApiToken(config.api_token_file));
  }
  std::string host;
  uint16_t port = 0;
  SSIHV_RETURN_IF_ERROR(cluster::SplitAddress(key, address, &host, &port));
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Bind(host, port, options);
  if (!server.ok()) {
    return absl::Status(server.status().code(),
                        absl::StrCat(key, ": ", server.status().message()));
  }
  auth.required_for_all = !(*server)->loopback();
  if (auth.required_for_all && auth.token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, " ", address,
        " is not a loopback address, so every endpoint needs the token: set "
        "api_token_file in the cluster config"));
  }
  auto handler =
      std::make_unique<ApiHandler>(config, self, node, std::move(auth));
  ApiHandler* h = handler.get();
  SSIHV_RETURN_IF_ERROR((*server)->Serve(
      [h](const HttpRequest& request) { return h->Handle(request); }));
  return std::unique_ptr<ApiServer>(
      new ApiServer(std::move(handler), *std::move(server)));
}

}  // namespace ssihv::control
