// Command line of ssihv-uffd-handler (docs/PAGER.md, "Firecracker").
#ifndef SSIHV_APPS_UFFD_HANDLER_OPTIONS_H_
#define SSIHV_APPS_UFFD_HANDLER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ssihv::uffd_handler {

struct HandlerOptions {
  std::string socket;            ///< Unix stream socket Firecracker connects to
  std::string mem_file;          ///< the snapshot's memory file
  std::string dsm_config;        ///< or: a DSM cluster config ...
  std::string remote_mem;        ///< or: the cluster config of an exporter
  std::string export_config;     ///< with mem_file: export it to this cluster
  int node = -1;                 ///< this handler's node in the cluster
  int exporter = 0;              ///< with remote_mem: the exporting node
  int peer_timeout_s = 60;       ///< with remote_mem: wait for the exporter
  int fetch_ahead = 16;          ///< with remote_mem: pages per window
  bool once = false;             ///< serve one VM, exit when it goes away
  int fault_threads = 1;         ///< pager fault threads per VM
  int handshake_timeout_s = 10;  ///< a connection's time to send its layout
  bool help = false;
};

/// Parses argv (argv[0] is skipped). InvalidArgument names the flag.
absl::StatusOr<HandlerOptions> ParseHandlerArgs(
    const std::vector<std::string>& args);

std::string HandlerUsage();

/// Exit statuses (docs/PAGER.md).
enum ExitStatus : int {
  kExitOk = 0,     // stopped by SIGINT/SIGTERM, or --once and the VM is gone
  kExitError = 1,  // cannot listen or load the memory; --once: VM refused
  kExitUsage = 2,  // bad command line
};

}  // namespace ssihv::uffd_handler

#endif  // SSIHV_APPS_UFFD_HANDLER_OPTIONS_H_
