// One ssihv-vmm virtual machine: KVM (libkvm), guest RAM through the pager
// (libpager), the ACPI tables of the cluster (libacpi) in guest memory, a
// Linux kernel loaded for direct boot, the legacy devices and the console.
// With --node K it is node K of a guest spread over one process per node
// (cluster_node.h): its own vCPUs, all of guest RAM through the DSM, and on
// node 0 the console and devices.
#ifndef SSIHV_APPS_VMM_VMM_H_
#define SSIHV_APPS_VMM_VMM_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster_node.h"
#include "console.h"
#include "guest_ram.h"
#include "load_check.h"
#include "options.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/kvm/bus.h"
#include "ssihv/kvm/kvm.h"
#include "ssihv/kvm/run_loop.h"
#include "ssihv/kvm/uart16550.h"
#include "ssihv/kvm/user_irqchip.h"
#include "ssihv/kvm/x86_boot.h"

namespace ssihv::vmm {

/// How long a pause waits for every vCPU to leave KVM_RUN, and a forwarded
/// action for the other nodes' answers.
inline constexpr absl::Duration kPauseTimeout = absl::Seconds(2);
inline constexpr absl::Duration kForwardTimeout = absl::Seconds(5);

/// Where a Vmm is in its life (what the control API's /health shows).
enum class VmmPhase : uint8_t {
  kBuilding,         // Build() runs
  kWaitingForPeers,  // --node: waiting for every peer and its hello
  kReady,            // built, not yet running
  kRunning,          // the vCPUs run (or are paused)
  kStopping,         // the stop latch is set
  kFailed,           // Build() failed
};

class Vmm {
 public:
  /// Builds the whole VM; nothing runs yet. Errors name what is wrong (no
  /// KVM, a bad kernel image, a missing initrd, too little memory, ...).
  static absl::StatusOr<std::unique_ptr<Vmm>> Create(
      const VmmOptions& options, const cluster::ClusterConfig& config);
  /// The two halves of Create, for a caller that serves the control API
  /// while the VM is built (and peers awaited): an empty Vmm, then Build.
  static std::unique_ptr<Vmm> Prepare(const cluster::ClusterConfig& config) {
    return std::unique_ptr<Vmm>(new Vmm(config));
  }
  absl::Status Build(const VmmOptions& options);
  ~Vmm();

  /// Runs the guest until it resets, powers off, fails, or Stop() is called;
  /// returns what stopped it. vCPUs are stopped before the pager.
  kvm::StopEvent Run();
  /// Asks the VM to stop (thread- and signal-thread-safe).
  void Stop(kvm::StopReason reason, absl::Status why = absl::OkStatus());

  /// The guest kernel panicked (seen on node 0's console, or told by it).
  bool guest_panicked() const {
    return (console_ && console_->guest_panicked()) || remote_panic_;
  }
  /// The process's exit status for how the guest stopped (docs/VMM.md).
  int ExitStatus() const;
  /// The exit status for a Build() that failed with `error`: a node lost
  /// while this one started (5) is not a setup error (3). An Unavailable
  /// error with --node (a peer's connection gone mid-start) waits for the
  /// failure detector's verdict, a few seconds at most.
  int BuildFailureStatus(const absl::Status& error) const;
  /// VM, vCPU-exit and pager statistics (valid after Run).
  nlohmann::json StatsJson() const;
  /// A few human-readable lines of the same.
  std::string StatsText() const;
  /// Register dumps of every vCPU (after Run: the vCPUs are stopped).
  std::string DumpVcpus() const;
  /// Where the boot loader put things (for logs and tests).
  const kvm::LinuxBootInfo& boot_info() const { return boot_; }

  // --- For the control API (vmm_api.h): any thread, any time. What a
  // phase makes valid stays valid until the Vmm is destroyed. ---
  VmmPhase phase() const { return phase_.load(std::memory_order_acquire); }
  /// Why Build failed (kFailed), or what stopped the guest (kStopping).
  std::string PhaseReason() const;
  const cluster::ClusterConfig& config() const { return config_; }
  const cluster::GuestLayout& layout() const { return layout_; }
  /// --node: the cluster side, from kWaitingForPeers on; else nullptr.
  const ClusterNode* cluster_node() const {
    return phase() == VmmPhase::kBuilding || phase() == VmmPhase::kFailed
               ? nullptr
               : node_.get();
  }
  /// One process: guest RAM, from kReady on; else nullptr.
  const GuestRam* guest_ram() const { return ready() ? ram_.get() : nullptr; }
  /// This node's vCPUs (from kReady on; empty before).
  std::vector<kvm::VcpuThreadInfo> VcpuSnapshot() const;
  /// The APIC ID vCPU `vcpu` has now (the guest may change it).
  uint32_t CurrentApicId(uint32_t vcpu) const;
  bool paused() const { return ready() && threads_->paused(); }
  /// Applies a control-API action here only (pause, resume, stop).
  absl::Status LocalAction(ActionKind action);
  /// Applies it here and, with --node, forwards it to every other node:
  /// each node's answer, this one first then the others in id order.
  std::vector<std::pair<uint32_t, absl::Status>> ClusterAction(
      ActionKind action);

 private:
  Vmm(const cluster::ClusterConfig& config)
      : config_(config), layout_(config) {}
  absl::Status BuildSteps(const VmmOptions& options);
  absl::Status SetUpMemory(const VmmOptions& options);
  void ReleaseFaultsOnStop();
  // Pause/resume: the guest's kvmclock stands still while paused.
  void FreezeGuestClock();
  void ThawGuestClock();
  // --node: the cluster side (vmm_node.cc).
  absl::Status CreateNode(const VmmOptions& options);
  // Node 0: a warning when the config puts a remote node at a distance
  // the guest balances tasks over (cluster::kGuestBalanceDistance).
  void WarnIfNodesNear() const;
  absl::Status SyncClock();
  absl::StatusOr<ClockMsg> GuestClock() const;
  void OnRemoteStop(uint32_t from, const StopMsg& m);
  void OnPeerLost(uint32_t node, const std::string& why, uint64_t lost_pages);
  void TellPeersWeStopped();
  bool IsLocalVcpu(uint32_t vcpu) const {
    return !node_ || layout_.NodeOfVcpu(vcpu) == node_->self();
  }
  std::string PagerStatsText() const;
  std::string ExitStatsText() const;
  void NodeStatsJson(nlohmann::json& j) const;
  std::string NodeStatsText() const;
  bool loads_guest() const { return !node_ || node_->self() == 0; }
  absl::Status LoadGuest(const VmmOptions& options);
  absl::Status SetUpVcpus();
  absl::Status SetUpDevices();
  /// Drives a device's interrupt line: KVM's irqchip or the VMM's I/O APIC.
  absl::Status SetIrqLine(uint32_t gsi, bool level);
  bool user_irqchip() const { return apic_ != nullptr; }
  bool ready() const {
    const VmmPhase p = phase();
    return p == VmmPhase::kReady || p == VmmPhase::kRunning ||
           p == VmmPhase::kStopping;
  }

  cluster::ClusterConfig config_;
  cluster::GuestLayout layout_;
  std::atomic<VmmPhase> phase_{VmmPhase::kBuilding};
  std::atomic<bool> vcpus_started_{false};  // set by Run before they start
  // Node 0: its vCPUs' TSC offset, read from vCPU 0 before it ever runs,
  // for the other nodes' clock requests (a vCPU ioctl from the message
  // thread would wait for KVM_RUN, and KVM_RUN for a page that thread is
  // to receive). clock_ready_ is set once it is (or cannot be) read.
  std::optional<uint64_t> clock_tsc_offset_;
  std::atomic<bool> clock_ready_{false};
  std::string build_error_;  // set before phase_ becomes kFailed
  // Held for a whole ClusterAction; Run takes it before the transport goes,
  // so that an action's answers are not cut off by our own shutdown.
  std::mutex action_mu_;
  std::mutex clock_mu_;
  std::optional<kvm_clock_data> paused_clock_;  // clock_mu_; while paused
  kvm::StopLatch stop_;
  std::unique_ptr<kvm::Kvm> kvm_;
  std::unique_ptr<kvm::Vm> vm_;
  std::unique_ptr<ClusterNode> node_;       // --node only
  std::unique_ptr<kvm::UserIrqchip> apic_;  // --irqchip user only
  std::unique_ptr<GuestRam> ram_;           // without --node
  // Why the guest stopped when another node says so or is lost.
  std::atomic<bool> remote_panic_{false};
  mutable std::mutex stop_mu_;
  std::optional<std::pair<uint32_t, StopMsg>> remote_stop_;  // stop_mu_
  std::optional<uint32_t> lost_node_;                        // stop_mu_
  mutable std::condition_variable lost_cv_;  // lost_node_ was set
  std::vector<kvm::Vcpu> vcpus_;
  kvm::Bus pio_{"pio"};
  kvm::Bus mmio_{"mmio"};
  std::unique_ptr<Console> console_;
  std::shared_ptr<kvm::Uart16550> uart_;
  kvm::LinuxBootInfo boot_;
  uint64_t acpi_gpa_ = 0;
  uint64_t acpi_bytes_ = 0;
  std::unique_ptr<kvm::VcpuThreads> threads_;
  kvm::StopEvent event_;
  LoadCheck load_check_;         // what the loader wrote (single process)
  std::string load_check_line_;  // its verdict after a triple fault
  double run_seconds_ = 0;
  // When the stop was requested (steady clock, ns; 0: not yet), and how
  // long the vCPU threads then took to end: a slow stop is a stuck vCPU
  // (a fault waiting on a peer, an I/O call), to be seen, not guessed.
  std::atomic<int64_t> stop_requested_ns_{0};
  double stop_join_seconds_ = 0;
  // The stop barrier (ClusterNode::Quiesce): how long this node served its
  // peers after its own vCPUs ended, and the peers it stopped without.
  double stop_barrier_seconds_ = 0;
  std::vector<uint32_t> stop_barrier_silent_;
};

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_VMM_H_
