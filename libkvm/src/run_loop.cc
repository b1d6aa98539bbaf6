#include "ssihv/kvm/run_loop.h"

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kick.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/log.h"
#include "sys/thread_timer.h"

namespace ssihv::kvm {

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kNone:
      return "running";
    case StopReason::kReset:
      return "guest reset";
    case StopReason::kPowerOff:
      return "guest power off";
    case StopReason::kTripleFault:
      return "guest triple fault (reset)";
    case StopReason::kHalted:
      return "guest halted";
    case StopReason::kStopRequested:
      return "stopped by the VMM";
    case StopReason::kError:
      return "error";
    case StopReason::kApiStop:
      return "api stop";
  }
  return "?";
}

bool StopLatch::Request(StopReason reason, absl::Status status, int vcpu) {
  std::vector<std::function<void()>> listeners;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (requested_.load(std::memory_order_relaxed)) {
      base::Log(base::LogLevel::kDebug, "stop already requested; ignoring ",
                StopReasonName(reason), " from vCPU ", vcpu);
      return false;
    }
    event_ = StopEvent{reason, std::move(status), vcpu};
    // Published before the listeners kick anyone, so a vCPU leaving
    // KVM_RUN with EINTR always sees it.
    requested_.store(true, std::memory_order_release);
    listeners = listeners_;
  }
  for (auto& l : listeners) l();
  {
    std::lock_guard<std::mutex> lock(mu_);
    listeners_done_ = true;
  }
  cv_.notify_all();
  return true;
}

void StopLatch::Wait() const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return listeners_done_; });
}

StopEvent StopLatch::event() const {
  std::lock_guard<std::mutex> lock(mu_);
  return event_;
}

void StopLatch::AddListener(std::function<void()> listener) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!requested_.load(std::memory_order_relaxed)) {
      listeners_.push_back(std::move(listener));
      return;
    }
  }
  listener();
}

const char* VcpuRunStateName(VcpuRunState state) {
  switch (state) {
    case VcpuRunState::kNotStarted:
      return "not started";
    case VcpuRunState::kRunning:
      return "running";
    case VcpuRunState::kHalted:
      return "halted";
    case VcpuRunState::kWaitingForSipi:
      return "waiting for SIPI";
    case VcpuRunState::kPaused:
      return "paused";
    case VcpuRunState::kStopped:
      return "stopped";
  }
  return "?";
}

// --- Exit descriptions ---

namespace {

// SVM reports a failed VMRUN as exit code SVM_EXIT_ERR (-1): AMD APM vol. 2,
// 15.5.1 "Basic Operation", the VMRUN consistency checks. KVM copies the
// VMCB's 32-bit exit_code, so user space sees 0xffffffff (seen in the lab,
// Linux 6.1); a 64-bit copy would give ~0. Neither is a VMX exit reason
// (bit 16 of those is always 0).
constexpr uint64_t kSvmExitErr32 = 0xffffffff;
constexpr uint64_t kSvmExitErr64 = ~uint64_t{0};
// VMX sets bit 31 of the exit reason on a failed VM entry (SDM vol. 3,
// "VM-Entry Failures During or After Loading Guest State").
constexpr uint64_t kVmxFailedEntry = uint64_t{1} << 31;

const char* VmxEntryFailureName(uint64_t basic_reason) {
  switch (basic_reason) {
    case 33:
      return "VMX: invalid guest state";
    case 34:
      return "VMX: MSR loading";
    case 41:
      return "VMX: machine-check event";
  }
  return "VMX: failed VM entry";
}

// What KVM reports when VMLAUNCH/VMRESUME itself fails: the VM-instruction
// error number (SDM vol. 3, "VM Instruction Error Numbers").
const char* VmxInstructionErrorName(uint64_t error) {
  switch (error) {
    case 7:
      return "VMX instruction error 7: VM entry with invalid control field(s)";
    case 8:
      return "VMX instruction error 8: VM entry with invalid host-state "
             "field(s)";
  }
  return "VMX instruction error";
}

const char* InternalErrorName(uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
      return "KVM_INTERNAL_ERROR_EMULATION: instruction emulation failed";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      return "KVM_INTERNAL_ERROR_SIMUL_EX: exception while delivering "
             "another exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      return "KVM_INTERNAL_ERROR_DELIVERY_EV: exit while delivering an event";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
      return "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: unexpected VM exit";
  }
  return "unknown suberror";
}

}  // namespace

std::string DescribeFailEntry(const kvm_run& run) {
  const uint64_t reason = run.fail_entry.hardware_entry_failure_reason;
  const char* what = "unknown";
  bool guest_state = false;  // the reason says the vCPU's state is at fault
  if (reason == kSvmExitErr32 || reason == kSvmExitErr64) {
    what = "SVM_EXIT_ERR: VMRUN refused the guest state (consistency checks)";
    guest_state = true;
  } else if ((reason & kVmxFailedEntry) && reason <= 0xffffffff) {
    what = VmxEntryFailureName(reason & 0xffff);
    guest_state = true;
  } else if (reason < 64) {
    what = VmxInstructionErrorName(reason);
  }
  return absl::StrCat("hardware entry failure reason 0x", absl::Hex(reason),
                      " (", what, ") on host CPU ", run.fail_entry.cpu,
                      guest_state ? ": the vCPU state is invalid for VM entry"
                                  : ": VM entry failed");
}

std::string DescribeInternalError(const kvm_run& run) {
  const auto& e = run.internal;
  std::string out = absl::StrCat("suberror ", e.suberror, " (",
                                 InternalErrorName(e.suberror), ")");
  uint32_t ndata = std::min<uint32_t>(e.ndata, 16);
  uint32_t first = 0;
  if (e.suberror == KVM_INTERNAL_ERROR_EMULATION && ndata > 0) {
    // api.rst: for emulation failures the first data word is `flags`; with
    // the instruction-bytes flag the next two hold insn_size and the bytes.
    const auto& f = run.emulation_failure;
    first = 1;
    if ((f.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
        ndata >= 3) {
      absl::StrAppend(&out, ", instruction bytes:");
      for (uint32_t i = 0; i < f.insn_size && i < sizeof(f.insn_bytes); ++i) {
        absl::StrAppend(&out, " ", absl::Hex(f.insn_bytes[i], absl::kZeroPad2));
      }
      first = 3;
    }
  }
  if (first < ndata) {
    absl::StrAppend(&out, ", data:");
    for (uint32_t i = first; i < ndata; ++i) {
      absl::StrAppend(&out, " 0x", absl::Hex(e.data[i]));
    }
  }
  return out;
}

// --- VcpuRunLoop ---

RunLoopStats& RunLoopStats::operator+=(const RunLoopStats& o) {
  exits += o.exits;
  io_exits += o.io_exits;
  mmio_exits += o.mmio_exits;
  signal_exits += o.signal_exits;
  hlt_exits += o.hlt_exits;
  irq_window_exits += o.irq_window_exits;
  msr_exits += o.msr_exits;
  apic_mmio_exits += o.apic_mmio_exits;
  interrupts_injected += o.interrupts_injected;
  nmis_injected += o.nmis_injected;
  return *this;
}

VcpuRunLoop::VcpuRunLoop(const Vcpu& vcpu, Bus& pio, Bus& mmio, StopLatch& stop,
                         UserIrqchip* irqchip, uint32_t index, PauseGate* gate)
    : vcpu_(vcpu),
      pio_(pio),
      mmio_(mmio),
      stop_(stop),
      irqchip_(irqchip),
      index_(index),
      gate_(gate) {}

VcpuRunLoop::~VcpuRunLoop() = default;

RunLoopStats VcpuRunLoop::stats() const {
  auto load = [](const uint64_t& v) {
    return std::atomic_ref<const uint64_t>(v).load(std::memory_order_relaxed);
  };
  RunLoopStats s;
  s.exits = load(stats_.exits);
  s.io_exits = load(stats_.io_exits);
  s.mmio_exits = load(stats_.mmio_exits);
  s.signal_exits = load(stats_.signal_exits);
  s.hlt_exits = load(stats_.hlt_exits);
  s.irq_window_exits = load(stats_.irq_window_exits);
  s.msr_exits = load(stats_.msr_exits);
  s.apic_mmio_exits = load(stats_.apic_mmio_exits);
  s.interrupts_injected = load(stats_.interrupts_injected);
  s.nmis_injected = load(stats_.nmis_injected);
  return s;
}

void VcpuRunLoop::HoldIfPaused() {
  Publish(VcpuRunState::kPaused);
  gate_->Hold([this] { return stop_.requested(); });
  Publish(VcpuRunState::kRunning);
}

void VcpuRunLoop::Run() {
  InstallKickHandler();
  SetKickTarget(vcpu_.run());
  Publish(VcpuRunState::kRunning);
  bool running = irqchip_ == nullptr || StartUserIrqchip();
  while (running) {
    // Every kick (a stop, a pause, an interrupt, the APIC timer) sets
    // immediate_exit. Clear it, then look at what the kick was for: the
    // fence pairs with the kicker's (state first, then immediate_exit), so
    // no kick is lost.
    vcpu_.ClearImmediateExit();
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (stop_.requested()) break;
    if (gate_ != nullptr && gate_->closed()) {
      HoldIfPaused();
      continue;  // clears immediate_exit (the pause's kick) again
    }
    if (irqchip_ != nullptr) {
      const Entry entry = PrepareEntry();
      if (entry == Entry::kStop) break;
      if (entry == Entry::kAgain) continue;
    }
    int err = vcpu_.RunOnce();
    in_guest_.store(false, std::memory_order_relaxed);
    if (err == 0) {
      Bump(stats_.exits);
      if (irqchip_ != nullptr) SyncTpr();
      const uint32_t reason = vcpu_.run()->exit_reason;
      running = HandleExit();
      prev_exit_reason_ = reason;
      if (reason == KVM_EXIT_X86_WRMSR || reason == KVM_EXIT_X86_RDMSR) {
        prev_msr_ = vcpu_.run()->msr.index;
      }
      continue;
    }
    if (err == EINTR) {
      // api.rst: KVM_RUN returns -EINTR when a signal is pending or
      // immediate_exit is set (exit_reason KVM_EXIT_INTR): a kick, or
      // another signal (profilers); the loop's head sees which.
      Bump(stats_.signal_exits);
      continue;
    }
    if (err == EAGAIN) continue;  // transient (e.g. an AP not yet started)
    Fail(base::ErrnoStatus(
        err, absl::StrCat("KVM_RUN vcpu=", vcpu_.id(),
                          err == EFAULT ? " (guest memory not accessible: "
                                          "is the pager still serving it?)"
                                        : "")));
    break;
  }
  in_guest_.store(false, std::memory_order_relaxed);
  SetKickTarget(nullptr);
  timer_.reset();
  Publish(VcpuRunState::kStopped);
  if (gate_ != nullptr) gate_->Notify();  // a Pause() waiting counts it
}

bool VcpuRunLoop::HandleExit() {
  switch (vcpu_.run()->exit_reason) {
    case KVM_EXIT_IO:
      return HandleIo();
    case KVM_EXIT_MMIO:
      return HandleMmio();
    case KVM_EXIT_HLT:
      return HandleHlt();
    case KVM_EXIT_SHUTDOWN:
      return HandleShutdown();
    case KVM_EXIT_SYSTEM_EVENT:
      return HandleSystemEvent();
    case KVM_EXIT_FAIL_ENTRY:
      return HandleFailEntry();
    case KVM_EXIT_INTERNAL_ERROR:
      return HandleInternalError();
    case KVM_EXIT_INTR:
      Bump(stats_.signal_exits);
      return true;
    case KVM_EXIT_IRQ_WINDOW_OPEN:  // the next PrepareEntry injects
      Bump(stats_.irq_window_exits);
      return true;
    case KVM_EXIT_SET_TPR:  // CR8 lowered: SyncTpr took it
      return true;
    case KVM_EXIT_X86_RDMSR:
      return HandleMsr(/*write=*/false);
    case KVM_EXIT_X86_WRMSR:
      return HandleMsr(/*write=*/true);
    default:
      return HandleUnknown();
  }
}

bool VcpuRunLoop::HandleIo() {
  Bump(stats_.io_exits);
  kvm_run* run = vcpu_.run();
  // String instructions (rep ins/outs) come as `count` consecutive items.
  uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  for (uint32_t i = 0; i < run->io.count; ++i) {
    absl::Span<uint8_t> item(data + i * run->io.size, run->io.size);
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      pio_.Write(run->io.port, item);
    } else {
      pio_.Read(run->io.port, item);
    }
  }
  return !stop_.requested();
}

bool VcpuRunLoop::HandleMmio() {
  Bump(stats_.mmio_exits);
  kvm_run* run = vcpu_.run();
  uint32_t len = std::min<uint32_t>(run->mmio.len, sizeof(run->mmio.data));
  absl::Span<uint8_t> data(run->mmio.data, len);
  if (irqchip_ != nullptr && irqchip_->ApicMmio(index_, run->mmio.phys_addr,
                                                run->mmio.is_write, data)) {
    Bump(stats_.apic_mmio_exits);
    return !stop_.requested();
  }
  if (run->mmio.is_write) {
    mmio_.Write(run->mmio.phys_addr, data);
  } else {
    mmio_.Read(run->mmio.phys_addr, data);
  }
  return !stop_.requested();
}

bool VcpuRunLoop::HandleHlt() {
  Bump(stats_.hlt_exits);
  if (irqchip_ != nullptr) {
    // The next PrepareEntry waits until an interrupt can end the HLT.
    irqchip_->Halted(index_, vcpu_.run()->if_flag);
    return !stop_.requested();
  }
  // With the in-kernel irqchip KVM waits for the interrupt itself; HLT only
  // reaches us without any, where nothing could ever wake the vCPU.
  stop_.Request(StopReason::kHalted, absl::OkStatus(),
                static_cast<int>(vcpu_.id()));
  return false;
}

bool VcpuRunLoop::HandleShutdown() {
  // A triple fault: a PC resets. Linux also uses it as its last reboot
  // method, so it is a reset, but the registers help if it was not meant.
  // (kvm_amd re-initializes the VMCB on a shutdown: there they are already
  // KVM's reset state.)
  std::string irq;
  if (irqchip_ != nullptr) {
    irq = absl::StrCat("\nuser irqchip: ", irqchip_->DescribeVcpu(index_),
                       "; previous exit reason ", prev_exit_reason_,
                       prev_exit_reason_ == KVM_EXIT_X86_WRMSR ||
                               prev_exit_reason_ == KVM_EXIT_X86_RDMSR
                           ? absl::StrCat(" (MSR 0x", absl::Hex(prev_msr_), ")")
                           : "",
                       "; last injected vector ");
    if (last_vector_ < 0) {
      absl::StrAppend(&irq, "none");
    } else {
      absl::StrAppend(&irq, "0x", absl::Hex(last_vector_), ", ",
                      stats_.exits - last_vector_exits_, " exits ago");
    }
  }
  // kvm_amd's reset leaves the vCPU at the reset vector: say so, or the
  // dump reads as a fault at 0xfff0.
  absl::StatusOr<kvm_regs> regs = vcpu_.GetRegs();
  absl::StatusOr<kvm_sregs> sregs = vcpu_.GetSregs();
  const bool reset_state = regs.ok() && sregs.ok() && regs->rip == 0xfff0 &&
                           sregs->cs.selector == 0xf000;
  base::Log(base::LogLevel::kInfo, "KVM_EXIT_SHUTDOWN (triple fault) on vCPU ",
            vcpu_.id(), "; ",
            reset_state ? "the registers below are already KVM's reset state "
                          "(kvm_amd re-initializes a vCPU on a shutdown), not "
                          "where it faulted; "
                        : "",
            vcpu_.DumpState(), irq);
  stop_.Request(StopReason::kTripleFault, absl::OkStatus(),
                static_cast<int>(vcpu_.id()));
  return false;
}

bool VcpuRunLoop::HandleSystemEvent() {
  const int id = static_cast<int>(vcpu_.id());
  switch (vcpu_.run()->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
      stop_.Request(StopReason::kPowerOff, absl::OkStatus(), id);
      return false;
    case KVM_SYSTEM_EVENT_RESET:
      stop_.Request(StopReason::kReset, absl::OkStatus(), id);
      return false;
    default:
      return Fail(absl::AbortedError(absl::StrCat(
          "KVM_EXIT_SYSTEM_EVENT type=", vcpu_.run()->system_event.type,
          " (guest crash) on vCPU ", id, "\n", vcpu_.DumpState())));
  }
}

bool VcpuRunLoop::HandleFailEntry() {
  return Fail(absl::InternalError(
      absl::StrCat("KVM_EXIT_FAIL_ENTRY on vCPU ", vcpu_.id(), ": ",
                   DescribeFailEntry(*vcpu_.run()), "\n", vcpu_.DumpState())));
}

bool VcpuRunLoop::HandleInternalError() {
  return Fail(absl::InternalError(absl::StrCat(
      "KVM_EXIT_INTERNAL_ERROR on vCPU ", vcpu_.id(), ": ",
      DescribeInternalError(*vcpu_.run()), "\n", vcpu_.DumpState())));
}

bool VcpuRunLoop::HandleUnknown() {
  return Fail(absl::UnimplementedError(
      absl::StrCat("vCPU ", vcpu_.id(), ": unhandled KVM exit reason ",
                   vcpu_.run()->exit_reason, "\n", vcpu_.DumpState())));
}

bool VcpuRunLoop::Fail(absl::Status status) {
  stop_.Request(StopReason::kError, std::move(status),
                static_cast<int>(vcpu_.id()));
  return false;
}

}  // namespace ssihv::kvm
