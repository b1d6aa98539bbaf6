#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kick.h"
#include "ssihv/base/log.h"
#include "ssihv/kvm/run_loop.h"

namespace ssihv::kvm {
namespace {

// The vCPU this thread runs (initial-exec TLS: safe in a signal handler).
thread_local kvm_run* t_kick_target = nullptr;

void OnKick(int) {
  if (kvm_run* run = t_kick_target) {
    std::atomic_ref<uint8_t>(run->immediate_exit)
        .store(1, std::memory_order_seq_cst);
  }
}

}  // namespace

// Installed once per process, without SA_RESTART: the point of the signal is
// to make the KVM_RUN ioctl return EINTR.
void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = OnKick;
    sigemptyset(&sa.sa_mask);
    sigaction(KickSignal(), &sa, nullptr);
  });
}

void SetKickTarget(kvm_run* run) { t_kick_target = run; }

namespace {

// vCPU threads take only the kick signal; process signals (SIGINT, SIGTERM,
// SIGCHLD...) go to threads that handle them.
void SetVcpuThreadSignalMask() {
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, KickSignal());
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP}) {
    sigdelset(&set, s);
  }
  pthread_sigmask(SIG_SETMASK, &set, nullptr);
}

}  // namespace

int KickSignal() { return SIGRTMIN + 2; }

struct VcpuThreads::Worker {
  Worker(const Vcpu* v, Bus& pio, Bus& mmio, StopLatch& stop,
         UserIrqchip* irqchip, uint32_t index, PauseGate* gate)
      : vcpu(v), loop(*v, pio, mmio, stop, irqchip, index, gate) {}
  const Vcpu* vcpu;
  VcpuRunLoop loop;
  std::thread thread;
  // Set by the thread itself: a kick from another thread must not read
  // `thread` while Start() is still assigning it.
  std::mutex kick_mu;
  pthread_t self{};
  bool alive = false;
};

VcpuThreads::VcpuThreads(std::vector<const Vcpu*> vcpus, Bus& pio, Bus& mmio,
                         StopLatch& stop, UserIrqchip* irqchip)
    : stop_(stop), irqchip_(irqchip) {
  // The irqchip numbers vCPUs globally (a VM spread over processes has only
  // some of them here): each worker's index in the chip is its vCPU id.
  for (uint32_t i = 0; i < vcpus.size(); ++i) {
    const uint32_t id = vcpus[i]->id();
    workers_.push_back(std::make_unique<Worker>(vcpus[i], pio, mmio, stop,
                                                irqchip, id, &gate_));
    if (by_id_.size() <= id) by_id_.resize(id + 1, -1);
    by_id_[id] = static_cast<int>(i);
  }
}

VcpuThreads::~VcpuThreads() {
  if (!joined_) {
    stop_.Request(StopReason::kStopRequested);
    Join();
  }
  if (irqchip_) irqchip_->SetKicker(nullptr);
}

void VcpuThreads::Kick(uint32_t id) {
  if (id >= by_id_.size() || by_id_[id] < 0) return;  // another process's
  Worker& w = *workers_[by_id_[id]];
  // Only a thread inside (or about to enter) KVM_RUN needs the signal; one
  // that is handling an exit or waiting sees the interrupt anyway.
  if (!w.loop.in_guest()) return;
  std::lock_guard<std::mutex> lock(w.kick_mu);
  if (w.alive) pthread_kill(w.self, KickSignal());
}

absl::Status VcpuThreads::Start() {
  InstallKickHandler();
  stop_.AddListener([this] { KickAll(); });
  if (irqchip_) irqchip_->SetKicker([this](uint32_t i) { Kick(i); });
  std::string failure;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& w : workers_) {
      Worker* worker = w.get();
      try {
        worker->thread = std::thread([worker] {
          SetVcpuThreadSignalMask();
          pthread_setname_np(pthread_self(),
                             absl::StrCat("vcpu", worker->vcpu->id()).c_str());
          {
            std::lock_guard<std::mutex> lock(worker->kick_mu);
            worker->self = pthread_self();
            worker->alive = true;
          }
          worker->loop.Run();
          std::lock_guard<std::mutex> lock(worker->kick_mu);
          worker->alive = false;
        });
      } catch (const std::system_error& e) {
        failure = absl::StrCat("starting the thread of vCPU ",
                               worker->vcpu->id(), ": ", e.what());
        break;
      }
    }
  }
  if (failure.empty()) return absl::OkStatus();
  // Threads already started are stopped by the latch and joined later.
  absl::Status st = absl::ResourceExhaustedError(failure);
  stop_.Request(StopReason::kError, st);
  return st;
}

void VcpuThreads::KickAll() {
  // The latch was set before this runs; the fence orders that store before
  // the immediate_exit stores (a vCPU clears immediate_exit, fences, then
  // reads the latch: one of the two sides sees the other).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : workers_) {
    w->vcpu->RequestImmediateExit();
    if (w->thread.joinable())
      pthread_kill(w->thread.native_handle(), KickSignal());
  }
  if (irqchip_) irqchip_->WakeAll();  // vCPUs waiting in HLT or for SIPI
  gate_.Notify();                     // vCPUs held by a pause see the stop
}

StopEvent VcpuThreads::Join() {
  // Every loop returns only once the latch is set; waiting for its listeners
  // (the kicks) first means no pthread_kill can race with a join.
  stop_.Wait();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  joined_ = true;
  return stop_.event();
}

std::vector<VcpuThreadInfo> VcpuThreads::Snapshot() const {
  std::vector<VcpuThreadInfo> out;
  out.reserve(workers_.size());
  for (const auto& w : workers_) {
    out.push_back({w->vcpu->id(), w->loop.state(), w->loop.stats()});
  }
  return out;
}

absl::Status VcpuThreads::Pause(absl::Duration timeout) {
  if (stop_.requested()) {
    return absl::FailedPreconditionError("pause: the VM is stopping");
  }
  gate_.Close();
  KickAll();  // out of KVM_RUN and out of the irqchip's waits
  auto out = [this] {
    for (const auto& w : workers_) {
      const VcpuRunState s = w->loop.state();
      if (s != VcpuRunState::kPaused && s != VcpuRunState::kStopped) {
        return false;
      }
    }
    return true;
  };
  if (gate_.WaitUntil(out, absl::Now() + timeout)) return absl::OkStatus();
  std::string late;
  for (const VcpuThreadInfo& v : Snapshot()) {
    if (v.state == VcpuRunState::kPaused || v.state == VcpuRunState::kStopped)
      continue;
    absl::StrAppend(&late, late.empty() ? "" : ", ", v.id, " (",
                    VcpuRunStateName(v.state), ")");
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "pause: vCPU ", late, " not out of KVM_RUN after ",
      absl::FormatDuration(timeout),
      " (blocked on a page or a forwarded access?); it stops at its next "
      "exit"));
}

void VcpuThreads::Resume() { gate_.Open(); }

RunLoopStats VcpuThreads::TotalStats() const {
  RunLoopStats total;
  for (const auto& w : workers_) total += w->loop.stats();
  return total;
}

}  // namespace ssihv::kvm
