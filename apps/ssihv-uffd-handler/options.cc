#include "options.h"

#include "flags.h"

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
  --handshake-timeout S  seconds a connection may take to send its memory
                       layout and userfaultfd (1..3600, default 10)
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
  absl::Status st = apps::ParseFlags(
      args,
      {{"--socket", "", true, apps::StringFlag(&o.socket)},
       {"--mem-file", "", true, apps::StringFlag(&o.mem_file)},
       {"--dsm", "", true, apps::StringFlag(&o.dsm_config)},
       {"--node", "", true, apps::IntFlag(&o.node, 0, 63)},
       {"--fault-threads", "", true, apps::IntFlag(&o.fault_threads, 1, 64)},
       {"--handshake-timeout", "", true,
        apps::IntFlag(&o.handshake_timeout_s, 1, 3600)},
       {"--once", "", false, apps::BoolFlag(&o.once)},
       {"--help", "-h", false, apps::BoolFlag(&o.help)}});
  if (!st.ok()) return st;
  if (o.help) return o;
  if (st = CheckOptions(o); !st.ok()) return st;
  return o;
}

}  // namespace ssihv::uffd_handler
