#include "options.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ssihv::uffd_handler {

std::string HandlerUsage() {
  return R"(Usage: ssihv-uffd-handler --socket PATH --mem-file PATH [options]
       ssihv-uffd-handler --socket PATH --dsm CONFIG --node K [options]

Serves the guest memory of Firecracker microVMs restored from a snapshot
with the "Uffd" memory backend: listens on the Unix socket PATH, receives
each VM's userfaultfd and memory layout, and maps every page the VM first
touches with libpager (UFFDIO_COPY from the memory file; zeros for ranges
the balloon removed). Several VMs at once, one connection each.

  --socket PATH        Unix stream socket to create and listen on (mode 0600;
                       must not exist). Firecracker's mem_backend.backend_path
  --mem-file PATH      the snapshot memory file (mapped read-only)
  --dsm CONFIG         instead of a file: the memory of a DSM cluster, as
  --node K             node K of the cluster CONFIG sees it (docs/PAGER.md)
  --once               serve one VM and exit when it goes away
  --fault-threads N    fault threads per VM (1..64, default 1)
  --help               this text

Exit status: 0 stopped by SIGINT/SIGTERM, or --once and the VM went away;
1 cannot listen, map the memory file or start the DSM node, or (--once) the
VM's handshake was refused; 2 bad command line.
)";
}

namespace {

absl::Status CheckOptions(const HandlerOptions& o) {
  if (o.socket.empty()) {
    return absl::InvalidArgumentError("--socket: required (the socket path)");
  }
  if (o.mem_file.empty() == o.dsm_config.empty()) {
    return absl::InvalidArgumentError(
        "--mem-file or --dsm: exactly one is required (where pages come "
        "from)");
  }
  if (!o.dsm_config.empty() && o.node < 0) {
    return absl::InvalidArgumentError("--node: required with --dsm");
  }
  if (o.dsm_config.empty() && o.node >= 0) {
    return absl::InvalidArgumentError("--node: only with --dsm");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HandlerOptions> ParseHandlerArgs(
    const std::vector<std::string>& args) {
  HandlerOptions o;
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
    if (flag == "--once") {
      o.once = true;
      continue;
    }
    auto take = [&](std::string* out) -> absl::Status {
      if (inline_value) {
        *out = value;
      } else if (i + 1 < args.size()) {
        *out = args[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": needs a value"));
      }
      if (out->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": empty value"));
      }
      return absl::OkStatus();
    };
    auto take_int = [&](int* out, int lo, int hi) -> absl::Status {
      std::string n;
      absl::Status st = take(&n);
      if (st.ok() && (!absl::SimpleAtoi(n, out) || *out < lo || *out > hi)) {
        st = absl::InvalidArgumentError(absl::StrCat(
            flag, ": '", n, "' is not a number in ", lo, "..", hi));
      }
      return st;
    };
    absl::Status st;
    if (flag == "--socket") {
      st = take(&o.socket);
    } else if (flag == "--mem-file") {
      st = take(&o.mem_file);
    } else if (flag == "--dsm") {
      st = take(&o.dsm_config);
    } else if (flag == "--node") {
      st = take_int(&o.node, 0, 63);
    } else if (flag == "--fault-threads") {
      st = take_int(&o.fault_threads, 1, 64);
    } else {
      st = absl::InvalidArgumentError(
          absl::StrCat("unknown argument '", args[i], "' (see --help)"));
    }
    if (!st.ok()) return st;
  }
  if (o.help) return o;
  if (absl::Status st = CheckOptions(o); !st.ok()) return st;
  return o;
}

}  // namespace ssihv::uffd_handler
