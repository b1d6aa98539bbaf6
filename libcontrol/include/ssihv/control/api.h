// The HTTP API of a node (docs/API.md) as a pure function: a request and
// the node's VmNode in, a response out. No sockets, threads or clocks here
// (the server in server.h feeds it), so every endpoint, error code and
// token rule is tested without a network.
#ifndef SSIHV_CONTROL_API_H_
#define SSIHV_CONTROL_API_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/control/vm_node.h"

namespace ssihv::control {

struct HttpRequest {
  std::string method;  ///< "GET", "POST", ... as received
  std::string target;  ///< origin form: "/pages/0x1000?x=1"
  /// The Authorization header; empty when absent.
  std::string authorization;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// Extra headers (Allow on 405, WWW-Authenticate on 401).
  std::vector<std::pair<std::string, std::string>> headers;
};

/// `{"error": message}` with `status` (every error of the API has this body).
HttpResponse JsonError(int status, absl::string_view message);

/// Who may do what.
struct ApiAuth {
  /// The bearer token (api_token_file's contents); empty when the config has
  /// no api_token_file: then the control actions are refused.
  std::string token;
  /// Every endpoint needs the token, not only the actions (the API listens
  /// on a non-loopback address).
  bool required_for_all = false;
};

/// Longest token accepted (it travels in a header).
inline constexpr size_t kMaxTokenBytes = 4096;

/// Reads api_token_file: refused (naming api_token_file and the path) when
/// missing, not a regular file, readable or writable by group or others,
/// empty, longer than kMaxTokenBytes, or holding anything but printable
/// ASCII without spaces. One trailing newline (or CRLF) is dropped.
absl::StatusOr<std::string> LoadApiToken(const std::string& path);

/// Compares a presented token with the expected one in time that depends
/// only on the expected token's length (no early exit on a mismatch).
bool TokenEquals(absl::string_view given, absl::string_view expected);

class ApiHandler {
 public:
  /// The API of node `self` of `config`; `node` must outlive the handler.
  ApiHandler(const cluster::ClusterConfig& config, uint32_t self, VmNode* node,
             ApiAuth auth);

  /// Answers one request. Thread-safe (as far as VmNode is).
  HttpResponse Handle(const HttpRequest& request) const;

 private:
  HttpResponse Health() const;
  HttpResponse Cluster() const;
  HttpResponse Vcpus() const;
  HttpResponse Page(absl::string_view gpa_text) const;
  HttpResponse HotPages(absl::string_view query) const;
  HttpResponse Metrics() const;
  HttpResponse Action(VmAction action) const;
  /// nullopt when `authorization` carries the token; else the 401.
  std::optional<HttpResponse> CheckToken(absl::string_view authorization) const;

  cluster::ClusterConfig config_;
  cluster::GuestLayout layout_;
  uint32_t self_;
  VmNode* node_;
  ApiAuth auth_;
};

}  // namespace ssihv::control

#endif  // SSIHV_CONTROL_API_H_
