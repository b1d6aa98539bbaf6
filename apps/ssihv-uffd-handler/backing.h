// Where the VMs' pages come from: the snapshot's memory file (--mem-file,
// which --export also serves to other nodes), the memory file another node
// exports (--remote-mem), or the memory of a DSM cluster as one of its nodes
// sees it (--dsm). Each is one range of bytes that the regions' `offset`s
// index; each VM gets its own PageSource over it (its own record of ranges
// the balloon removed).
#ifndef SSIHV_APPS_UFFD_HANDLER_BACKING_H_
#define SSIHV_APPS_UFFD_HANDLER_BACKING_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ssihv/pager/page_source.h"

namespace ssihv::uffd_handler {

class MemoryBacking {
 public:
  virtual ~MemoryBacking() = default;
  /// Bytes the regions' offsets may index.
  virtual uint64_t size() const = 0;
  /// A new source for one VM: offset x is GPA x.
  virtual absl::StatusOr<std::shared_ptr<pager::PageSource>> NewSource() = 0;
  /// For logs: "memory file /path (N bytes)".
  virtual std::string Describe() const = 0;
};

/// The memory file, mapped read-only once for every VM. Its size must be a
/// positive multiple of 4 KiB; it must not shrink while the handler runs.
/// With `export_config`, node `node` of that cluster also exports it to the
/// other nodes (their OpenRemoteMem) for as long as the backing lives.
absl::StatusOr<std::unique_ptr<MemoryBacking>> OpenMemFile(
    const std::string& path, const std::string& export_config = "",
    int node = -1);

/// The memory file node `exporter` of the cluster `config_path` exports,
/// seen from node `node`: started here, waiting up to `peer_timeout_s` for
/// the exporter; `fetch_ahead` pages per fetch-ahead window (0: off).
absl::StatusOr<std::unique_ptr<MemoryBacking>> OpenRemoteMem(
    const std::string& config_path, int node, int exporter, int peer_timeout_s,
    int fetch_ahead);

/// Node `node` of the cluster `config_path` (ssihv's cluster config): the
/// DSM node is created and started here (it waits for every peer). A VM's
/// page at offset x holds RAM offset x of the cluster as this node sees it
/// when the VM first touches it; see docs/PAGER.md for what that means.
absl::StatusOr<std::unique_ptr<MemoryBacking>> StartDsm(
    const std::string& config_path, int node, int fault_threads);

}  // namespace ssihv::uffd_handler

#endif  // SSIHV_APPS_UFFD_HANDLER_BACKING_H_
