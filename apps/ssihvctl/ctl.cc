#include "ctl.h"

#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ssihv/control/api.h"
#include "ssihv/control/prometheus.h"

namespace ssihv::ctl {
namespace {

using Json = nlohmann::json;

// The "error" of a JSON error body, else the body itself (trimmed).
std::string ErrorText(const control::ClientResponse& r) {
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    return j["error"].get<std::string>();
  }
  std::string body = r.body.substr(0, 200);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) {
    body.pop_back();
  }
  return body;
}

// A node answered `status` with an error the API gives to every node alike
// (a bad GPA, a refused token): the request, not the node, is at fault.
bool IsRefusal(int status) {
  return status == 400 || status == 401 || status == 404 || status == 405 ||
         status == 409 || status == 413;
}

}  // namespace

std::string Describe(const absl::StatusOr<control::ClientResponse>& r) {
  if (!r.ok()) return std::string(r.status().message());
  return absl::StrCat("HTTP ", r->status, ": ", ErrorText(*r));
}

std::vector<Answer> AskAll(const Context& ctx, const std::string& method,
                           const std::string& target,
                           std::optional<uint32_t> only) {
  std::vector<Answer> answers;
  for (const cluster::NodeConfig& n : ctx.config.nodes) {
    if (only && n.id != *only) continue;
    answers.push_back({n.id, n.api_address,
                       absl::FailedPreconditionError(
                           "no api_address in the config: runs no API")});
  }
  std::vector<std::thread> threads;
  for (Answer& a : answers) {
    if (a.address.empty()) continue;
    threads.emplace_back([&ctx, &a, &method, &target] {
      a.response = control::HttpCall(a.address, method, target, ctx.token,
                                     ctx.options.timeout);
    });
  }
  for (std::thread& t : threads) t.join();
  return answers;
}

int Pages(const Context& ctx, std::ostream& out, std::ostream& err) {
  std::vector<Answer> answers = AskAll(ctx, "GET", "/pages/" + ctx.options.gpa);
  int answered = 0;
  std::string header;
  std::string rows;
  for (const Answer& a : answers) {
    if (a.response.ok() && IsRefusal(a.response->status)) {
      err << "ssihvctl: pages " << ctx.options.gpa << ": "
          << ErrorText(*a.response) << "\n";
      return kExitRefused;  // every node would say the same
    }
    Json j = a.response.ok() && a.response->status == 200
                 ? Json::parse(a.response->body, nullptr, false)
                 : Json();
    if (!j.is_object()) {
      absl::StrAppendFormat(&rows, "%-5u %s\n", a.node, Describe(a.response));
      continue;
    }
    ++answered;
    if (header.empty()) {
      header = absl::StrFormat("GPA %s (page %s), home node %d\n%-5s %-9s %s\n",
                               j.value("gpa", ""), j.value("page", ""),
                               j.value("home", -1), "NODE", "STATE",
                               "DIRECTORY (home only)");
    }
    std::string dir;
    if (j.contains("directory")) {
      const Json& d = j["directory"];
      std::string sharers;
      for (const Json& s : d["sharers"]) {
        absl::StrAppend(&sharers, sharers.empty() ? "" : ",", s.get<int>());
      }
      dir = absl::StrFormat(
          "%s, owner %s, sharers %s%s", d.value("state", "?"),
          d["owner"].is_null() ? "-" : std::to_string(d["owner"].get<int>()),
          sharers.empty() ? "-" : sharers,
          d.value("busy", false) ? ", busy" : "");
    }
    absl::StrAppend(
        &rows, dir.empty()
                   ? absl::StrFormat("%-5u %s\n", a.node, j.value("state", "?"))
                   : absl::StrFormat("%-5u %-9s %s\n", a.node,
                                     j.value("state", "?"), dir));
  }
  out << (header.empty() ? absl::StrFormat("%-5s %s\n", "NODE", "ANSWER")
                         : header)
      << rows;
  // A node that does not answer is shown, not an error of the command.
  return answered > 0 ? kExitOk : kExitNodeDown;
}

// `pages hot`: each node's hottest pages homed there, one row per page.
int HotPages(const Context& ctx, std::ostream& out, std::ostream& err) {
  std::vector<Answer> answers =
      AskAll(ctx, "GET", "/pages/hot?limit=16", ctx.options.node);
  int answered = 0;
  std::string rows;
  for (const Answer& a : answers) {
    Json j = a.response.ok() && a.response->status == 200
                 ? Json::parse(a.response->body, nullptr, false)
                 : Json();
    if (!j.is_object() || !j["pages"].is_array()) {
      err << "ssihvctl: pages hot: node " << a.node << ": "
          << Describe(a.response) << "\n";
      continue;
    }
    ++answered;
    for (const Json& p : j["pages"]) {
      absl::StrAppendFormat(&rows, "%-5u %-14s %8d %8d %8d %8d\n", a.node,
                            p.value("gpa", "?"), p.value("reads", 0),
                            p.value("writes", 0), p.value("invalidations", 0),
                            p.value("transfers", 0));
    }
  }
  out << absl::StrFormat("%-5s %-14s %8s %8s %8s %8s\n", "HOME", "GPA", "READS",
                         "WRITES", "INVAL", "MOVED")
      << rows;
  return answered > 0 ? kExitOk : kExitNodeDown;
}

int Action(const Context& ctx, std::ostream& out, std::ostream& err) {
  const std::string& action = ctx.options.command;
  if (ctx.token.empty()) {
    err << "ssihvctl: " << action << ": "
        << (ctx.token_error.empty()
                ? "the config has no api_token_file: the nodes refuse "
                  "control actions without a token"
                : ctx.token_error)
        << "\n";
    return kExitConfig;
  }
  // Any node forwards the action to all: ask them in turn until one answers.
  std::string unreachable;
  for (const cluster::NodeConfig& n : ctx.config.nodes) {
    if (n.api_address.empty()) continue;
    absl::StatusOr<control::ClientResponse> r = control::HttpCall(
        n.api_address, "POST", "/vm/" + action, ctx.token, ctx.options.timeout);
    if (!r.ok()) {
      absl::StrAppend(&unreachable, "  node ", n.id, ": ", r.status().message(),
                      "\n");
      continue;
    }
    Json j = Json::parse(r->body, nullptr, false);
    if (r->status != 200 && r->status != 502) {
      err << "ssihvctl: " << action << " (node " << n.id << "): " << Describe(r)
          << "\n";
      return r->status >= 500 ? kExitNodeDown : kExitRefused;
    }
    out << action << " (through node " << n.id << "):\n";
    if (j.is_object() && j.contains("nodes")) {
      for (const Json& e : j["nodes"]) {
        out << "  node " << e.value("node", -1) << ": "
            << (e.value("ok", false) ? "ok" : "FAILED: " + e.value("error", ""))
            << "\n";
      }
    }
    return r->status == 200 ? kExitOk : kExitNodeDown;
  }
  err << "ssihvctl: " << action << ": no node answered\n" << unreachable;
  return kExitNodeDown;
}

int Metrics(const Context& ctx, std::ostream& out, std::ostream& err) {
  std::vector<Answer> answers =
      AskAll(ctx, "GET", "/metrics", ctx.options.node);
  std::vector<std::string> texts;
  for (const Answer& a : answers) {
    if (a.response.ok() && a.response->status == 200) {
      texts.push_back(a.response->body);
    } else {
      err << "ssihvctl: metrics: node " << a.node << ": "
          << Describe(a.response) << "\n";
    }
  }
  out << control::MergeExpositions(texts);
  return texts.empty() ? kExitNodeDown : kExitOk;
}

int RunCommand(const CtlOptions& options, std::ostream& out, std::ostream& err,
               const std::atomic<bool>* stop, bool terminal) {
  absl::StatusOr<cluster::ClusterConfig> config =
      cluster::LoadClusterConfig(options.config_path);
  if (!config.ok()) {
    err << "ssihvctl: --config: " << config.status().message() << "\n";
    return kExitConfig;
  }
  Context ctx{*std::move(config), "", "", options};
  bool any_api = false;
  for (const cluster::NodeConfig& n : ctx.config.nodes) {
    any_api = any_api || !n.api_address.empty();
  }
  if (!any_api) {
    err << "ssihvctl: " << options.config_path
        << ": no node has an api_address (docs/CLUSTER_CONFIG.md)\n";
    return kExitConfig;
  }
  if (options.node && *options.node >= ctx.config.num_nodes()) {
    err << "ssihvctl: --node " << *options.node << ": the config has "
        << ctx.config.num_nodes() << " nodes\n";
    return kExitUsage;
  }
  if (!ctx.config.api_token_file.empty()) {
    absl::StatusOr<std::string> token =
        control::LoadApiToken(ctx.config.api_token_file);
    if (token.ok()) {
      ctx.token = *token;
    } else {
      ctx.token_error = std::string(token.status().message());
      // Reads may not need it (a loopback API): go on without, say why.
      err << "ssihvctl: warning: " << ctx.token_error << "; sending no token\n";
    }
  }
  const std::string& c = options.command;
  if (c == "status") return Status(ctx, out, err);
  if (c == "top") return Top(ctx, out, err, stop, terminal);
  if (c == "pages" && options.gpa == "hot") return HotPages(ctx, out, err);
  if (c == "pages") return Pages(ctx, out, err);
  if (c == "metrics") return Metrics(ctx, out, err);
  if (c == "pause" || c == "resume" || c == "stop")
    return Action(ctx, out, err);
  err << "ssihvctl: " << c << ": not an API command\n";
  return kExitUsage;
}

}  // namespace ssihv::ctl
