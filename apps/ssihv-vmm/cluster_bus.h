// What makes one guest out of several processes at the device level:
// - ClusterApicBus, the user irqchip's ApicBus: a resolved interrupt goes to
//   this process's local APICs for its own vCPUs and over the NodeLink to
//   the node of every other destination; an EOI of a level-triggered vector
//   goes to the I/O APIC, which lives on node 0 with every device.
// - RemoteIoDevice: on the other nodes, every port and MMIO range (but each
//   vCPU's own local APIC page, which the irqchip takes first) forwards the
//   access to node 0 and completes it with node 0's answer.
#ifndef SSIHV_APPS_VMM_CLUSTER_BUS_H_
#define SSIHV_APPS_VMM_CLUSTER_BUS_H_

#include <atomic>
#include <functional>

#include "node_link.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/kvm/bus.h"
#include "ssihv/kvm/user_irqchip.h"

namespace ssihv::vmm {

class ClusterApicBus : public kvm::ApicBus {
 public:
  /// `on_error`: an interrupt or EOI could not be sent (the guest must
  /// stop: a lost interrupt is never silent).
  ClusterApicBus(const cluster::GuestLayout& layout, uint32_t self,
                 NodeLink* link, std::function<void(absl::Status)> on_error)
      : layout_(layout),
        self_(self),
        link_(link),
        on_error_(std::move(on_error)) {}
  /// The local chip (created with this bus); set before vCPUs run.
  void set_chip(kvm::UserIrqchip* chip) { chip_ = chip; }

  void Deliver(const kvm::ApicDelivery& delivery,
               absl::Span<const uint32_t> vcpus) override;
  void EoiToIoApic(uint8_t vector) override;

  uint64_t remote_deliveries() const { return remote_deliveries_.load(); }

 private:
  const cluster::GuestLayout& layout_;
  const uint32_t self_;
  NodeLink* const link_;
  const std::function<void(absl::Status)> on_error_;
  kvm::UserIrqchip* chip_ = nullptr;
  std::atomic<uint64_t> remote_deliveries_{0};
};

class RemoteIoDevice : public kvm::BusDevice {
 public:
  /// Forwards accesses in `space`; `on_error` is told when node 0 could not
  /// be asked (the access then reads as all ones), unless the link leaves
  /// it to the failure detector's verdict (NodeLink::Undelivered).
  RemoteIoDevice(IoSpace space, NodeLink* link,
                 std::function<void(absl::Status)> on_error)
      : space_(space), link_(link), on_error_(std::move(on_error)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  /// An access node 0 could not be asked for: to on_error_ unless the link
  /// leaves it to the verdict.
  void Failed(const absl::Status& error);
  const IoSpace space_;
  NodeLink* const link_;
  const std::function<void(absl::Status)> on_error_;
};

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_CLUSTER_BUS_H_
