#include "backing.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/cluster/config.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/pager/pager.h"
#include "ssihv/pager/remote_image.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::uffd_handler {
namespace {

// The cluster config at `config_path`, of which `node` must be a node.
absl::StatusOr<cluster::ClusterConfig> LoadForNode(
    const std::string& config_path, int node) {
  SSIHV_ASSIGN_OR_RETURN(cluster::ClusterConfig config,
                         cluster::LoadClusterConfig(config_path));
  if (node < 0 || static_cast<size_t>(node) >= config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--node ", node, ": not a node of ", config_path, " (0..",
                     config.num_nodes() - 1, ")"));
  }
  return config;
}

// Node `node`'s transport in the cluster `config_path`, not started.
absl::StatusOr<std::unique_ptr<rdmax::Transport>> NodeTransport(
    const std::string& config_path, int node) {
  SSIHV_ASSIGN_OR_RETURN(cluster::ClusterConfig config,
                         LoadForNode(config_path, node));
  return rdmax::CreateTransport(config, static_cast<uint32_t>(node));
}

class MemFile final : public MemoryBacking {
 public:
  MemFile(std::string path, base::MappedRegion mapping)
      : path_(std::move(path)), mapping_(std::move(mapping)) {}

  absl::Status Export(const std::string& config_path, int node) {
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<rdmax::Transport> transport,
                           NodeTransport(config_path, node));
    const std::string how = transport->Describe();
    SSIHV_ASSIGN_OR_RETURN(
        export_, pager::ImageExport::Start(std::move(transport),
                                           mapping_.data(), mapping_.size()));
    exported_ = absl::StrCat(", exported as node ", node, " of ", config_path,
                             " over ", how);
    return absl::OkStatus();
  }
  uint64_t size() const override { return mapping_.size(); }
  absl::StatusOr<std::shared_ptr<pager::PageSource>> NewSource() override {
    SSIHV_ASSIGN_OR_RETURN(
        std::unique_ptr<pager::ImageSource> source,
        pager::ImageSource::FromMemory(mapping_.data(), mapping_.size()));
    return std::shared_ptr<pager::PageSource>(std::move(source));
  }
  std::string Describe() const override {
    return absl::StrCat("memory file ", path_, " (", mapping_.size(), " bytes)",
                        exported_);
  }

 private:
  const std::string path_;
  const base::MappedRegion mapping_;
  std::unique_ptr<pager::ImageExport> export_;  // after mapping_: goes first
  std::string exported_;
};

class RemoteMem final : public MemoryBacking {
 public:
  RemoteMem(std::string config_path, std::unique_ptr<pager::RemoteImage> image)
      : config_path_(std::move(config_path)), image_(std::move(image)) {}
  uint64_t size() const override { return image_->size(); }
  absl::StatusOr<std::shared_ptr<pager::PageSource>> NewSource() override {
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<pager::PageSource> source,
                           image_->NewSource());
    return std::shared_ptr<pager::PageSource>(std::move(source));
  }
  std::string Describe() const override {
    return absl::StrCat("memory file exported by node ", image_->peer(), " of ",
                        config_path_, " (", size(), " bytes, over ",
                        image_->transport().Describe(), ")");
  }

 private:
  const std::string config_path_;
  const std::unique_ptr<pager::RemoteImage> image_;
};

// Reads each page in this process first (a DSM fault: the page is fetched
// from its home when it is not valid here), then lets the image source copy
// it into the VM. The read is what makes the DSM node's copy appear; the
// copy into the VM is made from it.
class DsmPrefetchSource final : public pager::PageSource {
 public:
  DsmPrefetchSource(const uint8_t* ram,
                    std::unique_ptr<pager::ImageSource> image)
      : ram_(ram), image_(std::move(image)) {}
  void OnFault(const pager::Fault& fault, pager::Resolver& resolver) override {
    // This fault thread blocks until the DSM node maps the page: the VM's
    // other faults wait for it (use --fault-threads for concurrency).
    (void)*reinterpret_cast<const volatile uint8_t*>(ram_ + fault.gpa);
    image_->OnFault(fault, resolver);
  }
  void OnRemove(uint64_t gpa, uint64_t len) override {
    image_->OnRemove(gpa, len);
  }
  std::string_view name() const override { return "dsm"; }

 private:
  const uint8_t* const ram_;
  const std::unique_ptr<pager::ImageSource> image_;
};

class Dsm final : public MemoryBacking {
 public:
  Dsm(std::string config_path, std::unique_ptr<pager::DsmNode> node)
      : config_path_(std::move(config_path)), node_(std::move(node)) {}
  ~Dsm() override { node_->Stop(); }
  uint64_t size() const override { return node_->memory().size(); }
  absl::StatusOr<std::shared_ptr<pager::PageSource>> NewSource() override {
    const uint8_t* ram = node_->memory().data();
    SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<pager::ImageSource> image,
                           pager::ImageSource::FromMemory(ram, size()));
    return std::shared_ptr<pager::PageSource>(
        std::make_shared<DsmPrefetchSource>(ram, std::move(image)));
  }
  std::string Describe() const override {
    return absl::StrCat("DSM node ", node_->self(), " of ", config_path_, " (",
                        size(), " bytes of cluster RAM)");
  }

 private:
  const std::string config_path_;
  const std::unique_ptr<pager::DsmNode> node_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MemoryBacking>> OpenMemFile(
    const std::string& path, const std::string& export_config, int node) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return base::LastErrnoStatus(absl::StrCat("open ", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return base::LastErrnoStatus(absl::StrCat("fstat ", path));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || size == 0 || size % pager::kPageSize != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": must be a regular file whose size is a positive "
                     "multiple of 4096 (it is ",
                     size, " bytes)"));
  }
  SSIHV_ASSIGN_OR_RETURN(
      base::MappedRegion mapping,
      base::MappedRegion::Shared(fd.get(), size, 0, PROT_READ));
  auto file = std::make_unique<MemFile>(path, std::move(mapping));
  if (!export_config.empty()) {
    absl::Status st = file->Export(export_config, node);
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat("--export ", export_config,
                                                  ": ", st.message()));
    }
  }
  return std::unique_ptr<MemoryBacking>(std::move(file));
}

absl::StatusOr<std::unique_ptr<MemoryBacking>> OpenRemoteMem(
    const std::string& config_path, int node, int exporter, int peer_timeout_s,
    int fetch_ahead) {
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<rdmax::Transport> transport,
                         NodeTransport(config_path, node));
  pager::RemoteImageOptions options;
  options.peer = static_cast<uint32_t>(exporter);
  options.peer_timeout = absl::Seconds(peer_timeout_s);
  options.fetch_ahead_pages = static_cast<uint32_t>(fetch_ahead);
  SSIHV_ASSIGN_OR_RETURN(
      std::unique_ptr<pager::RemoteImage> image,
      pager::RemoteImage::Connect(std::move(transport), options));
  return std::unique_ptr<MemoryBacking>(
      new RemoteMem(config_path, std::move(image)));
}

absl::StatusOr<std::unique_ptr<MemoryBacking>> StartDsm(
    const std::string& config_path, int node, int fault_threads) {
  SSIHV_ASSIGN_OR_RETURN(cluster::ClusterConfig config,
                         LoadForNode(config_path, node));
  const uint32_t self = static_cast<uint32_t>(node);
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<rdmax::Transport> transport,
                         rdmax::CreateTransport(config, self));
  pager::DsmOptions options;
  options.fault_threads = fault_threads;
  SSIHV_ASSIGN_OR_RETURN(
      std::unique_ptr<pager::DsmNode> dsm,
      pager::DsmNode::Create(config, self, std::move(transport), options));
  SSIHV_RETURN_IF_ERROR(dsm->Start());
  return std::unique_ptr<MemoryBacking>(new Dsm(config_path, std::move(dsm)));
}

}  // namespace ssihv::uffd_handler
