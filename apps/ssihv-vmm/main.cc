// ssihv-vmm: boots a Linux guest on KVM with the cluster's vCPUs, memory and
// NUMA topology, guest RAM served by the userfaultfd pager. docs/VMM.md.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "options.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/log.h"
#include "ssihv/cluster/config.h"
#include "ssihv/control/server.h"
#include "vmm.h"
#include "vmm_api.h"

namespace ssihv::vmm {
namespace {

void Fail(absl::string_view what) {
  std::fprintf(stderr, "ssihv-vmm: %s\n", std::string(what).c_str());
}

// SIGINT/SIGTERM/SIGHUP/SIGQUIT are blocked in every thread and taken here, so
// a signal stops the VM cleanly (vCPUs, pager, terminal) instead of killing it.
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
constexpr int kDoneSignal = SIGUSR2;  // wakes the signal thread at the end

sigset_t StopSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kStopSignals) sigaddset(&set, s);
  sigaddset(&set, kDoneSignal);
  return set;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<VmmOptions> options = ParseVmmArgs(args);
  if (!options.ok()) {
    Fail(options.status().message());
    return kExitUsage;
  }
  if (options->help) {
    std::fputs(VmmUsage().c_str(), stdout);
    return kExitGuestDone;
  }
  absl::StatusOr<cluster::ClusterConfig> config =
      options->config_path.empty()
          ? absl::StatusOr<cluster::ClusterConfig>(
                cluster::DefaultClusterConfig())
          : cluster::LoadClusterConfig(options->config_path);
  if (!config.ok()) {
    Fail(absl::StrCat("--config: ", config.status().message()));
    return kExitSetupError;
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t signals = StopSignalSet();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The API serves while the VM is built (and, with --node, while the
  // peers are awaited); its threads inherit the blocked stop signals.
  std::unique_ptr<Vmm> vmm = Vmm::Prepare(*config);
  Vmm* vm = vmm.get();
  VmmApi api_node(vm, options->node);
  // A --node beyond the config is Build's error to report, not the API's.
  const uint32_t self = options->node.value_or(0);
  absl::StatusOr<std::unique_ptr<control::ApiServer>> api =
      self < config->num_nodes()
          ? control::ApiServer::Start(*config, self, &api_node)
          : std::unique_ptr<control::ApiServer>();
  if (!api.ok()) {
    Fail(absl::StrCat("control API: ", api.status().message()));
    return kExitSetupError;
  }
  if (*api) {
    base::Log(base::LogLevel::kInfo, "ssihv-vmm: control API on http://",
              (*api)->server().address());
  }
  if (absl::Status st = vm->Build(*options); !st.ok()) {
    if (*api) (*api)->Stop();
    Fail(st.message());
    return vm->BuildFailureStatus(st);
  }
  bool dump = false;  // SIGQUIT (Ctrl-\) also dumps every vCPU's registers
  std::thread signal_thread([&signals, vm, &dump] {
    int sig = 0;
    if (sigwait(&signals, &sig) == 0 && sig != kDoneSignal) {
      dump = sig == SIGQUIT;
      vm->Stop(kvm::StopReason::kStopRequested,
               absl::CancelledError(absl::StrCat("signal ", strsignal(sig))));
    }
  });
  kvm::StopEvent event = vm->Run();
  pthread_kill(signal_thread.native_handle(), kDoneSignal);
  signal_thread.join();
  // Before the VM goes: lets the answer to a POST /vm/stop finish.
  if (*api) (*api)->Stop();

  if (dump) std::fprintf(stderr, "%s", vm->DumpVcpus().c_str());
  std::fprintf(stderr, "\n%s\n", vm->StatsText().c_str());
  if (vm->guest_panicked()) Fail("the guest kernel panicked");
  if (!event.status.ok()) Fail(event.status.message());
  int status = vm->ExitStatus();
  if (!options->stats_json.empty()) {
    absl::Status st = base::WriteFileAtomically(options->stats_json,
                                                vm->StatsJson().dump(2) + "\n");
    if (!st.ok()) {
      Fail(absl::StrCat("--stats-json: ", st.message()));
      if (status == kExitGuestDone) status = kExitVmmError;
    }
  }
  return status;
}

}  // namespace
}  // namespace ssihv::vmm

int main(int argc, char** argv) { return ssihv::vmm::Main(argc, argv); }
