#include "ssihv/pager/dsm_node.h"

#include <algorithm>

#include "dsm/engine.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::pager {

rdmax::TransportOptions DsmTransportOptions(rdmax::TransportOptions base) {
  const uint64_t run_frame =
      directory::kHeaderSize + uint64_t{kDsmMaxRunPages} * kPageSize;
  base.max_message_bytes = static_cast<uint32_t>(
      std::max<uint64_t>(base.max_message_bytes, run_frame));
  return base;
}

DsmNode::DsmNode(std::unique_ptr<DsmEngine> engine)
    : engine_(std::move(engine)) {}

DsmNode::~DsmNode() = default;

absl::StatusOr<std::unique_ptr<DsmNode>> DsmNode::Create(
    const cluster::ClusterConfig& config, uint32_t self,
    std::unique_ptr<rdmax::Transport> transport, DsmOptions options) {
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<DsmEngine> engine,
                         DsmEngine::Create(config, self, std::move(transport),
                                           std::move(options)));
  return std::unique_ptr<DsmNode>(new DsmNode(std::move(engine)));
}

absl::Status DsmNode::Start() { return engine_->Start(); }
void DsmNode::Stop() { engine_->Stop(); }
uint32_t DsmNode::self() const { return engine_->self(); }
const GuestMemory& DsmNode::memory() const { return engine_->memory(); }
uint8_t* DsmNode::HostAddress(uint64_t gpa) const {
  return engine_->HostAddress(gpa);
}
absl::Status DsmNode::DeclareDead(uint32_t node) {
  return engine_->DeclareDead(node);
}
rdmax::Transport& DsmNode::transport() { return engine_->transport(); }
Pager& DsmNode::pager() { return engine_->pager(); }
PagerStats DsmNode::PagerStatistics() const { return engine_->pager().Stats(); }
nlohmann::json DsmNode::StatsJson() const { return engine_->StatsJson(); }
absl::StatusOr<DsmPageView> DsmNode::InspectPage(uint64_t gpa) const {
  return engine_->InspectPage(gpa);
}
std::vector<DsmRequestsServed> DsmNode::RequestsServed() const {
  return engine_->RequestsServed();
}

std::vector<DsmPageTraffic> DsmNode::HottestPages(size_t n) const {
  return engine_->HottestPages(n);
}

uint64_t DsmNode::PagesLost() const { return engine_->PagesLost(); }

std::array<uint64_t, 4> DsmNode::PagesByState() const {
  return engine_->PagesByState();
}

}  // namespace ssihv::pager
