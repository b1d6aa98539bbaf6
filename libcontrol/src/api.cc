#include "ssihv/control/api.h"

#include <charconv>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "ssihv/control/metrics.h"
#include "ssihv/control/prometheus.h"

namespace ssihv::control {
namespace {

using Json = nlohmann::json;

// Strings from the VMM (exit reasons, error messages) are not trusted to be
// UTF-8: replace bad bytes rather than throw.
HttpResponse JsonResponse(int status, const Json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  return r;
}

std::string Hex(uint64_t x) { return absl::StrFormat("0x%x", x); }

// HTTP status for a VmNode error that stopped a request as a whole.
int HttpStatusOf(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    default:
      return 500;
  }
}

std::optional<uint64_t> ParseGpa(absl::string_view s) {
  if (absl::StartsWith(s, "0x") || absl::StartsWith(s, "0X"))
    s.remove_prefix(2);
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

HttpResponse MethodNotAllowed(absl::string_view method, absl::string_view path,
                              bool post) {
  HttpResponse r =
      JsonError(405, absl::StrCat("method ", method, " not allowed on ", path,
                                  post ? " (use POST)" : " (use GET or HEAD)"));
  r.headers.push_back({"Allow", post ? "POST" : "GET, HEAD"});
  return r;
}

}  // namespace

HttpResponse JsonError(int status, absl::string_view message) {
  return JsonResponse(status, {{"error", message}});
}

ApiHandler::ApiHandler(const cluster::ClusterConfig& config, uint32_t self,
                       VmNode* node, ApiAuth auth)
    : config_(config),
      layout_(config),
      self_(self),
      node_(node),
      auth_(std::move(auth)) {}

std::optional<HttpResponse> ApiHandler::CheckToken(
    absl::string_view authorization) const {
  std::string message;
  std::string challenge = "Bearer realm=\"ssihv\"";
  if (auth_.token.empty()) {
    message =
        "this node has no api_token_file in its cluster config: the control "
        "actions are disabled";
  } else {
    // RFC 6750: "Bearer" is case-insensitive, then one or more spaces.
    absl::string_view scheme = authorization.substr(0, 6);
    absl::string_view rest = authorization.substr(scheme.size());
    const bool bearer =
        scheme.size() == 6 &&
        absl::AsciiStrToLower(std::string(scheme)) == "bearer" &&
        absl::StartsWith(rest, " ");
    while (absl::StartsWith(rest, " ")) rest.remove_prefix(1);
    if (!bearer || rest.empty()) {
      message =
          "missing token: send the header \"Authorization: Bearer <token>\" "
          "with the contents of the config's api_token_file";
    } else if (!TokenEquals(rest, auth_.token)) {
      message = "wrong token";
      challenge += ", error=\"invalid_token\"";
    } else {
      return std::nullopt;
    }
  }
  HttpResponse r = JsonError(401, message);
  r.headers.push_back({"WWW-Authenticate", challenge});
  return r;
}

HttpResponse ApiHandler::Handle(const HttpRequest& request) const {
  absl::string_view path = request.target;
  path = path.substr(0, path.find_first_of("?#"));
  if (auth_.required_for_all) {
    if (auto denied = CheckToken(request.authorization)) return *denied;
  }
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  struct Route {
    absl::string_view path;
    std::optional<VmAction> action;  // a POST endpoint
    HttpResponse (ApiHandler::*get)() const;
  };
  static constexpr Route kRoutes[] = {
      {"/health", std::nullopt, &ApiHandler::Health},
      {"/cluster", std::nullopt, &ApiHandler::Cluster},
      {"/vcpus", std::nullopt, &ApiHandler::Vcpus},
      {"/metrics", std::nullopt, &ApiHandler::Metrics},
      {"/vm/pause", VmAction::kPause, nullptr},
      {"/vm/resume", VmAction::kResume, nullptr},
      {"/vm/stop", VmAction::kStop, nullptr},
  };
  for (const Route& r : kRoutes) {
    if (path != r.path) continue;
    if (r.action) {
      if (!post) return MethodNotAllowed(request.method, path, true);
      if (!auth_.required_for_all) {
        if (auto denied = CheckToken(request.authorization)) return *denied;
      }
      return Action(*r.action);
    }
    if (!get) return MethodNotAllowed(request.method, path, false);
    return (this->*r.get)();
  }
  if (path == "/pages/hot") {
    if (!get) return MethodNotAllowed(request.method, path, false);
    absl::string_view query = request.target;
    const size_t q = query.find('?');
    query = q == absl::string_view::npos ? "" : query.substr(q + 1);
    return HotPages(query.substr(0, query.find('#')));
  }
  constexpr absl::string_view kPages = "/pages/";
  if (absl::StartsWith(path, kPages) &&
      path.find('/', kPages.size()) == absl::string_view::npos) {
    if (!get) return MethodNotAllowed(request.method, path, false);
    return Page(path.substr(kPages.size()));
  }
  return JsonError(404, absl::StrCat("no such endpoint: ", path));
}

HttpResponse ApiHandler::Health() const {
  const NodeHealth h = node_->Health();
  Json body = {{"status", NodeStatusName(h.status)},
               {"node", self_},
               {"uptime_s", h.uptime_s}};
  if (!h.reason.empty()) body["reason"] = h.reason;
  return JsonResponse(h.status == NodeStatus::kRunning ? 200 : 503, body);
}

HttpResponse ApiHandler::Cluster() const {
  const std::vector<PeerInfo> peers = node_->Peers();
  Json nodes = Json::array();
  for (const cluster::NodeConfig& n : config_.nodes) {
    Json entry = {{"id", n.id},
                  {"self", n.id == self_},
                  {"address", n.address},
                  {"api_address", n.api_address}};
    if (n.id == self_) {
      entry["status"] = "alive";
      entry["last_heard_s"] = 0;
      entry["transport"] = nullptr;
    } else {
      // A peer the VmNode does not report has never been seen.
      entry["status"] = PeerLivenessName(PeerLiveness::kWaiting);
      entry["last_heard_s"] = nullptr;
      entry["transport"] = nullptr;
      for (const PeerInfo& p : peers) {
        if (p.node != n.id) continue;
        entry["status"] = PeerLivenessName(p.liveness);
        if (p.last_heard_s) entry["last_heard_s"] = *p.last_heard_s;
        if (!p.transport.empty()) entry["transport"] = p.transport;
      }
    }
    nodes.push_back(std::move(entry));
  }
  return JsonResponse(
      200, {{"node", self_},
            {"config", Json::parse(cluster::ClusterConfigToJson(config_))},
            {"nodes", std::move(nodes)}});
}

HttpResponse ApiHandler::Vcpus() const {
  Json vcpus = Json::array();
  for (const VcpuInfo& v : node_->Vcpus()) {
    Json exits = Json::object();
    for (const NamedCount& e : v.exits) exits[e.name] = e.value;
    vcpus.push_back({{"index", v.index},
                     {"apic_id", v.apic_id},
                     {"state", VcpuStateName(v.state)},
                     {"exits", std::move(exits)}});
  }
  return JsonResponse(200, {{"node", self_}, {"vcpus", std::move(vcpus)}});
}

HttpResponse ApiHandler::Page(absl::string_view gpa_text) const {
  std::optional<uint64_t> gpa = ParseGpa(gpa_text);
  if (!gpa) {
    return JsonError(400, absl::StrCat("bad GPA \"", gpa_text,
                                       "\": expected a hexadecimal guest-"
                                       "physical address (0x optional)"));
  }
  std::optional<uint32_t> home = layout_.HomeOf(*gpa);
  if (!home) {
    if (*gpa >= cluster::kMmioHoleStart && *gpa < cluster::kMmioHoleEnd) {
      return JsonError(
          404, absl::StrCat("GPA ", Hex(*gpa), " is in the MMIO hole [",
                            Hex(cluster::kMmioHoleStart), ", ",
                            Hex(cluster::kMmioHoleEnd), "), not guest RAM"));
    }
    return JsonError(404, absl::StrCat("GPA ", Hex(*gpa),
                                       " is beyond guest RAM, which ends at ",
                                       Hex(layout_.max_gpa())));
  }
  const uint64_t page = *gpa & ~(cluster::kPageSize - 1);
  absl::StatusOr<PageInfo> info = node_->Page(page);
  if (!info.ok()) {
    return JsonError(
        HttpStatusOf(info.status()),
        absl::StrCat("page ", Hex(page), ": ", info.status().message()));
  }
  Json body = {{"gpa", Hex(*gpa)},
               {"page", Hex(page)},
               {"home", *home},
               {"node", self_},
               {"state", info->state}};
  if (*home == self_ && info->directory) {
    const DirectoryInfo& d = *info->directory;
    body["directory"] = {{"state", d.state},
                         {"owner", d.owner ? Json(*d.owner) : Json(nullptr)},
                         {"sharers", d.sharers},
                         {"busy", d.busy}};
  }
  return JsonResponse(200, body);
}

HttpResponse ApiHandler::HotPages(absl::string_view query) const {
  constexpr uint64_t kMaxLimit = 4096;
  uint64_t limit = 16;
  for (absl::string_view param : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = param.find('=');
    const absl::string_view key = param.substr(0, eq);
    if (key != "limit") {
      return JsonError(400, absl::StrCat("unknown query parameter \"", key,
                                         "\": /pages/hot takes limit=N"));
    }
    const absl::string_view value =
        eq == absl::string_view::npos ? "" : param.substr(eq + 1);
    if (!absl::SimpleAtoi(value, &limit) || limit == 0 || limit > kMaxLimit) {
      return JsonError(400, absl::StrCat("bad limit \"", value,
                                         "\": expected 1 to ", kMaxLimit));
    }
  }
  Json pages = Json::array();
  for (const PageTraffic& p : node_->HotPages(limit)) {
    pages.push_back({{"gpa", Hex(p.gpa)},
                     {"reads", p.reads},
                     {"writes", p.writes},
                     {"invalidations", p.invalidations},
                     {"transfers", p.transfers}});
  }
  return JsonResponse(200, {{"node", self_}, {"pages", std::move(pages)}});
}

HttpResponse ApiHandler::Metrics() const {
  const std::vector<MetricFamily> families =
      MetricFamiliesOf(self_, layout_.VcpusOfNode(self_), node_->Health(),
                       node_->Peers(), node_->Metrics());
  absl::StatusOr<std::string> text = WriteTextExposition(families);
  if (!text.ok()) return JsonError(500, text.status().message());
  HttpResponse r;
  r.content_type = kPrometheusContentType;
  r.body = *std::move(text);
  return r;
}

HttpResponse ApiHandler::Action(VmAction action) const {
  const absl::string_view name = VmActionName(action);
  absl::StatusOr<std::vector<NodeActionResult>> results =
      node_->ClusterAction(action);
  if (!results.ok()) {
    return JsonError(HttpStatusOf(results.status()),
                     absl::StrCat(name, ": ", results.status().message()));
  }
  Json nodes = Json::array();
  std::string failed;
  for (const NodeActionResult& r : *results) {
    Json entry = {{"node", r.node}, {"ok", r.status.ok()}};
    if (!r.status.ok()) {
      entry["error"] = r.status.message();
      absl::StrAppend(&failed, failed.empty() ? "" : "; ", "node ", r.node,
                      ": ", r.status.message());
    }
    nodes.push_back(std::move(entry));
  }
  Json body = {{"action", name}, {"nodes", std::move(nodes)}};
  if (failed.empty()) return JsonResponse(200, body);
  // Some nodes did not apply it: a gateway-style failure, with the details.
  body["error"] = absl::StrCat(name, " failed on ", failed);
  return JsonResponse(502, body);
}

}  // namespace ssihv::control
