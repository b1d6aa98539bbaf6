// ClusterNode: the parts of ssihv-vmm that make this process node K of one
// guest spread over several processes (`--node K`, docs/VMM.md "Several
// processes"):
// - guest RAM is libpager's DsmNode (every node maps all of it; the home of
//   a page is the node whose range holds it), over the cluster transport;
// - the NodeLink carries interrupts, EOIs, routing updates, forwarded I/O,
//   stops, the start-up hello and clock, and detects lost peers;
// - interrupts for other nodes' vCPUs leave through the ClusterApicBus; on
//   nodes other than 0, RemoteIoDevices forward every port and MMIO access
//   to node 0, which owns the devices.
// It knows nothing of how the VM is built: the Vmm gives it hooks.
#ifndef SSIHV_APPS_VMM_CLUSTER_NODE_H_
#define SSIHV_APPS_VMM_CLUSTER_NODE_H_

#include <array>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster_bus.h"
#include "node_link.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/kvm/bus.h"
#include "ssihv/kvm/user_irqchip.h"
#include "ssihv/pager/dsm_node.h"

namespace ssihv::vmm {

struct ClusterNodeOptions {
  int fault_threads = 2;
  /// The nice value of the DSM's and the transport's threads and of the
  /// failure detector (base/thread_priority.h); 0: inherited.
  int service_nice = 0;
  /// How long Start() waits for every peer (and its hello).
  absl::Duration connect_timeout = absl::Seconds(60);
  NodeLinkOptions link;
};

/// What the VMM does for the cluster (any thread unless said otherwise).
struct ClusterNodeHooks {
  /// A peer stopped the guest (`from` said why); stop here too.
  std::function<void(uint32_t from, const StopMsg&)> remote_stop;
  /// `node` is lost (declared dead, fenced); `lost_pages` of guest memory
  /// had their only copy there. Stop the guest.
  std::function<void(uint32_t node, const std::string& why,
                     uint64_t lost_pages)>
      peer_lost;
  /// The DSM or a send failed: stop the guest with this error.
  std::function<void(const absl::Status&)> error;
  /// Node 0: its guest clock for a starting node.
  std::function<absl::StatusOr<ClockMsg>()> clock;
  /// A control-API action forwarded by another node, applied here only.
  /// On the node's action thread (may block, bounded); for kStop it runs
  /// after the answer went out (a stop cannot fail: the answer is OK).
  std::function<absl::Status(ActionKind)> action;
};

class ClusterNode : public NodeLink::Handler {
 public:
  /// Creates the transport and the DSM node (not started).
  static absl::StatusOr<std::unique_ptr<ClusterNode>> Create(
      const cluster::ClusterConfig& config, const cluster::GuestLayout& layout,
      uint32_t self, ClusterNodeOptions options, ClusterNodeHooks hooks);
  ~ClusterNode() override;

  uint32_t self() const { return self_; }
  /// How long start-up waits for the peers (`--peer-timeout`).
  absl::Duration connect_timeout() const { return options_.connect_timeout; }
  /// The ApicBus to create the user irqchip with; then set_chip().
  ClusterApicBus* apic_bus() { return &apic_bus_; }
  void set_chip(kvm::UserIrqchip* chip);
  /// Node 0: the buses forwarded accesses are done on.
  void set_device_buses(kvm::Bus* pio, kvm::Bus* mmio);
  /// Nodes other than 0: puts RemoteIoDevices over all of `pio` and `mmio`.
  absl::Status ForwardDevices(kvm::Bus& pio, kvm::Bus& mmio);

  /// Guest RAM: host address of RAM offset 0, and what keeps it mapped.
  uint8_t* ram() const;
  std::shared_ptr<const void> ram_owner() const { return dsm_; }

  /// Starts the DSM (fault threads, transport), waits for every peer,
  /// compares configs (hello) and starts the failure detector.
  absl::Status Start(const std::array<uint8_t, 32>& config_digest);
  /// Node K > 0: node 0's guest clock (and the round trip it took).
  absl::StatusOr<ClockMsg> FetchClock(absl::Duration* rtt);
  /// A local vCPU's routing entry changed; a failure stops the guest.
  void BroadcastRouting(const RoutingMsg& m) {
    absl::Status st = link_.BroadcastRouting(m);
    if (!st.ok()) hooks_.error(st);
  }
  /// Tells every peer the guest stopped (when the cause is local).
  void BroadcastStop(const StopMsg& m) { link_.BroadcastStop(m); }
  /// Sends a control-API action to every other node and collects their
  /// answers (NodeLink::ForwardAction: bounded by `timeout`).
  std::vector<std::pair<uint32_t, absl::Status>> ForwardAction(
      ActionKind action, absl::Duration timeout) {
    return link_.ForwardAction(ActionMsg{action}, timeout);
  }
  /// The stop barrier (NodeLink::Quiesce), after this node's vCPU threads
  /// ended and before Stop(): peers finish the faults they have in flight
  /// on pages homed here. Logs and returns the peers not heard from by
  /// `timeout`.
  std::vector<uint32_t> Quiesce(absl::Duration timeout);
  /// Stops the action thread, the failure detector, then the DSM
  /// (transport, pager).
  void Stop();

  pager::PagerStats PagerStatistics() const { return dsm_->PagerStatistics(); }
  /// Pager::ReleaseFailedFaults (the guest is stopping).
  void ReleaseFailedFaults() { dsm_->pager().ReleaseFailedFaults(); }
  const pager::DsmNode& dsm() const { return *dsm_; }
  nlohmann::json StatsJson() const;
  std::vector<PeerLinkStats> LinkStats() const { return link_.stats(); }
  /// The transport's traffic with each peer, by node id.
  std::vector<rdmax::PeerTransportStats> TrafficStats() const {
    return dsm_->transport().peer_stats();
  }
  /// The transport's backend ("tcp", "rdma", "loopback").
  const std::string& transport_name() const { return transport_name_; }

  // NodeLink::Handler
  void OnDeliver(uint32_t from, const DeliverMsg& m) override;
  void OnIoApicEoi(uint32_t from, uint8_t vector) override;
  void OnRouting(uint32_t from, const RoutingMsg& m) override;
  absl::StatusOr<std::vector<uint8_t>> OnIo(uint32_t from,
                                            const IoMsg& m) override;
  absl::StatusOr<ClockMsg> OnClockRequest() override;
  void OnStop(uint32_t from, const StopMsg& m) override;
  void OnPeerLost(uint32_t node, const std::string& why) override;
  void OnLinkError(const absl::Status& error) override;
  void OnAction(uint32_t from, const ActionMsg& m,
                rdmax::ReplyToken reply) override;

 private:
  void ActionLoop();
  ClusterNode(const cluster::GuestLayout& layout, uint32_t self,
              ClusterNodeOptions options, ClusterNodeHooks hooks);
  uint64_t LostPages() const;

  const cluster::GuestLayout& layout_;
  const uint32_t self_;
  const ClusterNodeOptions options_;
  const ClusterNodeHooks hooks_;
  NodeLink link_;
  ClusterApicBus apic_bus_;
  std::atomic<kvm::UserIrqchip*> chip_{nullptr};
  kvm::Bus* pio_ = nullptr;
  kvm::Bus* mmio_ = nullptr;
  std::shared_ptr<pager::DsmNode> dsm_;
  std::vector<std::string> addresses_;  // node id -> "host:port"
  std::string transport_name_;
  // Forwarded actions wait here for the action thread: the data thread
  // that receives them must not block on a pause.
  std::mutex action_mu_;
  std::condition_variable action_cv_;
  std::deque<std::pair<ActionKind, rdmax::ReplyToken>> actions_;  // action_mu_
  bool action_stop_ = false;                                      // action_mu_
  std::thread action_thread_;
};

/// This host's boot id (/proc/sys/kernel/random/boot_id): two nodes with
/// the same one share a host, its clock and its TSC.
std::array<uint8_t, 16> HostBootId();

/// SHA-256 of the config in canonical form (what the hello compares).
std::array<uint8_t, 32> ConfigDigest(const cluster::ClusterConfig& config);

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_CLUSTER_NODE_H_
