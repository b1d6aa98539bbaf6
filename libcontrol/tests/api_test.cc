// The API as a pure function: every endpoint, error code, token rule and
// JSON shape, with a fake VmNode and no sockets.
#include "ssihv/control/api.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "fake_vm_node.h"
#include "ssihv/control/prometheus.h"

namespace ssihv::control {
namespace {

using Json = nlohmann::json;
using testing::FakeVmNode;

constexpr char kToken[] = "t0k3n-for-tests";

cluster::ClusterConfig TestConfig() {
  auto c = cluster::ParseClusterConfig(testing::kApiTestClusterJson);
  REQUIRE(c.ok());
  return *c;
}

struct Fixture {
  explicit Fixture(uint32_t self = 0, ApiAuth auth = {kToken, false})
      : node(self, 2, self == 0 ? 0 : 2, self == 0 ? 2 : 1),
        api(TestConfig(), self, &node, std::move(auth)) {}
  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::string& authorization = "") {
    return api.Handle({method, target, authorization});
  }
  FakeVmNode node;
  ApiHandler api;
};

Json Body(const HttpResponse& r) {
  CAPTURE(r.body);
  Json j = Json::parse(r.body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// Every error: the status and a JSON object with exactly a string "error".
std::string ErrorOf(const HttpResponse& r, int status) {
  CHECK(r.status == status);
  CHECK(r.content_type == "application/json");
  Json j = Body(r);
  REQUIRE(j.is_object());
  REQUIRE(j.contains("error"));
  REQUIRE(j["error"].is_string());
  return j["error"].get<std::string>();
}

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

TEST_CASE("GET /health: 200 running, 503 with the status otherwise") {
  Fixture f;
  HttpResponse r = f.Call("GET", "/health");
  CHECK(r.status == 200);
  Json j = Body(r);
  CHECK(j == Json({{"status", "running"}, {"node", 0}, {"uptime_s", 12.5}}));
  for (auto [status, name] :
       {std::pair{NodeStatus::kStarting, "starting"},
        {NodeStatus::kWaitingForPeers, "waiting-for-peers"},
        {NodeStatus::kPaused, "paused"},
        {NodeStatus::kStopping, "stopping"},
        {NodeStatus::kFailed, "failed"}}) {
    f.node.SetHealth(
        {status, 3, status == NodeStatus::kFailed ? "node 1 lost" : ""});
    r = f.Call("GET", "/health");
    CHECK(r.status == 503);
    j = Body(r);
    CHECK(j["status"] == name);
    CHECK(j["node"] == 0);
    CHECK(j["uptime_s"] == 3.0);
    CHECK(j.contains("reason") == (status == NodeStatus::kFailed));
    CHECK_FALSE(j.contains("error"));
  }
}

TEST_CASE("GET /cluster: the canonical config and what this node knows") {
  Fixture f(1);
  f.node.SetPeers({{0, PeerLiveness::kLost, 7.5, "rdma"}});
  Json j = Body(f.Call("GET", "/cluster"));
  CHECK(j["node"] == 1);
  CHECK(j["config"] == Json::parse(cluster::ClusterConfigToJson(TestConfig())));
  REQUIRE(j["nodes"].size() == 2);
  CHECK(j["nodes"][0] == Json({{"id", 0},
                               {"self", false},
                               {"address", "127.0.0.1:7700"},
                               {"api_address", "127.0.0.1:8080"},
                               {"status", "lost"},
                               {"last_heard_s", 7.5},
                               {"transport", "rdma"}}));
  CHECK(j["nodes"][1]["self"] == true);
  CHECK(j["nodes"][1]["status"] == "alive");
  CHECK(j["nodes"][1]["api_address"] == "");

  // A peer never heard of: waiting, nulls.
  f.node.SetPeers({});
  j = Body(f.Call("GET", "/cluster"));
  CHECK(j["nodes"][0]["status"] == "waiting");
  CHECK(j["nodes"][0]["last_heard_s"].is_null());
  CHECK(j["nodes"][0]["transport"].is_null());
}

TEST_CASE("GET /vcpus: index, APIC ID, state, exits by reason") {
  Fixture f;
  Json j = Body(f.Call("GET", "/vcpus"));
  CHECK(j["node"] == 0);
  REQUIRE(j["vcpus"].size() == 2);
  CHECK(j["vcpus"][0] ==
        Json({{"index", 0},
              {"apic_id", 0},
              {"state", "running"},
              {"exits", {{"io", 10}, {"mmio", 5}, {"hlt", 2}}}}));
  CHECK(j["vcpus"][1]["state"] == "halted");
  CHECK(j["vcpus"][1]["exits"]["io"] == 20);
}

TEST_CASE("GET /pages/{gpa}: hex, 0x optional, home and local state") {
  Fixture f(1);
  f.node.SetPage(PageInfo{"modified", DirectoryInfo{"modified", 1, {}, false}});
  for (const char* gpa :
       {"0x100001234", "100001234", "0X100001234", "0x100001ABC"}) {
    CAPTURE(gpa);
    HttpResponse r = f.Call("GET", std::string("/pages/") + gpa);
    REQUIRE(r.status == 200);
    Json j = Body(r);
    CHECK(j["page"] == "0x100001000");
    CHECK(j["home"] == 1);
    CHECK(j["node"] == 1);
    CHECK(j["state"] == "modified");
    CHECK(j["directory"] == Json({{"state", "modified"},
                                  {"owner", 1},
                                  {"sharers", Json::array()},
                                  {"busy", false}}));
  }
  CHECK(Body(f.Call("GET", "/pages/0x100001abc"))["gpa"] == "0x100001abc");
  CHECK(f.node.pages_asked().back() == 0x100001000);

  // A page homed elsewhere: no directory even if the VmNode offered one.
  HttpResponse r = f.Call("GET", "/pages/0x2000");
  REQUIRE(r.status == 200);
  Json j = Body(r);
  CHECK(j["home"] == 0);
  CHECK_FALSE(j.contains("directory"));
  // Node 1's first range starts at 2 GiB.
  CHECK(Body(f.Call("GET", "/pages/0x80000000"))["home"] == 1);
  CHECK(Body(f.Call("GET", "/pages/0x7fffffff"))["home"] == 0);
}

TEST_CASE("GET /pages: shared page with sharers and no owner") {
  Fixture f;
  f.node.SetPage(
      PageInfo{"shared", DirectoryInfo{"shared", std::nullopt, {0, 1}, true}});
  Json j = Body(f.Call("GET", "/pages/0x1000"));
  CHECK(j["directory"]["owner"].is_null());
  CHECK(j["directory"]["sharers"] == Json({0, 1}));
  CHECK(j["directory"]["busy"] == true);
}

TEST_CASE("GET /pages: malformed GPA 400, not RAM 404, node not ready 503") {
  Fixture f;
  for (const char* bad :
       {"xyz", "", "0x", "-1", "0x1g", "12345678123456789", "+10", "0x 1"}) {
    CAPTURE(bad);
    CHECK(
        ErrorOf(f.Call("GET", std::string("/pages/") + bad), 400) ==
        std::string("bad GPA \"") + bad +
            "\": expected a hexadecimal guest-physical address (0x optional)");
  }
  CHECK(ErrorOf(f.Call("GET", "/pages/0xc0000000"), 404) ==
        "GPA 0xc0000000 is in the MMIO hole [0xc0000000, 0x100000000), not "
        "guest RAM");
  CHECK(ErrorOf(f.Call("GET", "/pages/0xfffff000"), 404)
            .starts_with("GPA 0xfffff000 is in the MMIO hole"));
  CHECK(ErrorOf(f.Call("GET", "/pages/0x140000000"), 404) ==
        "GPA 0x140000000 is beyond guest RAM, which ends at 0x140000000");
  CHECK(ErrorOf(f.Call("GET", "/pages/ffffffffffffffff"), 404)
            .starts_with("GPA 0xffffffffffffffff is beyond guest RAM"));
  CHECK(f.node.pages_asked().empty());  // never asked about non-RAM

  f.node.SetPage(absl::UnavailableError("guest memory is not set up yet"));
  CHECK(ErrorOf(f.Call("GET", "/pages/0x1000"), 503) ==
        "page 0x1000: guest memory is not set up yet");
  CHECK(ErrorOf(f.Call("GET", "/pages/0x1000/x"), 404) ==
        "no such endpoint: /pages/0x1000/x");
  CHECK(ErrorOf(f.Call("GET", "/pages"), 404) == "no such endpoint: /pages");
}

TEST_CASE("GET /pages/hot: the hottest pages homed here, limit checked") {
  Fixture f(1);
  f.node.SetHotPages({{0x80002000, 40, 3, 2, 1},
                      {0x80001000, 7, 0, 0, 0},
                      {0x80005000, 1, 1, 1, 1}});
  Json j = Body(f.Call("GET", "/pages/hot"));
  CHECK(j["node"] == 1);
  REQUIRE(j["pages"].size() == 3);
  CHECK(j["pages"][0] == Json({{"gpa", "0x80002000"},
                               {"reads", 40},
                               {"writes", 3},
                               {"invalidations", 2},
                               {"transfers", 1}}));
  CHECK(j["pages"][1]["gpa"] == "0x80001000");
  CHECK(Body(f.Call("GET", "/pages/hot?limit=1"))["pages"].size() == 1);
  CHECK(Body(f.Call("GET", "/pages/hot?limit=4096#x"))["pages"].size() == 3);
  for (const char* bad : {"0", "4097", "", "x", "-1", "2x"}) {
    CAPTURE(bad);
    CHECK(ErrorOf(f.Call("GET", std::string("/pages/hot?limit=") + bad), 400) ==
          std::string("bad limit \"") + bad + "\": expected 1 to 4096");
  }
  CHECK(ErrorOf(f.Call("GET", "/pages/hot?top=3"), 400) ==
        "unknown query parameter \"top\": /pages/hot takes limit=N");
  CHECK(f.Call("POST", "/pages/hot").status == 405);
  CHECK(f.node.pages_asked().empty());  // "hot" is not a GPA
}

TEST_CASE("GET /metrics: the text format with the node's families") {
  Fixture f;
  HttpResponse r = f.Call("GET", "/metrics");
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4; charset=utf-8");
  auto samples = ParseTextExposition(r.body);
  REQUIRE(samples.ok());
  bool vcpus = false;
  for (const ParsedSample& s : *samples) {
    CHECK(*s.LabelValue("node") == "0");
    if (s.name == "ssihv_vcpus") vcpus = s.value == 2;  // from the layout
  }
  CHECK(vcpus);
}

TEST_CASE("unknown path 404, wrong method 405 with Allow, query ignored") {
  Fixture f;
  CHECK(ErrorOf(f.Call("GET", "/nope"), 404) == "no such endpoint: /nope");
  CHECK(ErrorOf(f.Call("GET", "/"), 404) == "no such endpoint: /");
  CHECK(ErrorOf(f.Call("GET", "/health/"), 404) ==
        "no such endpoint: /health/");
  CHECK(f.Call("GET", "/health?verbose=1").status == 200);
  CHECK(f.Call("HEAD", "/health").status == 200);

  HttpResponse r = f.Call("POST", "/health", std::string("Bearer ") + kToken);
  CHECK(ErrorOf(r, 405) ==
        "method POST not allowed on /health (use GET or HEAD)");
  CHECK(HeaderOf(r, "Allow") == "GET, HEAD");
  r = f.Call("DELETE", "/pages/0x1000");
  CHECK(ErrorOf(r, 405) ==
        "method DELETE not allowed on /pages/0x1000 (use GET or HEAD)");
  for (const char* action : {"/vm/pause", "/vm/resume", "/vm/stop"}) {
    r = f.Call("GET", action);
    CHECK(ErrorOf(r, 405) ==
          std::string("method GET not allowed on ") + action + " (use POST)");
    CHECK(HeaderOf(r, "Allow") == "POST");
  }
  CHECK(f.node.actions().empty());
}

TEST_CASE("POST /vm/*: the token is required, compared exactly") {
  Fixture f;
  const std::string good = std::string("Bearer ") + kToken;
  for (const std::string& bad :
       {std::string(), std::string("Bearer"), std::string("Bearer "),
        std::string("Basic dXNlcjpwYXNz"), std::string(kToken),
        std::string("Bearer") + kToken}) {
    CAPTURE(bad);
    HttpResponse r = f.Call("POST", "/vm/stop", bad);
    CHECK(ErrorOf(r, 401).starts_with("missing token"));
    CHECK(HeaderOf(r, "WWW-Authenticate") == "Bearer realm=\"ssihv\"");
  }
  for (const std::string& wrong :
       {std::string("Bearer ") + kToken + "x", std::string("Bearer t0k3n"),
        std::string("Bearer T0K3N-FOR-TESTS"), std::string("Bearer x")}) {
    CAPTURE(wrong);
    HttpResponse r = f.Call("POST", "/vm/pause", wrong);
    CHECK(ErrorOf(r, 401) == "wrong token");
    CHECK(HeaderOf(r, "WWW-Authenticate") ==
          "Bearer realm=\"ssihv\", error=\"invalid_token\"");
  }
  CHECK(f.node.actions().empty());
  // The scheme is case-insensitive; spaces after it are allowed.
  CHECK(f.Call("POST", "/vm/pause", std::string("bearer ") + kToken).status ==
        200);
  CHECK(
      f.Call("POST", "/vm/resume", std::string("BEARER   ") + kToken).status ==
      200);
  CHECK(f.Call("POST", "/vm/stop", good).status == 200);
  CHECK(f.node.actions() == std::vector<VmAction>{VmAction::kPause,
                                                  VmAction::kResume,
                                                  VmAction::kStop});
}

TEST_CASE("POST /vm/*: per-node results; 502 when a node failed") {
  Fixture f;
  const std::string good = std::string("Bearer ") + kToken;
  f.node.SetActionResult(std::vector<NodeActionResult>{{0, absl::OkStatus()},
                                                       {1, absl::OkStatus()}});
  HttpResponse r = f.Call("POST", "/vm/pause", good);
  CHECK(r.status == 200);
  CHECK(Body(r) ==
        Json({{"action", "pause"},
              {"nodes",
               {{{"node", 0}, {"ok", true}}, {{"node", 1}, {"ok", true}}}}}));
  f.node.SetActionResult(std::vector<NodeActionResult>{
      {0, absl::OkStatus()},
      {1, absl::DeadlineExceededError("no answer in 5s")}});
  r = f.Call("POST", "/vm/stop", good);
  CHECK(ErrorOf(r, 502) == "stop failed on node 1: no answer in 5s");
  Json j = Body(r);
  CHECK(j["nodes"][1] ==
        Json({{"node", 1}, {"ok", false}, {"error", "no answer in 5s"}}));
  f.node.SetActionResult(
      absl::FailedPreconditionError("the guest is not running yet"));
  CHECK(ErrorOf(f.Call("POST", "/vm/pause", good), 409) ==
        "pause: the guest is not running yet");
  f.node.SetActionResult(absl::UnavailableError("stopping"));
  CHECK(ErrorOf(f.Call("POST", "/vm/resume", good), 503) == "resume: stopping");
}

TEST_CASE("no api_token_file: the actions are refused, reads are served") {
  Fixture f(0, ApiAuth{"", false});
  CHECK(f.Call("GET", "/health").status == 200);
  for (const char* a : {"", "Bearer ", "Bearer anything"}) {
    HttpResponse r = f.Call("POST", "/vm/stop", a);
    CHECK(ErrorOf(r, 401) ==
          "this node has no api_token_file in its cluster config: the control "
          "actions are disabled");
  }
  CHECK(f.node.actions().empty());
}

TEST_CASE(
    "non-loopback API: every endpoint needs the token, even unknown ones") {
  Fixture f(0, ApiAuth{kToken, true});
  const std::string good = std::string("Bearer ") + kToken;
  for (const char* path : {"/health", "/cluster", "/vcpus", "/pages/0x1000",
                           "/metrics", "/nope", "/pages/zz"}) {
    CAPTURE(path);
    CHECK(ErrorOf(f.Call("GET", path), 401).starts_with("missing token"));
    CHECK(ErrorOf(f.Call("GET", path, "Bearer wrong"), 401) == "wrong token");
  }
  CHECK(ErrorOf(f.Call("PUT", "/health"), 401).starts_with("missing token"));
  CHECK(f.Call("GET", "/health", good).status == 200);
  CHECK(f.Call("GET", "/cluster", good).status == 200);
  CHECK(f.Call("GET", "/vcpus", good).status == 200);
  CHECK(f.Call("GET", "/pages/0x1000", good).status == 200);
  CHECK(f.Call("GET", "/metrics", good).status == 200);
  CHECK(f.Call("GET", "/nope", good).status == 404);
  CHECK(f.Call("GET", "/pages/zz", good).status == 400);
  CHECK(f.Call("PUT", "/health", good).status == 405);
  CHECK(f.Call("POST", "/vm/stop", good).status == 200);
}

TEST_CASE("JSON bodies survive strings that are not UTF-8") {
  Fixture f;
  f.node.SetHealth({NodeStatus::kFailed, 1, std::string("bad \xff byte")});
  HttpResponse r = f.Call("GET", "/health");
  CHECK(r.status == 503);
  CHECK(Body(r)["reason"].get<std::string>().starts_with("bad "));
}

}  // namespace
}  // namespace ssihv::control
