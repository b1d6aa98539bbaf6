// The Beast server on 127.0.0.1 with real sockets: keep-alive, HEAD, size
// limits (413), malformed requests (400), slow and half-open clients
// dropped without blocking others, the connection bound, concurrency, a
// blocked handler, Stop(), and ApiServer's start-up rules.
#include "ssihv/control/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_vm_node.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/control/client.h"
#include "ssihv/testing/host.h"

namespace ssihv::control {
namespace {

using Clock = std::chrono::steady_clock;
using testing::FakeVmNode;

constexpr char kToken[] = "server-test-token";

cluster::ClusterConfig TwoNodes(const std::string& api0 = "",
                                const std::string& token_file = "") {
  std::string json = R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 64)";
  if (!api0.empty()) json += R"(, "api_address": ")" + api0 + "\"";
  json += R"(}, {"id": 1, "vcpus": 1, "memory_mib": 64}])";
  if (!token_file.empty())
    json += R"(, "api_token_file": ")" + token_file + "\"";
  auto c = cluster::ParseClusterConfig(json + "}");
  REQUIRE(c.ok());
  return *c;
}

// A server on 127.0.0.1:<any> serving ApiHandler over a fake node.
struct Served {
  explicit Served(ServerOptions options = {}, ApiAuth auth = {kToken, false})
      : node(0, 2, 0, 1), api(TwoNodes(), 0, &node, std::move(auth)) {
    auto s = HttpServer::Bind("127.0.0.1", 0, options);
    REQUIRE(s.ok());
    server = *std::move(s);
    REQUIRE(
        server->Serve([this](const HttpRequest& r) { return api.Handle(r); })
            .ok());
  }
  absl::StatusOr<ClientResponse> Get(const std::string& target,
                                     const std::string& token = "") {
    return HttpCall(server->address(), "GET", target, token, absl::Seconds(10));
  }
  /// POSTs `target` with the token on another thread; join it to read *out.
  std::thread PostInBackground(const std::string& target,
                               absl::StatusOr<ClientResponse>* out) {
    return std::thread([this, target, out] {
      *out = HttpCall(server->address(), "POST", target, kToken,
                      absl::Seconds(30));
    });
  }
  FakeVmNode node;
  ApiHandler api;
  std::unique_ptr<HttpServer> server;
};

base::UniqueFd Connect(uint16_t port) {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  return fd;
}

void Send(int fd, const std::string& bytes) {
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(bytes.size()));
}

// Reads until the server closes the connection (or `limit` passes: then
// `closed` is false). Returns what arrived.
struct ReadResult {
  std::string data;
  bool closed = false;
};
ReadResult ReadUntilClosed(int fd, std::chrono::milliseconds limit) {
  ReadResult r;
  const auto deadline = Clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) return r;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return r;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      r.closed = true;
      return r;
    }
    r.data.append(buf, static_cast<size_t>(n));
  }
}

// Reads one response with a Content-Length body (keep-alive).
std::string ReadOneResponse(int fd) {
  std::string data;
  for (;;) {
    size_t end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t cl = data.find("Content-Length: ");
      REQUIRE(cl != std::string::npos);
      size_t len = std::stoul(data.substr(cl + 16));
      if (data.size() >= end + 4 + len) return data.substr(0, end + 4 + len);
    }
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    REQUIRE(n > 0);
    data.append(buf, static_cast<size_t>(n));
  }
}

std::string StatusLine(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

std::string JsonError(const std::string& response) {
  auto j =
      nlohmann::json::parse(response.substr(response.find("\r\n\r\n") + 4));
  return j["error"].get<std::string>();
}

TEST_CASE("every endpoint over a socket; keep-alive serves several requests") {
  Served s;
  CHECK(s.server->loopback());
  CHECK(s.server->address() == "127.0.0.1:" + std::to_string(s.server->port()));
  for (const char* path :
       {"/health", "/cluster", "/vcpus", "/pages/0x1000", "/metrics"}) {
    auto r = s.Get(path);
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
  auto metrics = s.Get("/metrics");
  CHECK(metrics->content_type == "text/plain; version=0.0.4; charset=utf-8");
  auto stop = HttpCall(s.server->address(), "POST", "/vm/stop", kToken,
                       absl::Seconds(10));
  REQUIRE(stop.ok());
  CHECK(stop->status == 200);
  auto refused =
      HttpCall(s.server->address(), "POST", "/vm/stop", "", absl::Seconds(10));
  CHECK(refused->status == 401);

  base::UniqueFd fd = Connect(s.server->port());
  Send(fd.get(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = ReadOneResponse(fd.get());
  CHECK(StatusLine(first) == "HTTP/1.1 503 Service Unavailable");  // stopping
  Send(fd.get(), "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string second = ReadOneResponse(fd.get());
  CHECK(StatusLine(second) == "HTTP/1.1 404 Not Found");
  CHECK(JsonError(second) == "no such endpoint: /nope");
  // Two pipelined requests in one write: both answered, in order.
  Send(fd.get(),
       "GET /vcpus HTTP/1.1\r\nHost: x\r\n\r\nGET /cluster HTTP/1.1\r\nHost: "
       "x\r\n\r\n");
  CHECK(ReadOneResponse(fd.get()).find("\"vcpus\"") != std::string::npos);
  CHECK(ReadOneResponse(fd.get()).find("\"config\"") != std::string::npos);
  // Connection: close is honoured.
  Send(fd.get(),
       "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ReadResult last = ReadUntilClosed(fd.get(), std::chrono::seconds(10));
  CHECK(last.closed);
  CHECK(last.data.find("Connection: close") != std::string::npos);
}

TEST_CASE("HEAD: the headers of GET, no body") {
  Served s;
  base::UniqueFd fd = Connect(s.server->port());
  Send(fd.get(),
       "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ReadResult r = ReadUntilClosed(fd.get(), std::chrono::seconds(10));
  REQUIRE(r.closed);
  CHECK(StatusLine(r.data) == "HTTP/1.1 200 OK");
  CHECK(r.data.find("Content-Length: ") != std::string::npos);
  CHECK(r.data.ends_with("\r\n\r\n"));
}

TEST_CASE("oversized headers or body: 413 with a JSON error") {
  ServerOptions o;
  o.max_header_bytes = 1024;
  o.max_body_bytes = 64;
  Served s(o);
  {
    base::UniqueFd fd = Connect(s.server->port());
    Send(fd.get(), "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " +
                       std::string(4000, 'a') + "\r\n\r\n");
    ReadResult r = ReadUntilClosed(fd.get(), std::chrono::seconds(10));
    CHECK(r.closed);
    CHECK(StatusLine(r.data) == "HTTP/1.1 413 Payload Too Large");
    CHECK(JsonError(r.data) ==
          "request too large: at most 1024 bytes of headers and 64 of body");
  }
  {
    base::UniqueFd fd = Connect(s.server->port());
    Send(fd.get(),
         "POST /vm/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
             std::string(2000, 'b'));
    ReadResult r = ReadUntilClosed(fd.get(), std::chrono::seconds(10));
    CHECK(r.closed);
    CHECK(StatusLine(r.data) == "HTTP/1.1 413 Payload Too Large");
  }
  CHECK(s.node.actions().empty());
  CHECK(s.Get("/health")->status == 200);  // the server is fine
}

TEST_CASE("a request that is not HTTP: 400 with a JSON error") {
  Served s;
  base::UniqueFd fd = Connect(s.server->port());
  Send(fd.get(), "HELLO\x01 there\r\n\r\n");
  ReadResult r = ReadUntilClosed(fd.get(), std::chrono::seconds(10));
  CHECK(r.closed);
  CHECK(StatusLine(r.data) == "HTTP/1.1 400 Bad Request");
  CHECK(JsonError(r.data).starts_with("malformed HTTP request: "));
}

TEST_CASE(
    "a slow client is dropped after request_timeout, others served meanwhile") {
  ServerOptions o;
  o.threads = 1;  // a slow client must not need a thread of its own
  o.request_timeout = absl::Milliseconds(300);
  Served s(o);
  base::UniqueFd slow = Connect(s.server->port());
  Send(slow.get(), "GET /health HTTP/1.1\r\nHo");  // ... and nothing more
  const auto start = Clock::now();
  for (int i = 0; i < 5; ++i) CHECK(s.Get("/health")->status == 200);
  ReadResult r = ReadUntilClosed(slow.get(), std::chrono::seconds(10));
  CHECK(r.closed);
  CHECK(r.data.empty());  // dropped, not answered
  CHECK(Clock::now() - start >= std::chrono::milliseconds(250));
}

TEST_CASE("a client trickling bytes cannot stretch its request") {
  ServerOptions o;
  o.request_timeout = absl::Milliseconds(400);
  o.idle_timeout = absl::Seconds(30);
  Served s(o);
  base::UniqueFd fd = Connect(s.server->port());
  const auto start = Clock::now();
  // One byte every 100 ms would take 2 s for the request line alone.
  bool closed = false;
  for (char c : std::string("GET /health HTTP/1.1\r\n")) {
    if (::send(fd.get(), &c, 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    if (ReadUntilClosed(fd.get(), std::chrono::milliseconds(100)).closed) {
      closed = true;
      break;
    }
  }
  CHECK(closed);
  CHECK(Clock::now() - start < std::chrono::milliseconds(2000));
}

TEST_CASE("an idle or half-open connection is closed after idle_timeout") {
  ServerOptions o;
  o.idle_timeout = absl::Milliseconds(300);
  Served s(o);
  base::UniqueFd idle = Connect(s.server->port());
  base::UniqueFd half = Connect(s.server->port());
  ::shutdown(half.get(), SHUT_WR);  // half-open: sends nothing, ever
  CHECK(ReadUntilClosed(idle.get(), std::chrono::seconds(10)).closed);
  CHECK(ReadUntilClosed(half.get(), std::chrono::seconds(10)).closed);
  // After a keep-alive response, the same idle rule applies.
  base::UniqueFd fd = Connect(s.server->port());
  Send(fd.get(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadOneResponse(fd.get());
  CHECK(ReadUntilClosed(fd.get(), std::chrono::seconds(10)).closed);
}

TEST_CASE("connections beyond max_connections are closed at once") {
  ServerOptions o;
  o.max_connections = 2;
  Served s(o);
  base::UniqueFd a = Connect(s.server->port());
  base::UniqueFd b = Connect(s.server->port());
  // Make sure both are accepted (served) before the third arrives.
  for (int fd : {a.get(), b.get()}) {
    Send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ReadOneResponse(fd);
  }
  base::UniqueFd c = Connect(s.server->port());
  Send(c.get(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResult r = ReadUntilClosed(c.get(), std::chrono::seconds(10));
  CHECK(r.closed);
  CHECK(r.data.empty());
  a.Reset();  // a slot frees once the server sees the close
  absl::StatusOr<ClientResponse> ok;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  do {
    ok = s.Get("/health");
  } while (!ok.ok() && Clock::now() < deadline);
  REQUIRE(ok.ok());
  CHECK(ok->status == 200);
}

TEST_CASE("concurrent clients all get whole answers") {
  Served s;
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto r = s.Get(t % 2 ? "/metrics" : "/cluster");
        if (!r.ok() || r->status != 200) continue;
        if (t % 2 ? ParseTextExposition(r->body).ok()
                  : !nlohmann::json::parse(r->body, nullptr, false)
                         .is_discarded()) {
          ++good;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  CHECK(good == 8 * 25);
}

TEST_CASE(
    "a handler blocked in ClusterAction leaves the other thread serving") {
  Served s;  // 2 threads
  s.node.BlockActions();
  absl::StatusOr<ClientResponse> pause;
  std::thread t = s.PostInBackground("/vm/pause", &pause);
  s.node.WaitForActions(1);
  auto health = s.Get("/health");
  REQUIRE(health.ok());
  CHECK(health->status == 200);
  s.node.Release();
  t.join();
  REQUIRE(pause.ok());
  CHECK(pause->status == 200);
  CHECK(s.Get("/health")->status == 503);  // paused
}

TEST_CASE("Stop: idle keep-alive connections do not hold it; then refused") {
  ServerOptions o;
  o.drain_timeout = absl::Seconds(60);
  Served s(o);
  base::UniqueFd fd = Connect(s.server->port());
  Send(fd.get(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadOneResponse(fd.get());
  const std::string address = s.server->address();
  const auto start = Clock::now();
  s.server->Stop();
  CHECK(Clock::now() - start < std::chrono::seconds(30));
  CHECK(ReadUntilClosed(fd.get(), std::chrono::seconds(10)).closed);
  auto r = HttpCall(address, "GET", "/health", "", absl::Seconds(5));
  CHECK_FALSE(r.ok());
  s.server->Stop();  // idempotent
}

TEST_CASE("Stop lets a response in flight finish") {
  Served s;
  s.node.BlockActions();
  absl::StatusOr<ClientResponse> stop;
  std::thread t = s.PostInBackground("/vm/stop", &stop);
  s.node.WaitForActions(1);
  const std::string address = s.server->address();
  std::thread stopper([&] { s.server->Stop(); });
  // Stop has begun once new connections are refused; the POST is still
  // held in the handler.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (HttpCall(address, "GET", "/health", "", absl::Seconds(1)).ok()) {
    REQUIRE(Clock::now() < deadline);
  }
  s.node.Release();
  stopper.join();
  t.join();
  REQUIRE(stop.ok());
  CHECK(stop->status == 200);
}

TEST_CASE("Bind: a port in use is an error naming the address") {
  Served s;
  auto again = HttpServer::Bind("127.0.0.1", s.server->port());
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().message() ==
        "bind 127.0.0.1:" + std::to_string(s.server->port()) +
            ": Address already in use");
  auto bad = HttpServer::Bind("no-such-host.invalid", 80);
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message())
            .starts_with("resolve no-such-host.invalid:80: "));
}

uint16_t FreePort() {
  const uint16_t port = ssihv::testing::FreeLoopbackPort();
  REQUIRE(port != 0);
  return port;
}

std::string TokenFile(mode_t mode) {
  char tmpl[] = "/tmp/ssihv_api_token_XXXXXX";
  int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  REQUIRE(base::WriteFileAtomically(tmpl, std::string(kToken) + "\n").ok());
  REQUIRE(::chmod(tmpl, mode) == 0);
  return tmpl;
}

TEST_CASE("ApiServer: no api_address, no server") {
  FakeVmNode node(0, 2, 0, 1);
  auto s = ApiServer::Start(TwoNodes(), 0, &node);
  REQUIRE(s.ok());
  CHECK(*s == nullptr);
  auto bad = ApiServer::Start(TwoNodes(), 2, &node);
  CHECK(bad.status().message() == "api: node 2 is not in the config (2 nodes)");
}

TEST_CASE("ApiServer on loopback: reads open, actions need the token") {
  FakeVmNode node(0, 2, 0, 1);
  const std::string token = TokenFile(0600);
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  auto s = ApiServer::Start(TwoNodes(address, token), 0, &node);
  REQUIRE(s.ok());
  REQUIRE(*s != nullptr);
  CHECK((*s)->server().address() == address);
  CHECK(HttpCall(address, "GET", "/health", "", absl::Seconds(10))->status ==
        200);
  CHECK(HttpCall(address, "POST", "/vm/pause", "", absl::Seconds(10))->status ==
        401);
  CHECK(HttpCall(address, "POST", "/vm/pause", kToken, absl::Seconds(10))
            ->status == 200);
  auto cluster = HttpCall(address, "GET", "/cluster", "", absl::Seconds(10));
  CHECK(nlohmann::json::parse(cluster->body)["nodes"][0]["api_address"] ==
        address);
  (*s)->Stop();
  ::unlink(token.c_str());
}

TEST_CASE(
    "ApiServer refuses a token file others can read, and no token off "
    "loopback") {
  FakeVmNode node(0, 2, 0, 1);
  const std::string open = TokenFile(0644);
  auto s = ApiServer::Start(
      TwoNodes("127.0.0.1:" + std::to_string(FreePort()), open), 0, &node);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(std::string(s.status().message()).find("run chmod 600") !=
        std::string::npos);
  ::unlink(open.c_str());

  const std::string any = "0.0.0.0:" + std::to_string(FreePort());
  s = ApiServer::Start(TwoNodes(any), 0, &node);
  REQUIRE_FALSE(s.ok());
  CHECK(
      s.status().message() ==
      "nodes[0].api_address " + any +
          " is not a loopback address, so every endpoint needs the token: set "
          "api_token_file in the cluster config");
}

TEST_CASE("ApiServer off loopback: every endpoint needs the token") {
  FakeVmNode node(0, 2, 0, 1);
  const std::string token = TokenFile(0600);
  const uint16_t port = FreePort();
  auto s = ApiServer::Start(TwoNodes("0.0.0.0:" + std::to_string(port), token),
                            0, &node);
  REQUIRE(s.ok());
  CHECK_FALSE((*s)->server().loopback());
  const std::string via = "127.0.0.1:" + std::to_string(port);
  for (const char* path : {"/health", "/metrics", "/cluster"}) {
    CHECK(HttpCall(via, "GET", path, "", absl::Seconds(10))->status == 401);
    CHECK(HttpCall(via, "GET", path, kToken, absl::Seconds(10))->status == 200);
  }
  ::unlink(token.c_str());
}

}  // namespace
}  // namespace ssihv::control
