// Command line of ssihv-vmm (docs/VMM.md).
#ifndef SSIHV_APPS_VMM_OPTIONS_H_
#define SSIHV_APPS_VMM_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ssihv::vmm {

/// The kernel command line when --cmdline is not given: the console on the
/// emulated COM1, no PCI bus to probe, and reboot on panic (the VMM tells a
/// panic from a reboot by the console, see PanicDetector).
inline constexpr char kDefaultCmdline[] = "console=ttyS0 pci=off panic=-1";

/// Whose interrupt controllers the VM has (--irqchip).
enum class Irqchip {
  kKernel,  // KVM's in-kernel LAPICs, I/O APIC, PIC and PIT (the default)
  kUser,    // the VMM's local APICs and I/O APIC (libkvm user_irqchip.h)
};

struct VmmOptions {
  std::string kernel;
  std::string initrd;
  std::string cmdline = kDefaultCmdline;
  std::string config_path;  // empty: the embedded 2-node cluster
  std::string stats_json;   // empty: no JSON file
  int pager_threads = 2;
  uint64_t fault_around_kib = 2048;
  Irqchip irqchip = Irqchip::kKernel;
  bool irqchip_given = false;  // --irqchip was on the command line
  /// --node K: this process is node K of a guest spread over one process
  /// per node (docs/VMM.md, "Several processes"); empty: the whole VM here.
  std::optional<uint32_t> node;
  /// --peer-timeout: how long a node waits for every other node at start.
  int peer_timeout_s = 60;
  /// --peer-silence: a peer not heard from this long is declared lost.
  int peer_silence_s = 5;
  /// --service-nice: the DSM's and the transport's threads' nice value.
  int service_nice = 0;
  /// --guest-tuning: node 0 appends GuestTuningArgs() to the command line.
  bool guest_tuning = false;
  bool trace_io = false;
  bool help = false;
};

/// The kernel parameters a guest across nodes wants (docs/VMM.md, "Guest
/// settings for a guest across nodes"), as " KEY=VALUE ..." to append to
/// `cmdline`: nohz_full=1-LAST (every CPU but CPU 0, the timekeeper; none
/// with one vCPU or when isolcpus= has the nohz flag), numa_balancing=disable
/// and sysctl.vm.compaction_proactiveness=0, each left out when `cmdline`
/// already sets that parameter (the user's value stands).
std::string GuestTuningArgs(absl::string_view cmdline, uint32_t total_vcpus);

/// `cmdline` with `params` (" KEY=VALUE ...") at the end of the kernel's
/// part: before a "--" word, whose rest Linux hands to init.
std::string WithKernelParams(absl::string_view cmdline,
                             absl::string_view params);

/// Parses argv (argv[0] is skipped). InvalidArgument names the flag.
absl::StatusOr<VmmOptions> ParseVmmArgs(const std::vector<std::string>& args);

std::string VmmUsage();

/// Exit statuses (docs/VMM.md).
enum ExitStatus : int {
  kExitGuestDone = 0,   // the guest rebooted or powered off
  kExitVmmError = 1,    // a VMM, KVM or pager failure while running
  kExitUsage = 2,       // bad command line
  kExitSetupError = 3,  // bad config, kernel, initrd; too little memory; no KVM
  kExitGuestPanic = 4,  // the guest kernel panicked (then rebooted)
  kExitPeerLost = 5,    // --node: another node was lost; the guest stopped
  kExitInterrupted = 130  // SIGINT/SIGTERM or the console escape (Ctrl-A x)
};

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_OPTIONS_H_
