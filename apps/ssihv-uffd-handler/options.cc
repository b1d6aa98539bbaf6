#include "options.h"

#include "absl/strings/str_cat.h"
#include "flags.h"

namespace ssihv::uffd_handler {

std::string HandlerUsage() {
  return R"(Usage: ssihv-uffd-handler --socket PATH --mem-file PATH [options]
       ssihv-uffd-handler --socket PATH --dsm CONFIG --node K [options]
       ssihv-uffd-handler --socket PATH --remote-mem CONFIG --node K [options]
       ssihv-uffd-handler --mem-file PATH --export CONFIG --node K [options]

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
  --export CONFIG      with --mem-file: also serve the file to the other nodes
                       of the cluster CONFIG (their --remote-mem), as node K
                       (--node); without --socket, serve only them
  --remote-mem CONFIG  instead of a file: the memory file that node N of the
                       cluster CONFIG exports (--export), fetched page by page
                       on first touch (an RDMA READ, or a request on a TCP
                       fetch lane), as node K (--node)
  --exporter N         with --remote-mem: the exporting node (default 0)
  --peer-timeout S     with --remote-mem: seconds to wait for the exporter at
                       start (1..3600, default 60)
  --fetch-ahead N      with --remote-mem: a fault right after the previous
                       one fetches N pages in one round trip (0..64, default
                       16; 0 or 1: off)
  --once               serve one VM and exit when it goes away
  --fault-threads N    fault threads per VM (1..64, default 1)
  --handshake-timeout S  seconds a connection may take to send its memory
                       layout and userfaultfd (1..3600, default 10)
  --help               this text

Exit status: 0 stopped by SIGINT/SIGTERM, or --once and the VM went away;
1 cannot listen, map the memory file, start the DSM node, export the file or
reach the exporter, or (--once) the VM's handshake was refused; 2 bad
command line.
)";
}

namespace {

absl::Status CheckSources(const HandlerOptions& o) {
  const int sources =
      !o.mem_file.empty() + !o.dsm_config.empty() + !o.remote_mem.empty();
  if (sources != 1) {
    return absl::InvalidArgumentError(
        "--mem-file, --dsm or --remote-mem: exactly one is required (where "
        "pages come from)");
  }
  if (!o.export_config.empty() && o.mem_file.empty()) {
    return absl::InvalidArgumentError(
        "--export: only with --mem-file (the file it serves)");
  }
  const bool clustered = !o.dsm_config.empty() || !o.remote_mem.empty() ||
                         !o.export_config.empty();
  if (clustered && o.node < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--node: required with ", !o.dsm_config.empty()   ? "--dsm"
                                  : !o.remote_mem.empty() ? "--remote-mem"
                                                          : "--export"));
  }
  if (!clustered && o.node >= 0) {
    return absl::InvalidArgumentError(
        "--node: only with --dsm, --remote-mem or --export");
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const HandlerOptions& o, bool exporter_set,
                          bool peer_timeout_set, bool fetch_ahead_set) {
  if (absl::Status st = CheckSources(o); !st.ok()) return st;
  if (o.socket.empty() && o.export_config.empty()) {
    return absl::InvalidArgumentError("--socket: required (the socket path)");
  }
  if (o.socket.empty() && o.once) {
    return absl::InvalidArgumentError("--once: only with --socket");
  }
  if (o.remote_mem.empty() &&
      (exporter_set || peer_timeout_set || fetch_ahead_set)) {
    return absl::InvalidArgumentError(absl::StrCat(exporter_set ? "--exporter"
                                                   : peer_timeout_set
                                                       ? "--peer-timeout"
                                                       : "--fetch-ahead",
                                                   ": only with --remote-mem"));
  }
  if (!o.remote_mem.empty() && o.exporter == o.node) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--exporter ", o.exporter, ": must be another node than --node"));
  }
  return absl::OkStatus();
}

// `set`, noting in *given that the flag was on the command line (a default
// cannot tell).
std::function<absl::Status(const std::string&)> Noted(
    bool* given, std::function<absl::Status(const std::string&)> set) {
  return [given, set = std::move(set)](const std::string& v) {
    *given = true;
    return set(v);
  };
}

}  // namespace

absl::StatusOr<HandlerOptions> ParseHandlerArgs(
    const std::vector<std::string>& args) {
  HandlerOptions o;
  bool exporter_given = false, peer_timeout_given = false,
       fetch_ahead_given = false;
  absl::Status st = apps::ParseFlags(
      args,
      {{"--socket", "", true, apps::StringFlag(&o.socket)},
       {"--mem-file", "", true, apps::StringFlag(&o.mem_file)},
       {"--dsm", "", true, apps::StringFlag(&o.dsm_config)},
       {"--remote-mem", "", true, apps::StringFlag(&o.remote_mem)},
       {"--export", "", true, apps::StringFlag(&o.export_config)},
       {"--node", "", true, apps::IntFlag(&o.node, 0, 63)},
       {"--exporter", "", true,
        Noted(&exporter_given, apps::IntFlag(&o.exporter, 0, 63))},
       {"--peer-timeout", "", true,
        Noted(&peer_timeout_given, apps::IntFlag(&o.peer_timeout_s, 1, 3600))},
       {"--fetch-ahead", "", true,
        Noted(&fetch_ahead_given, apps::IntFlag(&o.fetch_ahead, 0, 64))},
       {"--fault-threads", "", true, apps::IntFlag(&o.fault_threads, 1, 64)},
       {"--handshake-timeout", "", true,
        apps::IntFlag(&o.handshake_timeout_s, 1, 3600)},
       {"--once", "", false, apps::BoolFlag(&o.once)},
       {"--help", "-h", false, apps::BoolFlag(&o.help)}});
  if (!st.ok()) return st;
  if (o.help) return o;
  if (st = CheckOptions(o, exporter_given, peer_timeout_given,
                        fetch_ahead_given);
      !st.ok()) {
    return st;
  }
  return o;
}

}  // namespace ssihv::uffd_handler
