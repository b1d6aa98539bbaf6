// What the Linux boot tests' guest init (init in this folder) reports, and
// the checks that it matches the cluster config: shared by linux_boot_test
// (one ssihv-vmm process) and the distributed VM's tests (tests/dist, one
// process per node).
#ifndef SSIHV_TESTS_LINUX_BOOT_GUEST_REPORT_H_
#define SSIHV_TESTS_LINUX_BOOT_GUEST_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "ssihv/cluster/config.h"

namespace ssihv::testing {

struct BootFiles {
  std::string kernel;
  std::string initrd;
};
/// tests/linux-boot/cache/boot.env (written by prepare.sh), or the file
/// $SSIHV_BOOT_ENV names. REQUIREs both paths.
BootFiles LoadBootEnv(const std::string& default_path);

// What the guest's init reported ("SSIHV key=value ..." lines).
struct NodeReport {
  std::string cpulist;
  uint64_t memtotal_kb = 0;
  std::vector<uint64_t> distance;
  bool has_hmat = false;
  std::set<uint32_t> initiators;
  std::map<std::string, uint64_t> hmat;  // read_latency, write_bandwidth, ...
};

struct GuestReport {
  bool reached_init = false;
  bool done = false;
  /// The guest's uptime in seconds when init began its report (-1: none):
  /// with the time to power-off it says whether a slow boot was slow
  /// before init or after.
  double init_uptime_s = -1;
  /// ... and when it had printed everything, before power-off or reboot.
  double done_uptime_s = -1;
  /// ... and the kernel's, stamped on its last line ("reboot: Power down"
  /// or "reboot: Restarting system").
  double end_uptime_s = -1;
  /// The guest's clocksource at init ("" when not printed).
  std::string clock_source;
  /// How long the VM had run when the kernel's sched_clock began (kvm-clock's
  /// sched offset), in seconds; nullopt when the kernel did not say. Uptimes
  /// and printk stamps start after it.
  std::optional<double> before_clock_s;
  /// What the kernel added to sched_clock when it marked it stable, in
  /// seconds: minus how far its timekeeping clock had fallen behind
  /// kvm-clock by then (printk stamps and uptimes keep that lag); nullopt
  /// when not printed.
  std::optional<double> stable_offset_s;
  /// 1 when the kernel marked its sched_clock stable, 0 when it did not
  /// (then its clock is filtered by the tick), -1 when not printed.
  int sched_clock_stable = -1;
  /// "cpu0=S cpu1=S ...": each CPU's printk stamp, taken one after the
  /// other at init ("" when not printed).
  std::string cpu_clocks;
  int nproc = -1;
  std::vector<uint32_t> nodes;
  std::map<uint32_t, NodeReport> node;
  std::set<std::tuple<uint32_t, uint64_t, uint64_t>> srat;  // node, first, last
  std::map<uint32_t, uint32_t> cpu_node;  // CPU -> its NUMA node
  /// The kernel's image in guest-physical memory, its code's first byte to
  /// its bss's last (/proc/iomem); nullopt when not printed or unreadable.
  std::optional<std::pair<uint64_t, uint64_t>> kernel_phys;
  /// The coherence stress's result line ("SSIHV_COHERENCE ok ..."), if any,
  /// and the program's exit status (-1: not run).
  std::string coherence;
  int coherence_exit = -1;
  /// ssihv.online=all: the CPUs the kernel booted with, and the UART
  /// interrupts the last CPU took once IRQ 4 was moved there.
  std::string booted_online;
  int64_t irq4_cpu = -1;
  uint64_t irq4_count = 0;
};
GuestReport ParseReport(const std::string& console);

/// The key=value words of one "SSIHV ..." line (other words skipped).
std::map<std::string, std::string> Fields(absl::string_view line);

/// Linux's cpulist for `count` CPUs from `first` ("3", "0-1", "").
std::string CpuList(uint32_t first, uint32_t count);

/// CHECKs everything the guest reported against `config`: nproc, nodes,
/// SRAT ranges, each node's cpulist, SLIT row, MemTotal, HMAT access0, and
/// every CPU's node.
void CheckGuestMatches(const cluster::ClusterConfig& config,
                       const GuestReport& g);

}  // namespace ssihv::testing

#endif  // SSIHV_TESTS_LINUX_BOOT_GUEST_REPORT_H_
