// ssihv_pager_create_dsm: the DSM kind of C pager, and the remote images
// (ssihv_pager_dsm library, which links the protocol and the transport).
#include <memory>

#include "absl/strings/str_cat.h"
#include "capi_internal.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/config.h"
#include "ssihv/pager.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/pager/remote_image.h"
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

// The cluster config at `config_path`, of which `node` must be a node;
// errors start with `function`.
absl::StatusOr<cluster::ClusterConfig> LoadNodeConfig(const char* function,
                                                      const char* config_path,
                                                      uint32_t node) {
  if (config_path == nullptr) return NullArgument(function, "config_path");
  SSIHV_ASSIGN_OR_RETURN(cluster::ClusterConfig config,
                         cluster::LoadClusterConfig(config_path));
  if (node >= config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat(function, ": node ", node, " is not in ", config_path,
                     " (nodes 0..", config.num_nodes() - 1, ")"));
  }
  return config;
}

absl::StatusOr<std::unique_ptr<DsmNode>> CreateNode(
    const char* config_path, uint32_t node,
    const ssihv_pager_options* options) {
  SSIHV_ASSIGN_OR_RETURN(
      cluster::ClusterConfig config,
      LoadNodeConfig("ssihv_pager_create_dsm", config_path, node));
  SSIHV_ASSIGN_OR_RETURN(PagerOptions pager_options, ToPagerOptions(options));
  DsmOptions dsm;
  dsm.fault_threads = pager_options.fault_threads;
  dsm.on_error = std::move(pager_options.on_error);
  SSIHV_ASSIGN_OR_RETURN(
      std::unique_ptr<rdmax::Transport> transport,
      rdmax::CreateTransport(config, node, DsmTransportOptions()));
  return DsmNode::Create(config, node, std::move(transport), std::move(dsm));
}

// A remote image's source that owns the image (the C caller holds only the
// pager). Members in this order: the source goes first, then the
// connection to the exporter.
class OwningRemoteSource final : public PageSource {
 public:
  OwningRemoteSource(std::unique_ptr<RemoteImage> image,
                     std::unique_ptr<PageSource> source)
      : image_(std::move(image)), source_(std::move(source)) {}
  void OnFault(const Fault& fault, Resolver& resolver) override {
    source_->OnFault(fault, resolver);
  }
  void OnRemove(uint64_t gpa, uint64_t len) override {
    source_->OnRemove(gpa, len);
  }
  std::string_view name() const override { return source_->name(); }

 private:
  std::unique_ptr<RemoteImage> image_;
  std::unique_ptr<PageSource> source_;
};

// Node `node`'s transport in the cluster at `config_path`, not started.
absl::StatusOr<std::unique_ptr<rdmax::Transport>> NodeTransport(
    const char* function, const char* config_path, uint32_t node) {
  SSIHV_ASSIGN_OR_RETURN(cluster::ClusterConfig config,
                         LoadNodeConfig(function, config_path, node));
  return rdmax::CreateTransport(config, node);
}

}  // namespace
}  // namespace ssihv::pager::capi

struct ssihv_image_export {
  std::unique_ptr<ssihv::pager::ImageExport> image_export;
};

extern "C" ssihv_status ssihv_pager_set_source_remote(
    ssihv_pager* pager, const char* config_path, uint32_t node,
    uint32_t exporter, uint64_t gpa, uint32_t timeout_ms) {
  using namespace ssihv::pager::capi;
  constexpr const char* kFn = "ssihv_pager_set_source_remote";
  return Guard(kFn, [&]() -> absl::Status {
    SSIHV_ASSIGN_OR_RETURN(ssihv::pager::Pager * p,
                           StoppedLocalPager(pager, kFn));
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<ssihv::rdmax::Transport> transport,
                           NodeTransport(kFn, config_path, node));
    ssihv::pager::RemoteImageOptions o;
    o.peer = exporter;
    if (timeout_ms != 0) o.peer_timeout = absl::Milliseconds(timeout_ms);
    SSIHV_ASSIGN_OR_RETURN(
        std::unique_ptr<ssihv::pager::RemoteImage> image,
        ssihv::pager::RemoteImage::Connect(std::move(transport), o));
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<ssihv::pager::PageSource> source,
                           image->NewSource(gpa));
    return p->SetSource(std::make_shared<OwningRemoteSource>(
        std::move(image), std::move(source)));
  });
}

extern "C" ssihv_status ssihv_image_export_start(const char* config_path,
                                                 uint32_t node,
                                                 const void* image,
                                                 uint64_t size,
                                                 ssihv_image_export** out) {
  using namespace ssihv::pager::capi;
  constexpr const char* kFn = "ssihv_image_export_start";
  return Guard(kFn, [&]() -> absl::Status {
    if (out == nullptr) return NullArgument(kFn, "out");
    *out = nullptr;
    if (image == nullptr) return NullArgument(kFn, "image");
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<ssihv::rdmax::Transport> transport,
                           NodeTransport(kFn, config_path, node));
    SSIHV_ASSIGN_OR_RETURN(
        std::unique_ptr<ssihv::pager::ImageExport> e,
        ssihv::pager::ImageExport::Start(
            std::move(transport), static_cast<const uint8_t*>(image), size));
    *out = new ssihv_image_export{std::move(e)};
    return absl::OkStatus();
  });
}

extern "C" void ssihv_image_export_destroy(ssihv_image_export* image_export) {
  delete image_export;
}

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
