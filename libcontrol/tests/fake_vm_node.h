// A VmNode whose answers the test sets: the stand-in for the VMM in the
// tests of the API, the server and ssihvctl. Thread-safe (the server calls
// it from its threads).
#ifndef SSIHV_CONTROL_TESTS_FAKE_VM_NODE_H_
#define SSIHV_CONTROL_TESTS_FAKE_VM_NODE_H_

#include <condition_variable>
#include <mutex>
#include <vector>

#include "ssihv/control/metrics.h"
#include "ssihv/control/vm_node.h"

namespace ssihv::control::testing {

/// The cluster the API tests serve: nodes of 2 GiB each, node 0 holding
/// [0, 2 GiB), node 1 [2 GiB, 3 GiB) and [4 GiB, 5 GiB) (the MMIO hole in
/// between); node 0 has vCPUs 0-1 and the API, node 1 vCPU 2.
inline constexpr char kApiTestClusterJson[] = R"({"nodes": [
    {"id": 0, "vcpus": 2, "memory_mib": 2048, "address": "127.0.0.1:7700",
     "api_address": "127.0.0.1:8080"},
    {"id": 1, "vcpus": 1, "memory_mib": 2048, "address": "127.0.0.1:7701"}],
    "api_token_file": "/run/token"})";

/// A histogram over kLatencyBucketBounds with `n` observations at `value_s`.
inline Histogram HistogramAt(double value_s, uint64_t n) {
  Histogram h;
  for (double b : kLatencyBucketBounds) {
    h.bounds.push_back(b);
    h.counts.push_back(value_s <= b ? n : 0);
  }
  h.count = n;
  h.sum = value_s * static_cast<double>(n);
  return h;
}

class FakeVmNode : public VmNode {
 public:
  /// Node `self` of `nodes` nodes with `vcpus` vCPUs, running, with a few
  /// faults of every kind, exits, traffic with every peer.
  FakeVmNode(uint32_t self, uint32_t nodes, uint32_t first_vcpu,
             uint32_t vcpus) {
    health_ = {NodeStatus::kRunning, 12.5, ""};
    for (uint32_t p = 0; p < nodes; ++p) {
      if (p == self) continue;
      peers_.push_back({p, PeerLiveness::kAlive, 0.25, "tcp"});
      PeerMetrics m;
      m.peer = p;
      m.messages_sent = 100 + p;
      m.messages_received = 90 + p;
      m.bytes_sent = 4096 * 10;
      m.bytes_received = 4096 * 20;
      m.pio_forwarded = 7;
      m.ipis_sent = 3;
      m.ipis_received = 2;
      m.fault_reads_served = 40 + p;
      m.fault_writes_served = 20 + p;
      metrics_.peers.push_back(m);
    }
    for (uint32_t i = 0; i < vcpus; ++i) {
      vcpus_.push_back({first_vcpu + i,
                        first_vcpu + i,
                        i == 0 ? VcpuState::kRunning : VcpuState::kHalted,
                        {{"io", 10 * (i + 1)}, {"mmio", 5}, {"hlt", 2}}});
    }
    const double latency[] = {1.5e-6, 4e-6, 3e-5, 4.5e-5, 8e-6};
    const char* kinds[] = {"local_zero", "local_copy", "remote_read",
                           "remote_write", "upgrade"};
    for (int k = 0; k < 5; ++k) {
      metrics_.faults.push_back(
          {kinds[k], 100u * (k + 1), HistogramAt(latency[k], 100u * (k + 1))});
    }
    metrics_.vcpu_exits = {{"io", 30}, {"mmio", 10}, {"hlt", 4}};
    metrics_.dsm_pages = {{"invalid", 1000}, {"shared", 20}, {"modified", 300}};
  }

  // ---- what the test sets ------------------------------------------------
  void SetHealth(NodeHealth h) {
    std::lock_guard<std::mutex> l(mu_);
    health_ = std::move(h);
  }
  void SetPeers(std::vector<PeerInfo> p) {
    std::lock_guard<std::mutex> l(mu_);
    peers_ = std::move(p);
  }
  void SetMetrics(MetricsSnapshot m) {
    std::lock_guard<std::mutex> l(mu_);
    metrics_ = std::move(m);
  }
  MetricsSnapshot metrics() const {
    std::lock_guard<std::mutex> l(mu_);
    return metrics_;
  }
  void SetPage(absl::StatusOr<PageInfo> p) {
    std::lock_guard<std::mutex> l(mu_);
    page_ = std::move(p);
  }
  void SetHotPages(std::vector<PageTraffic> pages) {
    std::lock_guard<std::mutex> l(mu_);
    hot_ = std::move(pages);
  }
  void SetActionResult(absl::StatusOr<std::vector<NodeActionResult>> r) {
    std::lock_guard<std::mutex> l(mu_);
    action_result_ = std::move(r);
  }
  /// ClusterAction blocks until Release() (to hold a server thread).
  void BlockActions() {
    std::lock_guard<std::mutex> l(mu_);
    blocked_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    blocked_ = false;
    cv_.notify_all();
  }
  /// Waits until `n` actions have been entered (bounded by the test's
  /// own timeout).
  void WaitForActions(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return entered_ >= n; });
  }
  std::vector<VmAction> actions() const {
    std::lock_guard<std::mutex> l(mu_);
    return actions_;
  }
  std::vector<uint64_t> pages_asked() const {
    std::lock_guard<std::mutex> l(mu_);
    return pages_asked_;
  }

  // ---- VmNode --------------------------------------------------------------
  NodeHealth Health() const override {
    std::lock_guard<std::mutex> l(mu_);
    return health_;
  }
  std::vector<PeerInfo> Peers() const override {
    std::lock_guard<std::mutex> l(mu_);
    return peers_;
  }
  std::vector<VcpuInfo> Vcpus() const override {
    std::lock_guard<std::mutex> l(mu_);
    return vcpus_;
  }
  absl::StatusOr<PageInfo> Page(uint64_t page_gpa) const override {
    std::lock_guard<std::mutex> l(mu_);
    pages_asked_.push_back(page_gpa);
    return page_;
  }
  std::vector<PageTraffic> HotPages(size_t limit) const override {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<PageTraffic> out = hot_;
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  /// Every Metrics() call adds `n` local_zero faults (a running guest).
  void AdvanceFaultsPerCall(uint64_t n) {
    std::lock_guard<std::mutex> l(mu_);
    advance_ = n;
  }
  MetricsSnapshot Metrics() const override {
    std::lock_guard<std::mutex> l(mu_);
    metrics_.faults[0].faults += advance_;
    metrics_.faults[0].latency.count += advance_;
    for (uint64_t& c : metrics_.faults[0].latency.counts) c += advance_;
    return metrics_;
  }
  absl::StatusOr<std::vector<NodeActionResult>> ClusterAction(
      VmAction action) override {
    std::unique_lock<std::mutex> l(mu_);
    actions_.push_back(action);
    ++entered_;
    cv_.notify_all();
    cv_.wait(l, [&] { return !blocked_; });
    if (action == VmAction::kPause && action_result_.ok()) {
      health_.status = NodeStatus::kPaused;
    } else if (action == VmAction::kResume && action_result_.ok()) {
      health_.status = NodeStatus::kRunning;
    } else if (action == VmAction::kStop && action_result_.ok()) {
      health_.status = NodeStatus::kStopping;
    }
    return action_result_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  NodeHealth health_;
  std::vector<PeerInfo> peers_;
  std::vector<VcpuInfo> vcpus_;
  mutable MetricsSnapshot metrics_;
  uint64_t advance_ = 0;
  absl::StatusOr<PageInfo> page_ = PageInfo{"shared", std::nullopt};
  absl::StatusOr<std::vector<NodeActionResult>> action_result_ =
      std::vector<NodeActionResult>{};
  bool blocked_ = false;
  size_t entered_ = 0;
  std::vector<VmAction> actions_;
  mutable std::vector<uint64_t> pages_asked_;
  std::vector<PageTraffic> hot_;
};

}  // namespace ssihv::control::testing

#endif  // SSIHV_CONTROL_TESTS_FAKE_VM_NODE_H_
