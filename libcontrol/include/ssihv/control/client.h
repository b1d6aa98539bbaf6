// A small blocking HTTP/1.1 client for the API (ssihvctl): one request per
// connection, every step bounded by a deadline.
#ifndef SSIHV_CONTROL_CLIENT_H_
#define SSIHV_CONTROL_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ssihv::control {

struct ClientResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

/// Sends `method target` to `address` ("host:port", IPv6 as "[addr]:port")
/// with "Authorization: Bearer <token>" when `token` is not empty, and
/// returns the response whatever its status. Errors (Unavailable,
/// DeadlineExceeded after `timeout` for the whole exchange) name the
/// address and the step: "connect 127.0.0.1:8080: Connection refused".
absl::StatusOr<ClientResponse> HttpCall(const std::string& address,
                                        const std::string& method,
                                        const std::string& target,
                                        const std::string& token,
                                        absl::Duration timeout);

}  // namespace ssihv::control

#endif  // SSIHV_CONTROL_CLIENT_H_
