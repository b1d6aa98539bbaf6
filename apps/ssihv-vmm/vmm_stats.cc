// Statistics of a Vmm: JSON (--stats-json) and the lines printed when it
// stops; with --node, this node's share of the guest and what it exchanged
// with the others.
#include <linux/kvm.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ssihv/pager/stats.h"
#include "vmm.h"

namespace ssihv::vmm {

std::string Vmm::DumpVcpus() const {
  std::string out;
  for (const kvm::Vcpu& v : vcpus_) {
    absl::StrAppend(&out, v.DumpState());
    if (apic_) absl::StrAppend(&out, apic_->DescribeVcpu(v.id()), "\n");
  }
  return out;
}

nlohmann::json Vmm::StatsJson() const {
  nlohmann::json j;
  j["stop"] = {
      {"reason", kvm::StopReasonName(event_.reason)},
      {"vcpu", event_.vcpu},
      {"error", event_.status.ok() ? "" : std::string(event_.status.message())},
      {"guest_panicked", guest_panicked()}};
  if (!load_check_line_.empty()) j["stop"]["loader_pages"] = load_check_line_;
  j["stop"]["join_seconds"] = stop_join_seconds_;
  if (node_) {
    j["stop"]["barrier_seconds"] = stop_barrier_seconds_;
    j["stop"]["barrier_silent"] = stop_barrier_silent_;
  }
  j["run_seconds"] = run_seconds_;
  j["vcpus"] = layout_.total_vcpus();
  j["vendor"] = kvm::CpuVendorName(kvm_->vendor());
  // KVM's master clock at the end of the run: without it KVM rewrites each
  // vCPU's kvmclock at every entry (docs/VMM.md, "Guest time").
  if (absl::StatusOr<kvm_clock_data> c = vm_->GetClock(); c.ok()) {
    // "guest_s": the guest's clock at the end, since the VM was created;
    // pauses do not count (FreezeGuestClock).
    j["kvm_clock"] = {{"tsc_stable", (c->flags & KVM_CLOCK_TSC_STABLE) != 0},
                      {"guest_s", static_cast<double>(c->clock) / 1e9}};
  }
  if (threads_) {
    kvm::RunLoopStats s = threads_->TotalStats();
    j["exits"] = {{"total", s.exits},     {"io", s.io_exits},
                  {"mmio", s.mmio_exits}, {"signal", s.signal_exits},
                  {"hlt", s.hlt_exits},   {"irq_window", s.irq_window_exits},
                  {"msr", s.msr_exits},   {"apic_mmio", s.apic_mmio_exits}};
    j["injected"] = {{"interrupts", s.interrupts_injected},
                     {"nmis", s.nmis_injected}};
  }
  j["irqchip"] = user_irqchip() ? "user" : "kernel";
  if (apic_) {
    const kvm::IrqchipStats a = apic_->stats();
    j["apic"] = {{"ipis", a.ipis},
                 {"ioapic_interrupts", a.ioapic_interrupts},
                 {"deliveries", a.deliveries},
                 {"eois_to_ioapic", a.eois_to_ioapic},
                 {"timer_interrupts", a.timer_interrupts}};
  }
  j["unclaimed_io"] = {{"pio", pio_.unclaimed_accesses()},
                       {"mmio", mmio_.unclaimed_accesses()}};
  j["boot"] = {{"protocol", absl::StrFormat("%d.%02d", boot_.protocol >> 8,
                                            boot_.protocol & 0xff)},
               {"kernel_addr", boot_.kernel_addr},
               {"initrd_addr", boot_.initrd_addr},
               {"initrd_size", boot_.initrd_size},
               {"acpi_addr", acpi_gpa_},
               {"acpi_bytes", acpi_bytes_}};
  if (node_) {
    NodeStatsJson(j);
    return j;
  }
  j["pager"] = pager::ToJson(ram_->Stats());
  j["pager"]["pages_filled_ahead"] = ram_->PagesFilledAhead();
  std::vector<uint64_t> faults = ram_->FaultsPerRange();
  nlohmann::json nodes = nlohmann::json::array();
  for (uint32_t n = 0; n < layout_.num_nodes(); ++n) {
    nlohmann::json node = {
        {"id", n}, {"faults", 0}, {"ranges", nlohmann::json::array()}};
    uint64_t total = 0;
    for (size_t i = 0; i < ram_->ranges().size(); ++i) {
      const cluster::GpaRange& r = ram_->ranges()[i];
      if (r.node != n) continue;
      node["ranges"].push_back(
          {{"gpa", r.gpa}, {"size", r.size}, {"faults", faults[i]}});
      total += faults[i];
    }
    node["faults"] = total;
    nodes.push_back(node);
  }
  j["nodes"] = nodes;
  return j;
}

std::string Vmm::StatsText() const {
  std::string out =
      absl::StrFormat("ssihv-vmm: %s after %.2f s",
                      kvm::StopReasonName(event_.reason), run_seconds_);
  if (event_.vcpu >= 0) absl::StrAppend(&out, " (vCPU ", event_.vcpu, ")");
  if (node_) {
    absl::StrAppend(&out, NodeStatsText());
  } else {
    absl::StrAppend(&out, PagerStatsText());
  }
  absl::StrAppend(&out, ExitStatsText());
  if (!load_check_line_.empty()) {
    absl::StrAppend(&out, "\nssihv-vmm: after the triple fault, ",
                    load_check_line_);
  }
  return out;
}

std::string Vmm::PagerStatsText() const {
  pager::PagerStats p = ram_->Stats();
  std::string out;
  absl::StrAppendFormat(&out,
                        "\nssihv-vmm: pager: %d faults, service p50 %.1f us, "
                        "p99 %.1f us, max %.1f us; %d pages filled ahead\n",
                        p.total_faults(), p.all.p50_us, p.all.p99_us,
                        p.all.max_us, ram_->PagesFilledAhead());
  std::vector<uint64_t> faults = ram_->FaultsPerRange();
  absl::StrAppend(&out, "ssihv-vmm: pager faults per node:");
  for (uint32_t n = 0; n < layout_.num_nodes(); ++n) {
    uint64_t total = 0;
    for (size_t i = 0; i < faults.size(); ++i) {
      if (ram_->ranges()[i].node == n) total += faults[i];
    }
    absl::StrAppend(&out, " node", n, "=", total);
  }
  return out;
}

std::string Vmm::ExitStatsText() const {
  std::string out;
  if (threads_) {
    kvm::RunLoopStats s = threads_->TotalStats();
    absl::StrAppendFormat(&out, "\nssihv-vmm: vCPU exits: %d (io %d, mmio %d)",
                          s.exits, s.io_exits, s.mmio_exits);
    if (apic_) {
      const kvm::IrqchipStats a = apic_->stats();
      absl::StrAppendFormat(
          &out,
          "\nssihv-vmm: user irqchip: %d interrupts injected (timer %d, "
          "IPIs %d, I/O APIC %d), %d NMIs; exits: hlt %d, msr %d, "
          "apic mmio %d, irq window %d",
          s.interrupts_injected, a.timer_interrupts, a.ipis,
          a.ioapic_interrupts, s.nmis_injected, s.hlt_exits, s.msr_exits,
          s.apic_mmio_exits, s.irq_window_exits);
    }
  }
  return out;
}

void Vmm::NodeStatsJson(nlohmann::json& j) const {
  const uint32_t self = node_->self();
  j["node"] = self;
  nlohmann::json local = nlohmann::json::array();
  for (const kvm::Vcpu& v : vcpus_) local.push_back(v.id());
  j["local_vcpus"] = local;
  j["pager"] = pager::ToJson(node_->PagerStatistics());
  j["dsm"] = node_->StatsJson();
}

std::string Vmm::NodeStatsText() const {
  const pager::PagerStats p = node_->PagerStatistics();
  auto kind = [&p](pager::FaultKind k) {
    return p.faults[static_cast<size_t>(k)];
  };
  const uint64_t remote = kind(pager::FaultKind::kRemoteRead) +
                          kind(pager::FaultKind::kRemoteWrite) +
                          kind(pager::FaultKind::kUpgrade);
  std::string out;
  absl::StrAppendFormat(&out, "\nssihv-vmm: node %d ran vCPUs", node_->self());
  for (const kvm::Vcpu& v : vcpus_) absl::StrAppend(&out, " ", v.id());
  absl::StrAppendFormat(
      &out,
      "\nssihv-vmm: pager: %d faults (%d local, %d remote or upgrades), "
      "service p50 %.1f us, p99 %.1f us",
      p.total_faults(), p.total_faults() - remote, remote, p.all.p50_us,
      p.all.p99_us);
  // Read refresh and the grant hold (docs/PAGER.md): what each cost or
  // saved this node.
  const nlohmann::json dsm = node_->dsm().StatsJson()["dsm"];
  auto count = [&dsm](const char* key) { return dsm.value(key, uint64_t{0}); };
  absl::StrAppendFormat(
      &out,
      "\nssihv-vmm: read refresh: %d requested, %d used, %d wasted; grant "
      "hold doublings %d (interrupted writers %d); background downgrades "
      "%d (%d useful, %d wasted)",
      count("read_refresh_requests"), count("read_refresh_used"),
      count("read_refresh_wasted"), count("hold_escalations"),
      count("hold_interrupted_writes"), count("background_downgrades"),
      count("background_downgrades_useful"),
      count("background_downgrades_wasted"));
  // Answer lanes (docs/PAGER.md): how many faults took the fast path.
  absl::StrAppendFormat(
      &out,
      "\nssihv-vmm: answer lanes: %d lane calls (%d answered on the lane), "
      "%d requests on the main connection for want of a lane, %d failed; "
      "served %d lane requests (%d answered on the lane); %d frames waited "
      "for a lane answer",
      count("lane_calls"), count("lane_answers_taken"), count("lane_fallbacks"),
      count("lane_failures"), count("lane_requests_served"),
      count("lane_answers_sent"), count("frames_parked"));
  const std::vector<pager::DsmPageTraffic> hot = node_->dsm().HottestPages(5);
  if (!hot.empty()) {
    absl::StrAppend(&out, "\nssihv-vmm: hottest pages homed here:");
    for (const pager::DsmPageTraffic& h : hot) {
      absl::StrAppendFormat(&out, " 0x%x (reads %d, writes %d)", h.gpa, h.reads,
                            h.writes);
    }
  }
  const std::vector<PeerLinkStats> links = node_->LinkStats();
  const std::vector<rdmax::PeerTransportStats> traffic = node_->TrafficStats();
  const std::vector<pager::DsmRequestsServed> served =
      node_->dsm().RequestsServed();
  for (uint32_t n = 0;
       n < links.size() && n < traffic.size() && n < served.size(); ++n) {
    if (n == node_->self()) continue;
    const PeerLinkStats& l = links[n];
    const rdmax::PeerTransportStats& t = traffic[n];
    absl::StrAppendFormat(
        &out,
        "\nssihv-vmm: node %d: interrupts sent %d, received %d; I/O "
        "forwarded %d (mean %.1f us), served %d; its remote faults served "
        "here %d (reads %d); messages sent %d (%d bytes), received %d (%d "
        "bytes), errors %d%s%s",
        n, l.interrupts_sent, l.interrupts_received, l.io_forwarded,
        l.io_forwarded ? l.io_ns_total / 1e3 / l.io_forwarded : 0.0,
        l.io_served, served[n].reads + served[n].writes, served[n].reads,
        t.messages_sent, t.bytes_sent, t.messages_received, t.bytes_received,
        t.errors,
        // Messages its connection's failure kept from leaving (they waited
        // for the detector's verdict: NodeLink::Undelivered).
        l.undelivered ? absl::StrCat("; undelivered ", l.undelivered) : "",
        l.lost ? "; LOST" : "");
  }
  return out;
}

}  // namespace ssihv::vmm
