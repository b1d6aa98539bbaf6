// libFuzzer target for the HTTP API's request handling (api.h), which sees
// whatever a client on the network sends as method, target and
// Authorization header. Besides ASan/UBSan's checks, every answer must be a
// real HTTP status with a body of the type it claims (JSON errors being
// {"error": "..."}), and no request without the token may act on the VM,
// nor, with the token required for all, read anything.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fake_vm_node.h"
#include "ssihv/control/api.h"

namespace ssihv::control {
namespace {

constexpr char kToken[] = "fuzz-token-0123";

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

const cluster::ClusterConfig& Config() {
  static const cluster::ClusterConfig config = [] {
    auto c = cluster::ParseClusterConfig(testing::kApiTestClusterJson);
    Check(c.ok());
    return *c;
  }();
  return config;
}

// Splits `s` at its first '\n' into *head and the rest.
std::string TakeLine(std::string* s) {
  const size_t nl = s->find('\n');
  std::string head = s->substr(0, nl);
  s->erase(0, nl == std::string::npos ? s->size() : nl + 1);
  return head;
}

void CheckResponse(const HttpResponse& r) {
  Check(r.status >= 100 && r.status <= 599);
  if (r.content_type != "application/json") return;
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  Check(!j.is_discarded());
  if (r.status >= 400) {
    Check(j.is_object() && j.contains("error") && j["error"].is_string());
  }
}

}  // namespace
}  // namespace ssihv::control

// Byte 0: bit 0 the token required for all endpoints, bit 1 the right
// token in the header (else the fuzzed one); then method, target and
// Authorization, one per line.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ssihv::control;
  if (size == 0) return 0;
  const bool required_for_all = (data[0] & 1) != 0;
  const bool right_token = (data[0] & 2) != 0;
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  HttpRequest request;
  request.method = TakeLine(&rest);
  request.target = TakeLine(&rest);
  request.authorization =
      right_token ? std::string("Bearer ") + kToken : std::move(rest);
  testing::FakeVmNode node(0, 2, 0, 2);
  const ApiHandler api(Config(), 0, &node, {kToken, required_for_all});
  const HttpResponse r = api.Handle(request);
  CheckResponse(r);
  // Without the token nothing acts, and, when the token is required for
  // all, nothing but the 401 comes back.
  if (request.authorization.find(kToken) == std::string::npos) {
    Check(node.actions().empty());
    if (required_for_all) Check(r.status == 401);
  }
  return 0;
}
