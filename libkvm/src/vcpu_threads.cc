#include <pthread.h>
#include <signal.h>

#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/kvm/run_loop.h"

namespace ssihv::kvm {
namespace {

void IgnoreKick(int) {}

// Installed once per process, without SA_RESTART: the point of the signal is
// to make the KVM_RUN ioctl return EINTR.
void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = IgnoreKick;
    sigemptyset(&sa.sa_mask);
    sigaction(KickSignal(), &sa, nullptr);
  });
}

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
  Worker(const Vcpu* v, Bus& pio, Bus& mmio, StopLatch& stop)
      : vcpu(v), loop(*v, pio, mmio, stop) {}
  const Vcpu* vcpu;
  VcpuRunLoop loop;
  std::thread thread;
};

VcpuThreads::VcpuThreads(std::vector<const Vcpu*> vcpus, Bus& pio, Bus& mmio,
                         StopLatch& stop)
    : stop_(stop) {
  for (const Vcpu* v : vcpus) {
    workers_.push_back(std::make_unique<Worker>(v, pio, mmio, stop));
  }
}

VcpuThreads::~VcpuThreads() {
  if (!joined_) {
    stop_.Request(StopReason::kStopRequested);
    Join();
  }
}

absl::Status VcpuThreads::Start() {
  InstallKickHandler();
  stop_.AddListener([this] { KickAll(); });
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
          worker->loop.Run();
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
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : workers_) {
    w->vcpu->RequestImmediateExit();
    if (w->thread.joinable())
      pthread_kill(w->thread.native_handle(), KickSignal());
  }
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

RunLoopStats VcpuThreads::TotalStats() const {
  RunLoopStats total;
  for (const auto& w : workers_) {
    const RunLoopStats& s = w->loop.stats();
    total.exits += s.exits;
    total.io_exits += s.io_exits;
    total.mmio_exits += s.mmio_exits;
    total.signal_exits += s.signal_exits;
  }
  return total;
}

}  // namespace ssihv::kvm
