#include "ssihv/kvm/user_irqchip.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace ssihv::kvm {
namespace {

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<uint64_t>(ts.tv_nsec);
}

uint32_t LittleEndian(absl::Span<const uint8_t> data) {
  uint32_t v = 0;
  std::memcpy(&v, data.data(), std::min<size_t>(data.size(), 4));
  return v;
}

}  // namespace

// The I/O APIC's register window as a device on the MMIO bus.
class UserIrqchip::IoApicDevice final : public BusDevice {
 public:
  explicit IoApicDevice(UserIrqchip* chip) : chip_(chip) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());
    if (data.size() > 4) return;
    uint32_t v;
    {
      std::lock_guard<std::mutex> lock(chip_->ioapic_mu_);
      v = chip_->ioapic_.ReadMmio(offset, static_cast<uint32_t>(data.size()));
    }
    std::memcpy(data.data(), &v, data.size());
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    if (data.size() > 4) return;
    std::vector<ApicMessage> out;
    {
      std::lock_guard<std::mutex> lock(chip_->ioapic_mu_);
      chip_->ioapic_.WriteMmio(offset, static_cast<uint32_t>(data.size()),
                               LittleEndian(data), &out);
    }
    chip_->RouteAll(out);
  }

 private:
  UserIrqchip* chip_;
};

UserIrqchip::UserIrqchip(Options options)
    : clock_(options.clock ? std::move(options.clock) : MonotonicNs),
      bus_(options.bus ? options.bus : this),
      on_routing_change_(std::move(options.on_routing_change)) {
  for (uint32_t i = 0; i < options.num_vcpus; ++i) {
    const uint32_t id = i < options.apic_ids.size() ? options.apic_ids[i] : i;
    const bool bsp = i == options.boot_vcpu;
    LocalApic apic(id, bsp, options.x2apic);
    routing_.push_back(apic.routing());
    slots_.push_back(std::make_unique<Slot>(
        std::move(apic),
        bsp ? VcpuActivity::kRunning : VcpuActivity::kWaitForSipi));
  }
}

absl::Status UserIrqchip::RegisterIoApic(Bus& mmio) {
  return mmio.Register(IoApic::kDefaultBase, IoApic::kMmioSize,
                       std::make_shared<IoApicDevice>(this));
}

void UserIrqchip::SetIrq(uint32_t gsi, bool level) {
  std::vector<ApicMessage> out;
  {
    std::lock_guard<std::mutex> lock(ioapic_mu_);
    ioapic_.SetLevel(gsi, level, &out);
  }
  RouteAll(out);
}

void UserIrqchip::RouteAll(const std::vector<ApicMessage>& messages) {
  for (const ApicMessage& m : messages) {
    ioapic_interrupts_.fetch_add(1, std::memory_order_relaxed);
    Route(m, -1);
  }
}

void UserIrqchip::Route(const ApicMessage& message, int64_t source) {
  // Reused per thread: routing must not allocate on every interrupt.
  thread_local std::vector<uint32_t> targets;
  {
    std::shared_lock<std::shared_mutex> lock(routing_mu_);
    ResolveDestinations(message, source, routing_, &targets);
  }
  if (!targets.empty()) bus_->Deliver(DeliveryOf(message), targets);
}

void UserIrqchip::Deliver(const ApicDelivery& delivery,
                          absl::Span<const uint32_t> vcpus) {
  for (uint32_t v : vcpus) {
    if (v >= slots_.size()) continue;
    Slot& s = *slots_[v];
    bool pending;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      pending = s.apic.Accept(delivery);
      if (pending) s.cv.notify_one();
    }
    if (pending) {
      deliveries_.fetch_add(1, std::memory_order_relaxed);
      Kick(v);
    }
  }
}

void UserIrqchip::EoiToIoApic(uint8_t vector) {
  eois_.fetch_add(1, std::memory_order_relaxed);
  std::vector<ApicMessage> out;
  {
    std::lock_guard<std::mutex> lock(ioapic_mu_);
    ioapic_.Eoi(vector, &out);
  }
  RouteAll(out);
}

void UserIrqchip::SetKicker(std::function<void(uint32_t)> kicker) {
  std::unique_lock<std::shared_mutex> lock(kicker_mu_);
  kicker_ = std::move(kicker);
}

void UserIrqchip::Kick(uint32_t vcpu) {
  std::shared_lock<std::shared_mutex> lock(kicker_mu_);
  if (kicker_) kicker_(vcpu);
}

void UserIrqchip::WakeAll() {
  for (auto& s : slots_) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->cv.notify_all();
  }
}

void UserIrqchip::Apply(uint32_t vcpu, const LapicEffects& fx,
                        const ApicRoutingEntry& routing) {
  if (fx.routing_changed) {
    {
      std::unique_lock<std::shared_mutex> lock(routing_mu_);
      routing_[vcpu] = routing;
    }
    if (on_routing_change_) on_routing_change_(vcpu, routing);
  }
  if (fx.ipi) {
    ipis_.fetch_add(1, std::memory_order_relaxed);
    Route(*fx.ipi, vcpu);
  }
  if (fx.eoi_vector) bus_->EoiToIoApic(*fx.eoi_vector);
}

void UserIrqchip::SetRouting(uint32_t vcpu, const ApicRoutingEntry& entry) {
  std::unique_lock<std::shared_mutex> lock(routing_mu_);
  if (vcpu < routing_.size()) routing_[vcpu] = entry;
}

// --- The vCPU side ---

bool UserIrqchip::Wakeable(const Slot& s) const {
  const LocalApic& a = s.apic;
  if (a.init_pending()) return true;
  switch (s.activity) {
    case VcpuActivity::kRunning:
      return true;
    case VcpuActivity::kWaitForSipi:
      return a.sipi_pending();
    case VcpuActivity::kHalted:
      // HLT ends with an NMI, or an interrupt the CPU would take: with
      // IF = 0 (cli; hlt) only NMI and INIT get through.
      return a.nmi_pending() || (s.halt_if && a.PendingVector() >= 0);
  }
  return true;
}

EntryPlan UserIrqchip::PlanEntry(uint32_t vcpu, bool can_inject) {
  Slot& s = *slots_[vcpu];
  EntryPlan plan;
  LapicEffects fx;
  ApicRoutingEntry routing;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    LocalApic& a = s.apic;
    if (a.AdvanceTimer(Now())) {
      timer_interrupts_.fetch_add(1, std::memory_order_relaxed);
    }
    if (a.TakeInit()) {
      a.Init(&fx);
      if (a.bsp()) {
        plan.reset_machine = true;
      } else {
        plan.init = true;
        s.activity = VcpuActivity::kWaitForSipi;
      }
    }
    if (s.activity == VcpuActivity::kWaitForSipi) {
      plan.sipi = a.TakeSipi();
      if (plan.sipi) s.activity = VcpuActivity::kRunning;
    } else {
      a.TakeSipi();  // a SIPI outside wait-for-SIPI is ignored (SDM 9.4.4)
    }
    if (s.activity == VcpuActivity::kHalted && Wakeable(s)) {
      s.activity = VcpuActivity::kRunning;
    }
    if (s.activity != VcpuActivity::kRunning) {
      plan.wait = true;
    } else {
      plan.nmi = a.TakeNmi();
      if (can_inject) plan.vector = a.AcknowledgeInterrupt();
      plan.want_window = a.PendingVector() >= 0;
    }
    plan.cr8 = a.cr8();
    plan.timer_deadline = a.timer_deadline();
    routing = a.routing();
  }
  Apply(vcpu, fx, routing);
  return plan;
}

void UserIrqchip::Wait(uint32_t vcpu, const std::function<bool()>& stop) {
  Slot& s = *slots_[vcpu];
  std::unique_lock<std::mutex> lock(s.mu);
  while (!stop()) {
    const uint64_t now = Now();
    if (s.apic.AdvanceTimer(now)) {
      timer_interrupts_.fetch_add(1, std::memory_order_relaxed);
    }
    if (Wakeable(s)) return;
    const std::optional<uint64_t> deadline = s.apic.timer_deadline();
    if (deadline && *deadline > now) {
      s.cv.wait_for(lock, std::chrono::nanoseconds(*deadline - now));
    } else {
      s.cv.wait(lock);
    }
  }
}

void UserIrqchip::Halted(uint32_t vcpu, bool interrupts_enabled) {
  Slot& s = *slots_[vcpu];
  std::lock_guard<std::mutex> lock(s.mu);
  s.activity = VcpuActivity::kHalted;
  s.halt_if = interrupts_enabled;
}

void UserIrqchip::SyncCr8(uint32_t vcpu, uint8_t cr8) {
  Slot& s = *slots_[vcpu];
  LapicEffects fx;
  ApicRoutingEntry routing;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    fx.routing_changed = s.apic.SetCr8(cr8);
    routing = s.apic.routing();
  }
  Apply(vcpu, fx, routing);
}

bool UserIrqchip::ApicMmio(uint32_t vcpu, uint64_t gpa, bool is_write,
                           absl::Span<uint8_t> data) {
  Slot& s = *slots_[vcpu];
  LapicEffects fx;
  ApicRoutingEntry routing;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    const std::optional<uint64_t> base = s.apic.mmio_base();
    if (!base || gpa < *base || gpa - *base >= apic::kPageSize) return false;
    const uint32_t offset = static_cast<uint32_t>(gpa - *base);
    const uint32_t len = static_cast<uint32_t>(data.size());
    if (is_write) {
      s.apic.WriteMmio(offset, len, LittleEndian(data), Now(), &fx);
    } else {
      std::memset(data.data(), 0, data.size());
      const uint32_t v = s.apic.ReadMmio(offset, len, Now());
      std::memcpy(data.data(), &v, std::min<size_t>(data.size(), 4));
    }
    routing = s.apic.routing();
  }
  Apply(vcpu, fx, routing);
  return true;
}

bool UserIrqchip::IsApicMsr(uint32_t msr) {
  return msr == apic::kMsrApicBase ||
         (msr >= apic::kMsrX2apicFirst && msr <= apic::kMsrX2apicLast);
}

bool UserIrqchip::ReadMsr(uint32_t vcpu, uint32_t msr, uint64_t* value) {
  Slot& s = *slots_[vcpu];
  std::lock_guard<std::mutex> lock(s.mu);
  if (msr == apic::kMsrApicBase) {
    *value = s.apic.apic_base();
    return true;
  }
  return s.apic.ReadMsr(msr, Now(), value);
}

bool UserIrqchip::WriteMsr(uint32_t vcpu, uint32_t msr, uint64_t value) {
  Slot& s = *slots_[vcpu];
  LapicEffects fx;
  ApicRoutingEntry routing;
  bool ok;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    ok = msr == apic::kMsrApicBase ? s.apic.WriteApicBase(value, &fx)
                                   : s.apic.WriteMsr(msr, value, Now(), &fx);
    routing = s.apic.routing();
  }
  Apply(vcpu, fx, routing);
  return ok;
}

VcpuActivity UserIrqchip::activity(uint32_t vcpu) {
  Slot& s = *slots_[vcpu];
  std::lock_guard<std::mutex> lock(s.mu);
  return s.activity;
}

std::string UserIrqchip::DescribeVcpu(uint32_t vcpu) {
  Slot& s = *slots_[vcpu];
  std::lock_guard<std::mutex> lock(s.mu);
  const char* activity = s.activity == VcpuActivity::kRunning ? "running"
                         : s.activity == VcpuActivity::kHalted
                             ? (s.halt_if ? "halted" : "halted (IF=0)")
                             : "waiting for SIPI";
  return std::string(activity) + ", " + s.apic.Describe(Now());
}

std::vector<ApicRoutingEntry> UserIrqchip::routing_table() const {
  std::shared_lock<std::shared_mutex> lock(routing_mu_);
  return routing_;
}

IrqchipStats UserIrqchip::stats() const {
  IrqchipStats st;
  st.ipis = ipis_.load(std::memory_order_relaxed);
  st.ioapic_interrupts = ioapic_interrupts_.load(std::memory_order_relaxed);
  st.deliveries = deliveries_.load(std::memory_order_relaxed);
  st.eois_to_ioapic = eois_.load(std::memory_order_relaxed);
  st.timer_interrupts = timer_interrupts_.load(std::memory_order_relaxed);
  return st;
}

}  // namespace ssihv::kvm
