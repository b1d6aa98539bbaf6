#include "vmm.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "ssihv/acpi/tables.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/kvm/legacy_devices.h"
#include "ssihv/kvm/x86_vcpu.h"
#include "ssihv/pager/stats.h"

namespace ssihv::vmm {
namespace {

int64_t SteadyNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             t.time_since_epoch())
      .count();
}

using kvm::E820Entry;
using kvm::E820Type;
using kvm::StopReason;

// How long a stopped node keeps serving peers whose vCPUs have not stopped
// yet (ClusterNode::Quiesce). Their faults take milliseconds; a peer that
// needs seconds is stuck, and its own failure detector stops it.
constexpr absl::Duration kStopBarrierTimeout = absl::Seconds(10);

// The BIOS window below the reset-vector stub (x86_boot.h).
constexpr uint64_t kBiosWindowSize = kvm::kResetVector - kvm::kBiosWindowStart;
// With KVM's irqchip, APIC IDs from 255 on would need x2APIC routing through
// interrupt remapping or KVM's extended destination IDs in its I/O APIC,
// which this VMM does not set up: --irqchip user has no such limit.
constexpr uint32_t kMaxXapicVcpus = 254;
// An APIC ID from 255 on has no xAPIC form: the MADT describes it with an
// x2APIC structure, which Linux takes only when its APIC is already in
// x2APIC mode at boot, as a firmware leaves it for so many CPUs.
constexpr uint32_t kFirstX2apicOnlyId = 255;

// The ACPI options matching what this VMM emulates. A guest across
// processes sees the other nodes' memory as hot-pluggable: it can go away
// with its node, and the kernel's decompressor then places the kernel in
// node 0's memory, with the boot CPU that keeps time (docs/VMM.md, "Where
// the kernel lands").
acpi::AcpiOptions VmmAcpiOptions(bool user_irqchip, bool across_processes) {
  acpi::AcpiOptions o;
  o.srat.remote_nodes_hot_pluggable = across_processes;
  // KVM's default GSI routing sends the PIT (ISA IRQ 0) to I/O APIC pin 0,
  // so the MADT keeps ISA IRQs identity-mapped rather than the PC's 0 -> 2
  // (the user irqchip's I/O APIC maps them the same way).
  o.madt.interrupt_overrides.clear();
  // The user irqchip has no 8259 PIC.
  o.madt.pcat_compat = !user_irqchip;
  return o;
}

kvm::VmOptions KvmVmOptions(Irqchip irqchip) {
  if (irqchip == Irqchip::kKernel) return kvm::VmOptions{};
  kvm::VmOptions o;
  o.irqchip = false;
  o.pit = false;
  o.user_apic_msrs = true;
  return o;
}

absl::Status WithContext(absl::Status st, absl::string_view what) {
  if (st.ok()) return st;
  return absl::Status(st.code(), absl::StrCat(what, ": ", st.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Vmm>> Vmm::Create(
    const VmmOptions& options, const cluster::ClusterConfig& config) {
  std::unique_ptr<Vmm> vmm = Prepare(config);
  SSIHV_RETURN_IF_ERROR(vmm->Build(options));
  return vmm;
}

absl::Status Vmm::Build(const VmmOptions& options) {
  absl::Status st = BuildSteps(options);
  if (st.ok()) {
    // Every member the API reads is set: publish them.
    phase_.store(VmmPhase::kReady, std::memory_order_release);
  } else {
    build_error_ = std::string(st.message());
    phase_.store(VmmPhase::kFailed, std::memory_order_release);
  }
  return st;
}

absl::Status Vmm::BuildSteps(const VmmOptions& options) {
  const uint32_t vcpus = layout_.total_vcpus();
  if (options.irqchip == Irqchip::kKernel && vcpus > kMaxXapicVcpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", vcpus,
                     " vCPUs; with --irqchip kernel this VMM supports "
                     "at most ",
                     kMaxXapicVcpus,
                     " (xAPIC IDs); --irqchip user has no such "
                     "limit (x2APIC)"));
  }
  SSIHV_ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open());
  kvm_ = std::make_unique<kvm::Kvm>(std::move(kvm));
  if (layout_.total_vcpus() > kvm_->max_vcpus()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", layout_.total_vcpus(),
                     " vCPUs; this host's KVM allows ", kvm_->max_vcpus()));
  }
  SSIHV_ASSIGN_OR_RETURN(kvm::Vm vm,
                         kvm_->CreateVm(KvmVmOptions(options.irqchip)));
  vm_ = std::make_unique<kvm::Vm>(std::move(vm));
  if (options.node) SSIHV_RETURN_IF_ERROR(CreateNode(options));
  if (options.irqchip == Irqchip::kUser) {
    kvm::UserIrqchip::Options o;
    o.num_vcpus = vcpus;
    o.x2apic = vcpus > kFirstX2apicOnlyId;
    Vmm* raw = this;
    if (node_) {
      o.bus = node_->apic_bus();
      // Only this node's vCPUs change their APICs here; the others learn it.
      o.on_routing_change = [raw](uint32_t v, const kvm::ApicRoutingEntry& e) {
        if (raw->IsLocalVcpu(v)) raw->node_->BroadcastRouting(RoutingMsg{v, e});
      };
    }
    apic_ = std::make_unique<kvm::UserIrqchip>(std::move(o));
    if (node_) node_->set_chip(apic_.get());
  }
  SSIHV_RETURN_IF_ERROR(SetUpMemory(options));
  if (loads_guest()) SSIHV_RETURN_IF_ERROR(LoadGuest(options));
  SSIHV_RETURN_IF_ERROR(SetUpVcpus());
  if (node_ && node_->self() != 0) {
    SSIHV_RETURN_IF_ERROR(SyncClock());
  }
  SSIHV_RETURN_IF_ERROR(SetUpDevices());
  if (options.trace_io) {
    pio_.set_trace(true, kvm::kCom1Port, kvm::kCom1Port + kvm::kUartPorts);
    mmio_.set_trace(true);
  }
  // Made here, not in Run: the API reads the vCPUs' states from kReady on.
  std::vector<const kvm::Vcpu*> threads;
  for (const kvm::Vcpu& v : vcpus_) threads.push_back(&v);
  threads_ = std::make_unique<kvm::VcpuThreads>(threads, pio_, mmio_, stop_,
                                                apic_.get());
  return absl::OkStatus();
}

Vmm::~Vmm() {
  if (threads_) {
    stop_.Request(StopReason::kStopRequested);
    threads_->Join();
  }
  // No more callbacks from peers into the irqchip or the devices.
  if (node_) node_->Stop();
  if (console_) console_->Stop();
}

// A fault that failed (a page lost with a node, a pager error) holds its
// thread until the pager releases it: the loader's in Build, a vCPU's inside
// KVM_RUN (an uninterruptible wait). So a stop releases them, once guest
// memory exists. Running vCPUs are kicked first: they leave KVM_RUN on the
// pending kick before the guest runs on the zeros a release maps.
void Vmm::ReleaseFaultsOnStop() {
  stop_.AddListener([this] {
    if (vcpus_started_.load(std::memory_order_acquire)) threads_->KickAll();
    if (node_) node_->ReleaseFailedFaults();
    if (ram_) ram_->ReleaseFailedFaults();
  });
}

absl::Status Vmm::SetUpMemory(const VmmOptions& options) {
  if (node_) {
    ReleaseFaultsOnStop();
    // All of guest RAM, every node's, through the DSM: the home of a page is
    // the node whose range holds it. KVM's own accesses fault there too.
    for (const cluster::GpaRange& r : layout_.ranges()) {
      SSIHV_RETURN_IF_ERROR(vm_->AddMemory(r.gpa, r.size,
                                           node_->ram() + r.ram_offset,
                                           node_->ram_owner())
                                .status());
    }
    // Waits for every peer and compares configs before any page moves.
    SSIHV_RETURN_IF_ERROR(node_->Start(ConfigDigest(config_)));
    phase_.store(VmmPhase::kBuilding, std::memory_order_release);
    return absl::OkStatus();
  }
  SSIHV_ASSIGN_OR_RETURN(
      ram_, GuestRam::Create(
                layout_, options.pager_threads, options.fault_around_kib * 1024,
                [this](const absl::Status& st) {
                  stop_.Request(StopReason::kError, WithContext(st, "pager"));
                }));
  ReleaseFaultsOnStop();
  for (const cluster::GpaRange& r : layout_.ranges()) {
    SSIHV_RETURN_IF_ERROR(
        vm_->AddMemory(r.gpa, r.size, ram_->HostOf(r), ram_->owner()).status());
  }
  // The pager serves every first touch from now on, the loader's included.
  return ram_->Start();
}

absl::Status Vmm::LoadGuest(const VmmOptions& options) {
  absl::StatusOr<std::string> kernel = base::ReadFile(options.kernel);
  if (!kernel.ok()) return WithContext(kernel.status(), "--kernel");
  absl::StatusOr<std::string> initrd = base::ReadFile(options.initrd);
  if (!initrd.ok()) return WithContext(initrd.status(), "--initrd");
  if (initrd->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--initrd ", options.initrd, ": empty file"));
  }

  // ACPI tables: in the BIOS window with the RSDP when they fit, else in
  // RAM at the top of the first stretch below the hole, marked ACPI in e820.
  acpi::AcpiOptions acpi_options =
      VmmAcpiOptions(user_irqchip(), node_ != nullptr);
  SSIHV_ASSIGN_OR_RETURN(size_t size,
                         acpi::AcpiTablesSize(config_, acpi_options, true));
  acpi::Placement placement;
  std::vector<E820Entry> carve;
  if (size > kBiosWindowSize) {
    const cluster::GpaRange& first = layout_.ranges().front();
    uint64_t low_end = first.end();
    for (const cluster::GpaRange& r : layout_.ranges()) {
      if (r.gpa == low_end) low_end = r.end();
    }
    uint64_t bytes =
        (size + cluster::kPageSize - 1) & ~(cluster::kPageSize - 1);
    placement.rsdp_gpa = kvm::kBiosWindowStart;
    placement.tables_gpa = (low_end - bytes) & ~(cluster::kPageSize - 1);
    carve.push_back({placement.tables_gpa, bytes, E820Type::kAcpi});
  }
  SSIHV_ASSIGN_OR_RETURN(
      acpi::AcpiTables tables,
      acpi::BuildAcpiTables(config_, acpi_options, placement));
  const kvm::GuestMemory& memory = vm_->memory();
  SSIHV_RETURN_IF_ERROR(memory.Write(tables.gpa, tables.bytes));
  SSIHV_RETURN_IF_ERROR(memory.Write(tables.rsdp_gpa, tables.rsdp));
  acpi_gpa_ = tables.gpa;
  acpi_bytes_ = tables.bytes.size();

  kvm::LinuxBootSpec spec;
  SSIHV_ASSIGN_OR_RETURN(spec.e820, kvm::BuildE820(layout_, carve));
  spec.kernel_image = absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(kernel->data()), kernel->size());
  spec.initrd = absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(initrd->data()), initrd->size());
  spec.cmdline = options.cmdline;
  if (options.guest_tuning && node_) {
    const std::string tuning =
        GuestTuningArgs(options.cmdline, layout_.total_vcpus());
    spec.cmdline = WithKernelParams(options.cmdline, tuning);
    base::Log(base::LogLevel::kInfo, "ssihv-vmm: node 0: --guest-tuning: ",
              tuning.empty()
                  ? "nothing to add (the command line sets each parameter)"
                  : absl::StrCat("appended", tuning));
  }
  spec.acpi_rsdp_addr = tables.rsdp_gpa;
  absl::StatusOr<kvm::LinuxBootInfo> boot = kvm::LoadLinux(memory, spec);
  if (!boot.ok()) {
    return WithContext(boot.status(),
                       absl::StrCat("--kernel ", options.kernel));
  }
  boot_ = *boot;
  if (!node_) {
    // Remembered so that an early death can be told apart from lost memory.
    load_check_.Record(memory, 0, 0x30000);
    load_check_.Record(memory, boot_.kernel_addr, 4 << 20);
    load_check_.Record(memory, boot_.initrd_addr, boot_.initrd_size);
  }
  return absl::OkStatus();
}

absl::Status Vmm::SetUpVcpus() {
  for (uint32_t i = 0; i < layout_.total_vcpus(); ++i) {
    if (!IsLocalVcpu(i)) continue;  // another node's process runs it
    SSIHV_ASSIGN_OR_RETURN(kvm::Vcpu vcpu, vm_->CreateVcpu(i));
    kvm::VcpuTopology topo{.apic_id = i, .node = layout_.NodeOfVcpu(i)};
    SSIHV_RETURN_IF_ERROR(WithContext(
        kvm::ConfigureX86Vcpu(vcpu, vm_->supported_cpuid(), topo,
                              user_irqchip() ? kvm::IrqchipKind::kUser
                                             : kvm::IrqchipKind::kKernel),
        absl::StrCat("vCPU ", i)));
    // vCPU 0 is the boot processor; the others wait for the guest's
    // INIT/SIPI (in KVM's LAPIC, or in the user irqchip before their thread
    // ever enters KVM_RUN).
    if (i == 0) SSIHV_RETURN_IF_ERROR(kvm::SetupLinuxBootVcpu(vcpu, boot_));
    if (vcpus_.empty()) {
      absl::StatusOr<uint64_t> offset = vcpu.GetTscOffset();
      if (offset.ok()) clock_tsc_offset_ = *offset;
    }
    vcpus_.push_back(std::move(vcpu));
  }
  clock_ready_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status Vmm::SetUpDevices() {
  if (!loads_guest()) {
    // No console and no devices here: node 0 has them all.
    return node_->ForwardDevices(pio_, mmio_);
  }
  if (node_) node_->set_device_buses(&pio_, &mmio_);
  SSIHV_ASSIGN_OR_RETURN(console_, Console::Create(0, 1));
  Console* console = console_.get();
  uart_ = std::make_shared<kvm::Uart16550>(
      [console](uint8_t b) { console->Output(b); },
      [this](bool level) {
        absl::Status st = SetIrqLine(kvm::kCom1Irq, level);
        if (!st.ok())
          stop_.Request(StopReason::kError, WithContext(st, "COM1 IRQ"));
      });
  if (apic_) SSIHV_RETURN_IF_ERROR(apic_->RegisterIoApic(mmio_));
  auto reset = [this] { stop_.Request(StopReason::kReset); };
  auto power_off = [this] { stop_.Request(StopReason::kPowerOff); };
  const acpi::AcpiOptions acpi_options =
      VmmAcpiOptions(user_irqchip(), node_ != nullptr);
  const uint64_t sleep_port = acpi_options.fadt.sleep_control_register->address;
  if (acpi_options.fadt.sleep_status_register->address != sleep_port + 1) {
    return absl::InternalError("ACPI sleep status must follow sleep control");
  }
  SSIHV_RETURN_IF_ERROR(pio_.Register(kvm::kCom1Port, kvm::kUartPorts, uart_));
  SSIHV_RETURN_IF_ERROR(pio_.Register(kvm::kI8042DataPort, 5,
                                      std::make_shared<kvm::I8042>(reset)));
  SSIHV_RETURN_IF_ERROR(
      pio_.Register(kvm::kCmosIndexPort, 2, std::make_shared<kvm::CmosRtc>()));
  SSIHV_RETURN_IF_ERROR(pio_.Register(
      kvm::kResetControlPort, 1, std::make_shared<kvm::ResetControl>(reset)));
  SSIHV_RETURN_IF_ERROR(
      pio_.Register(sleep_port, 2,
                    std::make_shared<kvm::AcpiSleepControl>(
                        acpi_options.dsdt.s5_sleep_type, power_off)));
  return pio_.Register(kvm::kPostCodePort, 1,
                       std::make_shared<kvm::PostCodePort>());
}

absl::Status Vmm::SetIrqLine(uint32_t gsi, bool level) {
  if (apic_) {
    apic_->SetIrq(gsi, level);
    return absl::OkStatus();
  }
  return vm_->SetIrqLine(gsi, level);
}

void Vmm::Stop(StopReason reason, absl::Status why) {
  stop_.Request(reason, std::move(why));
}

kvm::StopEvent Vmm::Run() {
  if (console_) {
    absl::Status st = console_->Start(uart_.get(), [this] {
      Stop(StopReason::kStopRequested,
           absl::CancelledError("console escape (Ctrl-A x)"));
    });
    if (!st.ok()) stop_.Request(StopReason::kError, st);
  }
  // Whatever stops the guest here stops it everywhere.
  if (node_) stop_.AddListener([this] { TellPeersWeStopped(); });
  stop_.AddListener([this] {
    phase_.store(VmmPhase::kStopping, std::memory_order_release);
    stop_requested_ns_.store(SteadyNs(std::chrono::steady_clock::now()),
                             std::memory_order_release);
  });
  const auto start = std::chrono::steady_clock::now();
  if (!stop_.requested()) {
    phase_.store(VmmPhase::kRunning, std::memory_order_release);
  }
  vcpus_started_.store(true, std::memory_order_release);
  if (node_) {
    // Where a launcher or an operator sees that this node joined the guest.
    base::Log(base::LogLevel::kInfo, "ssihv-vmm: node ", node_->self(),
              ": running its ", layout_.VcpusOfNode(node_->self()), " vCPU(s)");
  }
  (void)threads_->Start();  // a failure sets the stop latch itself
  event_ = threads_->Join();
  // An action in flight (its answers) finishes before the transport goes.
  { std::lock_guard<std::mutex> lock(action_mu_); }
  if (event_.reason == StopReason::kTripleFault && ram_) {
    load_check_line_ = LoadCheck::Describe(load_check_.Check(vm_->memory()));
  }
  const auto joined = std::chrono::steady_clock::now();
  run_seconds_ = std::chrono::duration<double>(joined - start).count();
  if (const int64_t at = stop_requested_ns_.load(std::memory_order_acquire)) {
    stop_join_seconds_ = static_cast<double>(SteadyNs(joined) - at) / 1e9;
  }
  // Only now: a stopped pager would leave vCPUs blocked, here and, until
  // every peer's vCPUs have stopped too, there.
  if (node_) {
    stop_barrier_silent_ = node_->Quiesce(kStopBarrierTimeout);
    stop_barrier_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - joined)
            .count();
    node_->Stop();
  }
  if (ram_) ram_->Stop();
  if (console_) console_->Stop();
  return event_;
}

}  // namespace ssihv::vmm
