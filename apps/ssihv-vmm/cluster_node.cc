#include "cluster_node.h"

#include <openssl/sha.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_name.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::vmm {
namespace {

using base::Log;
using base::LogLevel;

}  // namespace

std::array<uint8_t, 16> HostBootId() {
  std::array<uint8_t, 16> id{};
  absl::StatusOr<std::string> text =
      base::ReadFile("/proc/sys/kernel/random/boot_id");
  if (!text.ok()) return id;
  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\n": 32 hex digits.
  size_t k = 0;
  for (char c : *text) {
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (v < 0) continue;
    if (k / 2 >= id.size()) break;
    id[k / 2] = static_cast<uint8_t>(id[k / 2] << 4 | v);
    ++k;
  }
  return id;
}

std::array<uint8_t, 32> ConfigDigest(const cluster::ClusterConfig& config) {
  const std::string canonical = cluster::ClusterConfigToJson(config);
  std::array<uint8_t, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(canonical.data()),
         canonical.size(), d.data());
  return d;
}

ClusterNode::ClusterNode(const cluster::GuestLayout& layout, uint32_t self,
                         ClusterNodeOptions options, ClusterNodeHooks hooks)
    : layout_(layout),
      self_(self),
      options_(options),
      hooks_(std::move(hooks)),
      link_(layout, self, this, options.link),
      apic_bus_(layout, self, &link_,
                [this](absl::Status st) { hooks_.error(st); }) {}

ClusterNode::~ClusterNode() { Stop(); }

absl::StatusOr<std::unique_ptr<ClusterNode>> ClusterNode::Create(
    const cluster::ClusterConfig& config, const cluster::GuestLayout& layout,
    uint32_t self, ClusterNodeOptions options, ClusterNodeHooks hooks) {
  std::unique_ptr<ClusterNode> node(
      new ClusterNode(layout, self, options, std::move(hooks)));
  rdmax::TransportOptions transport_options;
  transport_options.service_nice = options.service_nice;
  SSIHV_ASSIGN_OR_RETURN(
      std::unique_ptr<rdmax::Transport> transport,
      rdmax::CreateTransport(config, self,
                             pager::DsmTransportOptions(transport_options)));
  node->transport_name_ = std::string(rdmax::BackendName(transport->kind()));
  pager::DsmOptions dsm;
  dsm.fault_threads = options.fault_threads;
  dsm.service_nice = options.service_nice;
  dsm.connect_timeout = options.connect_timeout;
  // Diagnostics (docs/VMM.md): the DSM's read-ahead and fault-around
  // windows, to tell their effect on a guest from the protocol's.
  if (const char* v = std::getenv("SSIHV_DSM_READ_AHEAD_PAGES")) {
    dsm.read_ahead_pages = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  }
  if (const char* v = std::getenv("SSIHV_DSM_READ_REFRESH")) {
    dsm.read_refresh = std::string_view(v) == "1";
  }
  if (const char* v = std::getenv("SSIHV_DSM_WRITE_RUN_PAGES")) {
    dsm.write_run_pages = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  }
  if (const char* v = std::getenv("SSIHV_DSM_FAULT_AROUND_PAGES")) {
    dsm.local_fault_around_pages =
        static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  }
  // Background downgrade (docs/PAGER.md): the idle time in us; 0: off.
  if (const char* v = std::getenv("SSIHV_DSM_BACKGROUND_DOWNGRADE_US")) {
    dsm.background_downgrade = absl::Microseconds(std::strtoul(v, nullptr, 10));
  }
  // The grant hold (docs/PAGER.md, "Grant hold"): base and bound, in us.
  if (const char* v = std::getenv("SSIHV_DSM_GRANT_HOLD_US")) {
    dsm.grant_hold = absl::Microseconds(std::strtoul(v, nullptr, 10));
  }
  if (const char* v = std::getenv("SSIHV_DSM_MAX_GRANT_HOLD_US")) {
    dsm.max_grant_hold = absl::Microseconds(std::strtoul(v, nullptr, 10));
  }
  ClusterNode* raw = node.get();
  // A lost page (DATA_LOSS) exists only once a dead node was fenced, and
  // OnPeerLost stops the guest right after, with the lost-peer status and
  // the count; stopping here first would end it as a plain VMM error. The
  // faults on such pages stay blocked until the stop releases them.
  dsm.on_error = [raw](const absl::Status& st) {
    if (!absl::IsDataLoss(st)) raw->hooks_.error(st);
  };
  dsm.message_handler = [raw](const rdmax::Message& m) {
    raw->link_.OnMessage(m);
  };
  dsm.peer_handler = [raw](rdmax::NodeId peer, rdmax::PeerState state) {
    raw->link_.OnPeer(peer, state);
  };
  SSIHV_ASSIGN_OR_RETURN(
      std::unique_ptr<pager::DsmNode> dsm_node,
      pager::DsmNode::Create(config, self, std::move(transport), dsm));
  node->dsm_ = std::move(dsm_node);
  for (const cluster::NodeConfig& n : config.nodes) {
    node->addresses_.push_back(n.address);
  }
  node->link_.Attach(&node->dsm_->transport());
  return node;
}

void ClusterNode::set_chip(kvm::UserIrqchip* chip) {
  apic_bus_.set_chip(chip);
  chip_ = chip;
}

void ClusterNode::set_device_buses(kvm::Bus* pio, kvm::Bus* mmio) {
  pio_ = pio;
  mmio_ = mmio;
}

absl::Status ClusterNode::ForwardDevices(kvm::Bus& pio, kvm::Bus& mmio) {
  auto error = [this](absl::Status st) { hooks_.error(st); };
  SSIHV_RETURN_IF_ERROR(pio.Register(
      0, 0x10000,
      std::make_shared<RemoteIoDevice>(IoSpace::kPio, &link_, error)));
  // Every guest-physical address that is neither RAM (a memory slot: no
  // exit) nor this vCPU's local APIC page (taken by the irqchip first).
  return mmio.Register(
      0, uint64_t{1} << 52,
      std::make_shared<RemoteIoDevice>(IoSpace::kMmio, &link_, error));
}

uint8_t* ClusterNode::ram() const { return dsm_->memory().data(); }

absl::Status ClusterNode::Start(const std::array<uint8_t, 32>& config_digest) {
  std::string others;
  for (uint32_t n = 0; n < addresses_.size(); ++n) {
    if (n != self_) absl::StrAppend(&others, others.empty() ? "" : ", ", n);
  }
  Log(LogLevel::kInfo, "ssihv-vmm: node ", self_, ": waiting for nodes ",
      others, " (up to ", absl::FormatDuration(options_.connect_timeout), ")");
  if (absl::Status st = dsm_->Start(); !st.ok()) {
    if (!absl::IsDeadlineExceeded(st)) return st;
    std::string missing;
    for (uint32_t n = 0; n < addresses_.size(); ++n) {
      if (n == self_ || dsm_->transport().IsConnected(n)) continue;
      absl::StrAppend(&missing, missing.empty() ? "" : ", ", "node ", n, " (",
                      addresses_[n], ")");
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "node ", self_, ": not every node was reached in ",
        absl::FormatDuration(options_.connect_timeout), ": ", missing,
        " (start every node with the same config; --peer-timeout)"));
  }
  HelloMsg hello;
  hello.node = self_;
  hello.config_digest = config_digest;
  hello.pid = static_cast<uint32_t>(::getpid());
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  hello.host = host;
  SSIHV_RETURN_IF_ERROR(
      link_.ExchangeHellos(hello, absl::Now() + options_.connect_timeout));
  link_.StartLiveness();
  action_thread_ = std::thread([this] { ActionLoop(); });
  base::NameThread(action_thread_, "vmm-actions");
  return absl::OkStatus();
}

absl::StatusOr<ClockMsg> ClusterNode::FetchClock(absl::Duration* rtt) {
  return link_.RequestClock(rtt);
}

std::vector<uint32_t> ClusterNode::Quiesce(absl::Duration timeout) {
  std::vector<uint32_t> silent = link_.Quiesce(timeout);
  if (silent.empty()) return silent;
  Log(LogLevel::kWarning, "ssihv-vmm: node ", self_, ": stopping without ",
      "hearing that nodes ", absl::StrJoin(silent, ", "),
      " stopped their vCPUs (", absl::FormatDuration(timeout),
      "); their faults in flight here fail");
  return silent;
}

void ClusterNode::Stop() {
  {
    std::lock_guard<std::mutex> lock(action_mu_);
    action_stop_ = true;
  }
  action_cv_.notify_all();
  if (action_thread_.joinable()) action_thread_.join();
  link_.StopLiveness();
  if (dsm_) dsm_->Stop();
}

void ClusterNode::OnDeliver(uint32_t from, const DeliverMsg& m) {
  if (kvm::UserIrqchip* chip = chip_.load()) chip->Deliver(m.delivery, m.vcpus);
}

void ClusterNode::OnIoApicEoi(uint32_t from, uint8_t vector) {
  kvm::UserIrqchip* chip = chip_.load();
  if (self_ == 0 && chip != nullptr) chip->EoiToIoApic(vector);
}

void ClusterNode::OnRouting(uint32_t from, const RoutingMsg& m) {
  if (kvm::UserIrqchip* chip = chip_.load()) chip->SetRouting(m.vcpu, m.entry);
}

absl::StatusOr<std::vector<uint8_t>> ClusterNode::OnIo(uint32_t from,
                                                       const IoMsg& m) {
  kvm::Bus* bus = m.space == IoSpace::kPio ? pio_ : mmio_;
  if (self_ != 0 || bus == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", self_, " has no devices (they are on node 0)"));
  }
  if (m.is_write) {
    bus->Write(m.addr, absl::MakeConstSpan(m.data.data(), m.size));
    return std::vector<uint8_t>();
  }
  std::vector<uint8_t> data(m.size);
  bus->Read(m.addr, absl::MakeSpan(data));
  return data;
}

absl::StatusOr<ClockMsg> ClusterNode::OnClockRequest() {
  if (self_ != 0 || !hooks_.clock) {
    return absl::FailedPreconditionError("the guest clock is node 0's");
  }
  SSIHV_ASSIGN_OR_RETURN(ClockMsg c, hooks_.clock());
  c.boot_id = HostBootId();
  return c;
}

void ClusterNode::OnStop(uint32_t from, const StopMsg& m) {
  hooks_.remote_stop(from, m);
}

// On the failure detector's thread: fence the node in the DSM (its pages
// whose copies survive move to survivors; the others are lost), then stop.
void ClusterNode::OnPeerLost(uint32_t node, const std::string& why) {
  Log(LogLevel::kError, "ssihv-vmm: node ", node, " is lost: ", why);
  const absl::Time start = absl::Now();
  absl::Status st = dsm_->DeclareDead(node);
  if (!st.ok()) {
    Log(LogLevel::kError, "ssihv-vmm: declaring node ", node,
        " dead: ", st.message());
  }
  const uint64_t lost = LostPages();
  Log(LogLevel::kInfo, "ssihv-vmm: node ", node, " fenced in ",
      absl::FormatDuration(absl::Now() - start), "; ", lost,
      " pages lost with it");
  hooks_.peer_lost(node, why, lost);
}

void ClusterNode::OnLinkError(const absl::Status& error) {
  hooks_.error(error);
}

void ClusterNode::OnAction(uint32_t from, const ActionMsg& m,
                           rdmax::ReplyToken reply) {
  {
    std::lock_guard<std::mutex> lock(action_mu_);
    if (!action_stop_) {
      Log(LogLevel::kInfo, "ssihv-vmm: node ", self_, ": ",
          ActionKindName(m.action), " requested by node ", from);
      actions_.emplace_back(m.action, reply);
      action_cv_.notify_all();
      return;
    }
  }
  link_.ReplyAction(reply, absl::UnavailableError(absl::StrCat(
                               "node ", self_, " is shutting down")));
}

void ClusterNode::ActionLoop() {
  std::unique_lock<std::mutex> lock(action_mu_);
  for (;;) {
    action_cv_.wait(lock, [this] { return action_stop_ || !actions_.empty(); });
    if (actions_.empty()) return;  // stopping, nothing left to answer
    auto [action, reply] = actions_.front();
    actions_.pop_front();
    lock.unlock();
    if (action == ActionKind::kStop) {
      // Answer first: the stop tears the transport down soon after.
      link_.ReplyAction(reply, absl::OkStatus());
      if (hooks_.action) (void)hooks_.action(action);
    } else {
      link_.ReplyAction(
          reply, hooks_.action ? hooks_.action(action)
                               : absl::UnimplementedError("no action hook"));
    }
    lock.lock();
  }
}

uint64_t ClusterNode::LostPages() const { return dsm_->PagesLost(); }

nlohmann::json ClusterNode::StatsJson() const {
  nlohmann::json j = dsm_->StatsJson();
  j["link"] = link_.StatsJson();
  j["remote_deliveries"] = apic_bus_.remote_deliveries();
  // The transport's traffic with each peer (the API's ssihv_transport_*).
  nlohmann::json traffic = nlohmann::json::array();
  const std::vector<rdmax::PeerTransportStats> t = TrafficStats();
  for (uint32_t n = 0; n < t.size(); ++n) {
    if (n == self_) continue;
    traffic.push_back({{"node", n},
                       {"messages_sent", t[n].messages_sent},
                       {"messages_received", t[n].messages_received},
                       {"bytes_sent", t[n].bytes_sent},
                       {"bytes_received", t[n].bytes_received},
                       {"errors", t[n].errors}});
  }
  j["traffic"] = std::move(traffic);
  return j;
}

}  // namespace ssihv::vmm
