#include "cluster_bus.h"

#include <cstring>
#include <map>

namespace ssihv::vmm {

void ClusterApicBus::Deliver(const kvm::ApicDelivery& delivery,
                             absl::Span<const uint32_t> vcpus) {
  std::vector<uint32_t> local;
  std::map<uint32_t, std::vector<uint32_t>> remote;  // node -> its vCPUs
  for (uint32_t v : vcpus) {
    const uint32_t node = layout_.NodeOfVcpu(v);
    if (node == self_) {
      local.push_back(v);
    } else {
      remote[node].push_back(v);
    }
  }
  for (auto& [node, list] : remote) {
    absl::Status st = link_->Deliver(node, DeliverMsg{delivery, list});
    if (!st.ok()) on_error_(st);
    remote_deliveries_.fetch_add(1, std::memory_order_relaxed);
  }
  if (!local.empty()) chip_->Deliver(delivery, local);
}

void ClusterApicBus::EoiToIoApic(uint8_t vector) {
  if (self_ == 0) {
    chip_->EoiToIoApic(vector);
    return;
  }
  absl::Status st = link_->IoApicEoi(vector);
  if (!st.ok()) on_error_(st);
}

void RemoteIoDevice::Read(uint64_t offset, absl::Span<uint8_t> data) {
  IoMsg m;
  m.space = space_;
  m.is_write = false;
  m.addr = offset;
  m.size = static_cast<uint8_t>(data.size());
  absl::StatusOr<std::vector<uint8_t>> r = link_->ForwardIo(m);
  if (!r.ok()) {
    std::memset(data.data(), 0xff, data.size());
    Failed(r.status());
    return;
  }
  const size_t n = std::min(data.size(), r->size());
  if (n > 0) std::memcpy(data.data(), r->data(), n);
}

void RemoteIoDevice::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  IoMsg m;
  m.space = space_;
  m.is_write = true;
  m.addr = offset;
  m.size = static_cast<uint8_t>(data.size());
  const size_t n = std::min(data.size(), m.data.size());
  if (n > 0) std::memcpy(m.data.data(), data.data(), n);
  absl::StatusOr<std::vector<uint8_t>> r = link_->ForwardIo(m);
  if (!r.ok()) Failed(r.status());
}

void RemoteIoDevice::Failed(const absl::Status& error) {
  // Node 0 going down: its loss, if it comes, stops the guest.
  absl::Status st = link_->Undelivered(0, error);
  if (!st.ok()) on_error_(std::move(st));
}

}  // namespace ssihv::vmm
