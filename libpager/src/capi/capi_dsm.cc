// ssihv_pager_create_dsm: the DSM kind of C pager (ssihv_pager_dsm library,
// which links the protocol and the transport).
#include <memory>

#include "absl/strings/str_cat.h"
#include "capi_internal.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/config.h"
#include "ssihv/pager.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::pager::capi {
namespace {

class DsmBackend final : public Backend {
 public:
  explicit DsmBackend(std::unique_ptr<DsmNode> node) : node_(std::move(node)) {}
  Pager& pager() override { return node_->pager(); }
  absl::Status Start() override { return node_->Start(); }
  void Stop() override { node_->Stop(); }
  PagerStats Stats() override { return node_->PagerStatistics(); }
  absl::Status Discard(uint64_t gpa, uint64_t len) override {
    // docs/PAGER.md, DSM limits: a page dropped behind the protocol's back
    // would come back as zeros on this node only.
    return absl::FailedPreconditionError(absl::StrCat(
        "ssihv_pager_discard gpa=0x", absl::Hex(gpa),
        ": not supported on a DSM pager (the coherence protocol owns its "
        "pages)"));
  }
  const GuestMemory* memory() const override { return &node_->memory(); }

 private:
  std::unique_ptr<DsmNode> node_;
};

absl::StatusOr<std::unique_ptr<DsmNode>> CreateNode(
    const char* config_path, uint32_t node,
    const ssihv_pager_options* options) {
  if (config_path == nullptr) {
    return absl::InvalidArgumentError(
        "ssihv_pager_create_dsm: config_path is NULL");
  }
  SSIHV_ASSIGN_OR_RETURN(cluster::ClusterConfig config,
                         cluster::LoadClusterConfig(config_path));
  if (node >= config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ssihv_pager_create_dsm: node ", node, " is not in ",
                     config_path, " (nodes 0..", config.num_nodes() - 1, ")"));
  }
  SSIHV_ASSIGN_OR_RETURN(PagerOptions pager_options, ToPagerOptions(options));
  DsmOptions dsm;
  dsm.fault_threads = pager_options.fault_threads;
  dsm.on_error = std::move(pager_options.on_error);
  SSIHV_ASSIGN_OR_RETURN(
      std::unique_ptr<rdmax::Transport> transport,
      rdmax::CreateTransport(config, node, DsmTransportOptions()));
  return DsmNode::Create(config, node, std::move(transport), std::move(dsm));
}

}  // namespace
}  // namespace ssihv::pager::capi

extern "C" ssihv_status ssihv_pager_create_dsm(
    const char* config_path, uint32_t node, const ssihv_pager_options* options,
    ssihv_pager** out) {
  using namespace ssihv::pager::capi;
  return Guard("ssihv_pager_create_dsm", [&]() -> absl::Status {
    if (out == nullptr) {
      return absl::InvalidArgumentError("ssihv_pager_create_dsm: out is NULL");
    }
    *out = nullptr;
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<ssihv::pager::DsmNode> dsm_node,
                           CreateNode(config_path, node, options));
    *out = new ssihv_pager{std::make_unique<DsmBackend>(std::move(dsm_node))};
    return absl::OkStatus();
  });
}
