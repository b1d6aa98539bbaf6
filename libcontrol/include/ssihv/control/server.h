// The HTTP/1.1 server of the API (Boost.Beast): its own threads, bounded
// connections, bounded requests, timeouts, keep-alive. It hands complete
// requests to a handler (ApiHandler::Handle) and writes what it returns.
//
//   a connection beyond max_connections  closed at once
//   headers > max_header_bytes or body > max_body_bytes
//                                        413 {"error": ...}, then closed
//   a request that is not HTTP/1.x       400 {"error": ...}, then closed
//   no first byte within idle_timeout    closed (keep-alive idle, half-open)
//   first to last byte > request_timeout closed (a slow client)
//   response not taken within write_timeout
//                                        closed
// Each connection is served on one strand; a slow or stuck connection
// holds no thread, so others are served meanwhile. The handler runs on a
// server thread: a handler that blocks holds one of `threads`.
#ifndef SSIHV_CONTROL_SERVER_H_
#define SSIHV_CONTROL_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ssihv/cluster/config.h"
#include "ssihv/control/api.h"

namespace ssihv::control {

struct ServerOptions {
  /// Threads running the server (requests of different connections run in
  /// parallel; one blocked in ClusterAction leaves the others serving).
  int threads = 2;
  /// Connections open at once; more are closed as soon as accepted.
  int max_connections = 64;
  /// Request line plus headers, and body; beyond: 413.
  uint32_t max_header_bytes = 8 * 1024;
  uint32_t max_body_bytes = 4 * 1024;
  /// Waiting for the first byte of a request (a new connection or between
  /// keep-alive requests).
  absl::Duration idle_timeout = absl::Seconds(30);
  /// From a request's first byte to its last.
  absl::Duration request_timeout = absl::Seconds(5);
  /// For the client to take the response.
  absl::Duration write_timeout = absl::Seconds(10);
  /// How long Stop() lets responses being written finish.
  absl::Duration drain_timeout = absl::Seconds(2);
  /// Nice value of the server threads (Linux: per thread), so that they
  /// yield to vCPU and fault threads on a busy host.
  int nice = 10;
};

using RequestHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  /// Resolves `host` (an IP literal or a name; the first address is used)
  /// and listens on `port` (0: any free port). Nothing is served until
  /// Serve(). Errors name the address and the call.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Bind(
      const std::string& host, uint16_t port, ServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Starts the threads; `handler` answers every complete request.
  absl::Status Serve(RequestHandler handler);
  /// Stops accepting, closes idle connections, lets responses in flight
  /// finish (up to drain_timeout), closes the rest and joins the threads.
  /// Idempotent; the destructor calls it.
  void Stop();

  /// The bound address, "127.0.0.1:41234" / "[::1]:8080".
  std::string address() const;
  uint16_t port() const;
  /// Whether the bound address is a loopback address (127/8, ::1).
  bool loopback() const;

  struct Impl;  ///< opaque (Beast lives in server.cc only)

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

/// A node's API: the server of config.nodes[self].api_address serving an
/// ApiHandler over `node`. The token is read from config.api_token_file
/// (LoadApiToken's rules; an error refuses the start). When the bound
/// address is not loopback every endpoint requires the token, and a config
/// without api_token_file is refused. Returns nullptr when the node has no
/// api_address (no key = no server).
class ApiServer {
 public:
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(
      const cluster::ClusterConfig& config, uint32_t self, VmNode* node,
      ServerOptions options = {});
  /// Stops the server (see HttpServer::Stop).
  void Stop() { server_->Stop(); }
  const HttpServer& server() const { return *server_; }

 private:
  ApiServer(std::unique_ptr<ApiHandler> handler,
            std::unique_ptr<HttpServer> server)
      : handler_(std::move(handler)), server_(std::move(server)) {}
  std::unique_ptr<ApiHandler> handler_;
  std::unique_ptr<HttpServer> server_;  // stopped before handler_ goes
};

}  // namespace ssihv::control

#endif  // SSIHV_CONTROL_SERVER_H_
