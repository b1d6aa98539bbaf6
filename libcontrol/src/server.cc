#include "ssihv/control/server.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/thread_name.h"

namespace ssihv::control {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

// How long a connection that is being refused (413, 400) is read and
// discarded before closing: closing with unread request bytes would make
// the kernel send a reset that can destroy the error response in flight.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 1 << 20;

}  // namespace

class Session;

struct HttpServer::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  // Session bookkeeping; declared before the io_context so it outlives the
  // sessions the io_context may still destroy.
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::atomic<int> open{0};
  std::atomic<bool> stopping{false};

  ServerOptions options;
  RequestHandler handler;
  net::io_context ioc;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  net::steady_timer accept_retry{acceptor.get_executor()};
  tcp::endpoint endpoint;
  std::vector<std::thread> threads;
  bool stopped = false;  // Stop() ran (guarded by the caller's thread)

  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void Register(Session* s, std::weak_ptr<Session> w);
  void Unregister(Session* s);
  std::vector<std::shared_ptr<Session>> Sessions();
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl* server, tcp::socket socket)
      : server_(server), stream_(std::move(socket)) {
    server_->open.fetch_add(1);
  }
  ~Session() { server_->Unregister(this); }

  void Start() {
    server_->Register(this, weak_from_this());
    ReadRequest();
  }
  /// From Stop(), on the session's strand.
  void CloseIfIdle() {
    if (idle_) stream_.close();
  }
  void ForceClose() { stream_.close(); }
  net::any_io_executor executor() { return stream_.get_executor(); }

 private:
  void ReadRequest() {
    if (server_->stopping.load()) return Close();
    parser_.emplace();
    parser_->header_limit(server_->options.max_header_bytes);
    parser_->body_limit(server_->options.max_body_bytes);
    if (buffer_.size() > 0) return ReadRest();  // a pipelined request
    // The idle timeout runs until the first byte; the request timeout from
    // there, so a slow client cannot stretch a request over idle periods.
    idle_ = true;
    stream_.expires_after(Chrono(server_->options.idle_timeout));
    stream_.async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->idle_ = false;
          if (ec) return self->Close();
          self->buffer_.commit(n);
          self->ReadRest();
        });
  }

  void ReadRest() {
    stream_.expires_after(Chrono(server_->options.request_timeout));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnRequest(ec);
                     });
  }

  void OnRequest(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      return Refuse(JsonError(
          413, absl::StrCat("request too large: at most ",
                            server_->options.max_header_bytes,
                            " bytes of headers and ",
                            server_->options.max_body_bytes, " of body")));
    }
    if (ec == beast::error::timeout || ec == http::error::end_of_stream ||
        ec == http::error::partial_message || ec == net::error::eof ||
        ec == net::error::operation_aborted ||
        ec == net::error::connection_reset) {
      return Close();  // slow, gone or half-open: nobody to answer
    }
    if (ec) {
      return Refuse(JsonError(
          400, absl::StrCat("malformed HTTP request: ", ec.message())));
    }
    const auto& req = parser_->get();
    HttpRequest request{std::string(req.method_string()),
                        std::string(req.target()),
                        std::string(req[http::field::authorization])};
    HttpResponse response;
    try {
      response = server_->handler(request);
    } catch (const std::exception& e) {
      // A bug in a handler must not take the VMM's server thread down.
      base::Log(base::LogLevel::kError, "api: ", request.method, " ",
                request.target, ": ", e.what());
      response = JsonError(500, absl::StrCat("internal error: ", e.what()));
    }
    const bool keep = req.keep_alive() && !server_->stopping.load();
    Write(response, req.version(), req.method() == http::verb::head, !keep,
          false);
  }

  // Answers and closes without reading on (lingering so the answer arrives).
  void Refuse(const HttpResponse& response) {
    Write(response, 11, false, true, true);
  }

  void Write(const HttpResponse& r, unsigned version, bool head, bool close,
             bool linger) {
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(http::field::server, "ssihv");
    res_.set(http::field::content_type, r.content_type);
    res_.set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : r.headers) res_.set(name, value);
    if (head) {
      res_.content_length(r.body.size());
    } else {
      res_.body() = r.body;
      res_.prepare_payload();
    }
    res_.keep_alive(!close);
    stream_.expires_after(Chrono(server_->options.write_timeout));
    http::async_write(stream_, res_,
                      [self = shared_from_this(), close, linger](
                          beast::error_code ec, size_t) {
                        if (ec) return self->Close();
                        if (linger) return self->Linger();
                        if (close) return self->Close();
                        self->ReadRequest();
                      });
  }

  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTime);
    DrainSome();
  }
  void DrainSome() {
    stream_.async_read_some(
        net::buffer(scratch_),
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->drained_ += n;
          if (ec || self->drained_ > kLingerBytes) return self->Close();
          self->DrainSome();
        });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  HttpServer::Impl* server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  bool idle_ = false;  // waiting for a request's first byte
  char scratch_[4096];
  size_t drained_ = 0;
};

void HttpServer::Impl::Register(Session* s, std::weak_ptr<Session> w) {
  std::lock_guard<std::mutex> lock(mu);
  sessions.emplace(s, std::move(w));
}

void HttpServer::Impl::Unregister(Session* s) {
  std::lock_guard<std::mutex> lock(mu);
  sessions.erase(s);
  open.fetch_sub(1);
  cv.notify_all();
}

std::vector<std::shared_ptr<Session>> HttpServer::Impl::Sessions() {
  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::shared_ptr<Session>> out;
  for (auto& [raw, weak] : sessions) {
    if (auto s = weak.lock()) out.push_back(std::move(s));
  }
  return out;
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        [this](beast::error_code ec, tcp::socket socket) {
                          OnAccept(ec, std::move(socket));
                        });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping.load() || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of file descriptors or memory: retrying at once would spin.
    base::Log(base::LogLevel::kWarning, "api: accept: ", ec.message());
    accept_retry.expires_after(std::chrono::milliseconds(100));
    accept_retry.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping.load()) Accept();
    });
    return;
  }
  if (open.load() >= options.max_connections) {
    beast::error_code ignored;
    socket.close(ignored);  // over the bound: refused at once
  } else {
    std::make_shared<Session>(this, std::move(socket))->Start();
  }
  Accept();
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Bind(
    const std::string& host, uint16_t port, ServerOptions options) {
  auto impl = std::make_shared<Impl>(std::move(options));
  const std::string where = absl::StrCat(
      host.find(':') == std::string::npos ? host : absl::StrCat("[", host, "]"),
      ":", port);
  beast::error_code ec;
  tcp::resolver resolver(impl->ioc);
  auto results = resolver.resolve(host, std::to_string(port),
                                  tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return absl::NotFoundError(absl::StrCat("resolve ", where, ": ",
                                            ec ? ec.message() : "no address"));
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  tcp::acceptor& a = impl->acceptor;
  auto fail = [&](const char* call) {
    return absl::UnavailableError(
        absl::StrCat(call, " ", where, ": ", ec.message()));
  };
  if (a.open(endpoint.protocol(), ec)) return fail("socket");
  if (a.set_option(net::socket_base::reuse_address(true), ec)) {
    return fail("setsockopt SO_REUSEADDR");
  }
  if (a.bind(endpoint, ec)) return fail("bind");
  if (a.listen(net::socket_base::max_listen_connections, ec)) {
    return fail("listen");
  }
  impl->endpoint = a.local_endpoint(ec);
  if (ec) return fail("getsockname");
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

absl::Status HttpServer::Serve(RequestHandler handler) {
  if (!impl_->threads.empty() || impl_->stopped) {
    return absl::FailedPreconditionError("HttpServer::Serve: called twice");
  }
  impl_->handler = std::move(handler);
  impl_->Accept();
  const int n = std::max(1, impl_->options.threads);
  for (int i = 0; i < n; ++i) {
    impl_->threads.emplace_back([impl = impl_.get()] {
      // Signals belong to the VMM's own threads, never to these.
      sigset_t all;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, nullptr);
      // Linux applies a nice value to the calling thread only.
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()),
                  impl->options.nice);
      impl->ioc.run();
    });
    base::NameThread(impl_->threads.back(), "ssihv-api");
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.stopping.store(true);
  net::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    s.accept_retry.cancel();
  });
  for (auto& session : s.Sessions()) {
    net::post(session->executor(), [session] { session->CloseIfIdle(); });
  }
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait_for(lock, Chrono(s.options.drain_timeout),
                  [&s] { return s.sessions.empty(); });
  }
  for (auto& session : s.Sessions()) {
    net::post(session->executor(), [session] { session->ForceClose(); });
  }
  // With the acceptor and every connection closed the io_context runs out
  // of work and each thread returns.
  for (std::thread& t : s.threads) t.join();
  s.threads.clear();
}

std::string HttpServer::address() const {
  const auto& e = impl_->endpoint;
  const std::string host = e.address().to_string();
  return absl::StrCat(e.address().is_v6() ? absl::StrCat("[", host, "]") : host,
                      ":", e.port());
}

uint16_t HttpServer::port() const { return impl_->endpoint.port(); }

bool HttpServer::loopback() const {
  return impl_->endpoint.address().is_loopback();
}

}  // namespace ssihv::control
