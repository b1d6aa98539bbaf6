#include "ssihv/control/client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/config.h"

namespace ssihv::control {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// Largest response read (a /metrics of a big cluster is well below it).
constexpr size_t kMaxResponseBytes = 64 << 20;

absl::Status StepError(const char* step, absl::string_view address,
                       const beast::error_code& ec, absl::Duration timeout) {
  if (ec == beast::error::timeout) {
    return absl::DeadlineExceededError(
        absl::StrCat(step, " ", address, ": no answer within ",
                     absl::FormatDuration(timeout)));
  }
  return absl::UnavailableError(
      absl::StrCat(step, " ", address, ": ", ec.message()));
}

}  // namespace

absl::StatusOr<ClientResponse> HttpCall(const std::string& address,
                                        const std::string& method,
                                        const std::string& target,
                                        const std::string& token,
                                        absl::Duration timeout) {
  std::string host;
  uint16_t port = 0;
  SSIHV_RETURN_IF_ERROR(
      cluster::SplitAddress("api_address", address, &host, &port));
  net::io_context ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(host, std::to_string(port),
                                    tcp::resolver::numeric_service, ec);
  if (ec) return StepError("resolve", address, ec, timeout);

  // One deadline for the whole exchange: the stream's timer covers every
  // asynchronous step, and run() returns once the last one completes.
  beast::tcp_stream stream(ioc);
  stream.expires_after(absl::ToChronoNanoseconds(timeout));
  http::request<http::empty_body> req{http::string_to_verb(method), target, 11};
  if (req.method() == http::verb::unknown) req.method_string(method);
  req.set(http::field::host, address);
  req.set(http::field::user_agent, "ssihvctl");
  if (!token.empty()) {
    req.set(http::field::authorization, absl::StrCat("Bearer ", token));
  }
  req.keep_alive(false);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  parser.skip(req.method() == http::verb::head);
  const char* step = "connect";
  stream.async_connect(endpoints, [&](beast::error_code e, const auto&) {
    if ((ec = e)) return;
    step = "send to";
    http::async_write(stream, req, [&](beast::error_code e2, size_t) {
      if ((ec = e2)) return;
      step = "read from";
      http::async_read(stream, buffer, parser,
                       [&](beast::error_code e3, size_t) { ec = e3; });
    });
  });
  ioc.run();
  if (ec) return StepError(step, address, ec, timeout);
  ClientResponse out;
  const auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  out.content_type = std::string(res[http::field::content_type]);
  out.body = res.body();
  return out;
}

}  // namespace ssihv::control
