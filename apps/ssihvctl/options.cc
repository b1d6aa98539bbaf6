#include "options.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::ctl {

std::string CtlUsage() {
  return R"(Usage: ssihvctl --config cluster.json COMMAND [options]

Talks to the HTTP API of every node of a running ssihv cluster (the nodes'
api_address and the api_token_file of the config; docs/API.md).

Commands:
  status               a table of all nodes: up (answered), status, uptime,
                       vCPUs, faults/s, remote fault latency p50/p99 (since
                       the node started); a node that does not answer is shown
                       as such
  pages GPA            every node's view of the page at GPA (hex, 0x optional);
                       the home node adds its directory entry
  pages hot            each node's 16 hottest pages homed there (requests
                       served, copies invalidated, ownership moves since it
                       started); --node N: only node N
  pause | resume | stop
                       cluster-wide: sent to the first node that answers, which
                       forwards it to the others (needs api_token_file)
  metrics              the Prometheus metrics of every node, merged
  top                  a refreshing view: faults/s, exits/s, IPIs/s and remote
                       fault latency per node over each interval
  calibrate --out FILE measure remote and local page access latency and
                       bandwidth through the DSM and transport, and write the
                       config with memory_latency_ns, memory_bandwidth_mbps and
                       distances from the measurement (docs/API.md)

Options:
  --config FILE        the cluster config (required)
  --timeout S          per request to a node, seconds (default 2)
  --interval S         status, top: rate interval, seconds (default 1)
  --count N            top: refresh N times, then exit (default: until Ctrl-C)
  --node K             metrics: only node K; calibrate: run node K's side only
                       (one per host; node 0 writes --out)
  --out FILE           calibrate: where to write the measured config
  --pages N            calibrate: remote pages read per pair of nodes (default
                       1024; a quarter for latency, the rest for bandwidth)
  --local-mib M        calibrate: local buffer per node (default 64)
  --threads T          calibrate: threads faulting at once for bandwidth
                       (default 4)
  --calibrate-timeout S
                       calibrate: give up after S seconds (default 300)
  --help               this text

Exit status: 0 done; 1 a node did not answer or an action failed on a node;
2 usage; 3 bad config or token file; 4 the API refused the request;
5 calibration failed (nothing written).
)";
}

namespace {

absl::Status Bad(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", what));
}

absl::StatusOr<absl::Duration> Seconds(absl::string_view flag,
                                       const std::string& v, double min) {
  double s = 0;
  if (!absl::SimpleAtod(v, &s) || !(s >= min) || s > 86400) {
    return Bad(flag,
               absl::StrCat("expected seconds >= ", min, ", got \"", v, "\""));
  }
  return absl::Seconds(s);
}

absl::StatusOr<uint32_t> Count(absl::string_view flag, const std::string& v,
                               uint32_t min, uint32_t max) {
  uint32_t n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < min || n > max) {
    return Bad(flag, absl::StrCat("expected an integer in ", min, "..", max,
                                  ", got \"", v, "\""));
  }
  return n;
}

constexpr const char* kCommands[] = {"status", "pages",   "pause", "resume",
                                     "stop",   "metrics", "top",   "calibrate"};

}  // namespace

absl::StatusOr<CtlOptions> ParseCtlArgs(const std::vector<std::string>& args) {
  CtlOptions o;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool inline_value = false;
    if (size_t eq = flag.find('=');
        absl::StartsWith(flag, "--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      o.help = true;
      continue;
    }
    if (!absl::StartsWith(flag, "-") || flag == "-") {
      positional.push_back(args[i]);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return Bad(flag, "needs a value");
      value = args[++i];
    }
    if (flag == "--config") {
      o.config_path = value;
    } else if (flag == "--out") {
      o.out = value;
    } else if (flag == "--timeout") {
      SSIHV_ASSIGN_OR_RETURN(o.timeout, Seconds(flag, value, 0.001));
    } else if (flag == "--interval") {
      SSIHV_ASSIGN_OR_RETURN(o.interval, Seconds(flag, value, 0.01));
    } else if (flag == "--calibrate-timeout") {
      SSIHV_ASSIGN_OR_RETURN(o.calibrate_timeout, Seconds(flag, value, 1));
    } else if (flag == "--count") {
      SSIHV_ASSIGN_OR_RETURN(uint32_t n, Count(flag, value, 1, 1000000));
      o.count = static_cast<int>(n);
    } else if (flag == "--node") {
      SSIHV_ASSIGN_OR_RETURN(o.node, Count(flag, value, 0, 63));
    } else if (flag == "--pages") {
      SSIHV_ASSIGN_OR_RETURN(o.pages, Count(flag, value, 16, 1 << 20));
    } else if (flag == "--local-mib") {
      SSIHV_ASSIGN_OR_RETURN(o.local_mib, Count(flag, value, 1, 4096));
    } else if (flag == "--threads") {
      SSIHV_ASSIGN_OR_RETURN(uint32_t n, Count(flag, value, 1, 64));
      o.threads = static_cast<int>(n);
    } else {
      return Bad(flag, "unknown option (see --help)");
    }
  }
  if (o.help) return o;
  if (positional.empty()) {
    return absl::InvalidArgumentError("a command is required (see --help)");
  }
  o.command = positional[0];
  if (std::find(std::begin(kCommands), std::end(kCommands), o.command) ==
      std::end(kCommands)) {
    return Bad(o.command, "unknown command (see --help)");
  }
  const size_t want = o.command == "pages" ? 2 : 1;
  if (positional.size() != want) {
    return o.command == "pages" && positional.size() < 2
               ? Bad("pages", "needs the GPA (pages 0x100000)")
               : Bad(positional[want], "unexpected argument");
  }
  if (o.command == "pages") o.gpa = positional[1];
  if (o.config_path.empty()) return Bad("--config", "required");
  if (o.command == "calibrate" && o.out.empty() &&
      (!o.node.has_value() || *o.node == 0)) {
    return Bad("--out", "required by calibrate (node 0 writes it)");
  }
  return o;
}

}  // namespace ssihv::ctl
