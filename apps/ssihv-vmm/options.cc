#include "options.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_priority.h"

namespace ssihv::vmm {
namespace {

// `text`, the value of `flag`, as an integer in lo..hi; else the error
// "FLAG: 'TEXT' is not WHAT in LO..HI".
absl::Status IntInRange(absl::string_view flag, const std::string& text,
                        int lo, int hi, absl::string_view what, int* out) {
  if (absl::SimpleAtoi(text, out) && *out >= lo && *out <= hi) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(flag, ": '", text, "' is not ",
                                                 what, " in ", lo, "..", hi));
}

// The kernel's part of a command line: what comes before a "--" word
// (Linux hands the rest to init).
absl::string_view KernelPart(absl::string_view cmdline) {
  for (absl::string_view word :
       absl::StrSplit(cmdline, ' ', absl::SkipEmpty())) {
    if (word == "--") {
      return absl::StripTrailingAsciiWhitespace(
          cmdline.substr(0, word.data() - cmdline.data()));
    }
  }
  return cmdline;
}

}  // namespace

std::string GuestTuningArgs(absl::string_view cmdline, uint32_t total_vcpus) {
  const std::vector<absl::string_view> words =
      absl::StrSplit(KernelPart(cmdline), ' ', absl::SkipEmpty());
  // Whether a word sets kernel parameter `key` ("key" or "key=...").
  auto sets = [&words](absl::string_view key) {
    return std::any_of(words.begin(), words.end(), [key](absl::string_view w) {
      return absl::ConsumePrefix(&w, key) && (w.empty() || w.front() == '=');
    });
  };
  // isolcpus=nohz,... sets the tickless CPUs too; Linux refuses a second,
  // different set.
  const bool tickless_given =
      sets("nohz_full") ||
      std::any_of(words.begin(), words.end(), [](absl::string_view w) {
        return absl::StartsWith(w, "isolcpus=") && absl::StrContains(w, "nohz");
      });
  std::string out;
  if (total_vcpus > 1 && !tickless_given) {
    absl::StrAppend(&out, " nohz_full=1");
    if (total_vcpus > 2) absl::StrAppend(&out, "-", total_vcpus - 1);
  }
  if (!sets("numa_balancing")) {
    absl::StrAppend(&out, " numa_balancing=disable");
  }
  if (!sets("sysctl.vm.compaction_proactiveness")) {
    absl::StrAppend(&out, " sysctl.vm.compaction_proactiveness=0");
  }
  return out;
}

std::string WithKernelParams(absl::string_view cmdline,
                             absl::string_view params) {
  const absl::string_view kernel = KernelPart(cmdline);
  const absl::string_view rest = cmdline.substr(kernel.size());
  return absl::StrCat(kernel, params,
                      !rest.empty() && rest.front() != ' ' ? " " : "", rest);
}

std::string VmmUsage() {
  return absl::StrCat(
      R"(Usage: ssihv-vmm --kernel bzImage --initrd initrd.img [options]

Boots a Linux kernel on KVM with the vCPUs, memory and NUMA topology of a
cluster config: all of it in this process, or (--node K) node K's vCPUs and
memory, the other nodes running in their own processes, guest memory kept
coherent between them by the DSM pager. Guest RAM is served by the
userfaultfd pager; the serial console (COM1) is this terminal (node 0's).

  --kernel PATH        bzImage to boot (Linux x86 boot protocol >= 2.12)
  --initrd PATH        initramfs / initrd image
  --cmdline TEXT       kernel command line (default: ")",
      kDefaultCmdline, R"(")
  --append TEXT        add TEXT to the kernel command line
  --config FILE        cluster config (docs/CLUSTER_CONFIG.md); default: the
                       embedded 2-node cluster (2 x 2 vCPUs, 2 x 1024 MiB)
  --stats-json FILE    write VM and pager statistics as JSON when it stops
  --pager-threads N    userfaultfd fault threads (default 2)
  --fault-around KIB   on a fault, zero-fill the rest of its aligned KIB-sized
                       block too (a power of two >= 4, or 0 = off; default 2048)
  --irqchip kernel|user  interrupt controllers: KVM's in-kernel ones (kernel,
                       the default) or the VMM's own local APICs and I/O APIC
                       (user: every interrupt passes through the VMM; allows
                       more than 254 vCPUs)
  --node K             run node K of the config as one process of a guest
                       spread over one process per node (the default irqchip
                       is then user); only node 0 loads the kernel, initrd
                       and ACPI tables and has the console and devices; the
                       others ignore the boot files (ssihv-launch starts every
                       node of a config on this machine)
  --peer-timeout S     with --node: how long to wait at start for every other
                       node (default 60; the error names those not reached)
  --peer-silence S     with --node: a peer not heard from for S seconds (it
                       sends a heartbeat every second) is declared lost
                       (default 5; 2..600; a dropped connection counts after
                       2 s whatever S is)
  --service-nice N     with --node: the nice value of the threads that serve
                       page faults and the other nodes' requests (DSM and
                       transport threads); below the vCPU threads' (say -10)
                       a request preempts a running vCPU: faster faults,
                       slower vCPUs on a host with fewer cores than threads
                       (docs/PAGER.md; default 0 = inherit; -20..19;
                       lowering needs CAP_SYS_NICE, else a warning)
  --guest-tuning       with --node: node 0 appends what a guest across nodes
                       wants: nohz_full=1-LAST (every CPU but the timekeeping
                       CPU 0 tickless), numa_balancing=disable and
                       sysctl.vm.compaction_proactiveness=0 (each unless the
                       command line sets it; docs/VMM.md)
  --trace-io           log every port and MMIO access but COM1's to stderr
  --help               this text

Console: Ctrl-A x stops the VM, Ctrl-A Ctrl-A sends Ctrl-A (on a terminal).
Exit status: 0 the guest rebooted or powered off; 1 VMM failure; 2 usage;
3 bad config, kernel or initrd, too little memory, or no usable /dev/kvm;
4 the guest kernel panicked; 5 (--node) another node was lost; 130 stopped
by a signal or Ctrl-A x.
)");
}

absl::StatusOr<VmmOptions> ParseVmmArgs(const std::vector<std::string>& args) {
  VmmOptions o;
  std::string append;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool inline_value = false;
    if (size_t eq = flag.find('=');
        absl::StartsWith(flag, "--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      o.help = true;
      continue;
    }
    if (flag == "--trace-io") {
      o.trace_io = true;
      continue;
    }
    if (flag == "--guest-tuning") {
      o.guest_tuning = true;
      continue;
    }
    auto take = [&](std::string* out) -> absl::Status {
      if (inline_value) {
        *out = value;
      } else if (i + 1 < args.size()) {
        *out = args[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": needs a value"));
      }
      return absl::OkStatus();
    };
    // The flag's value as an integer in lo..hi (IntInRange's message).
    auto take_int = [&](int lo, int hi, absl::string_view what,
                        int* out) -> absl::Status {
      std::string n;
      SSIHV_RETURN_IF_ERROR(take(&n));
      return IntInRange(flag, n, lo, hi, what, out);
    };
    absl::Status st;
    if (flag == "--kernel") {
      st = take(&o.kernel);
    } else if (flag == "--initrd") {
      st = take(&o.initrd);
    } else if (flag == "--cmdline") {
      st = take(&o.cmdline);
    } else if (flag == "--append") {
      std::string more;
      st = take(&more);
      absl::StrAppend(&append, " ", more);
    } else if (flag == "--config") {
      st = take(&o.config_path);
    } else if (flag == "--stats-json") {
      st = take(&o.stats_json);
    } else if (flag == "--irqchip") {
      std::string mode;
      st = take(&mode);
      o.irqchip_given = true;
      if (st.ok() && mode == "kernel") {
        o.irqchip = Irqchip::kKernel;
      } else if (st.ok() && mode == "user") {
        o.irqchip = Irqchip::kUser;
      } else if (st.ok()) {
        st = absl::InvalidArgumentError(
            absl::StrCat("--irqchip: '", mode, "' is not 'kernel' or 'user'"));
      }
    } else if (flag == "--node") {
      std::string n;
      st = take(&n);
      uint32_t k = 0;
      if (st.ok() && !absl::SimpleAtoi(n, &k)) {
        st = absl::InvalidArgumentError(
            absl::StrCat("--node: '", n, "' is not a node id (0, 1, ...)"));
      }
      o.node = k;
    } else if (flag == "--peer-timeout") {
      st = take_int(1, 3600, "a number of seconds", &o.peer_timeout_s);
    } else if (flag == "--peer-silence") {
      st = take_int(2, 600, "a number of seconds", &o.peer_silence_s);
    } else if (flag == "--service-nice") {
      st = take_int(base::kMinNice, base::kMaxNice, "a nice value",
                    &o.service_nice);
    } else if (flag == "--pager-threads") {
      st = take_int(1, 64, "a number", &o.pager_threads);
    } else if (flag == "--fault-around") {
      std::string n;
      st = take(&n);
      uint64_t kib = 0;
      if (st.ok() && (!absl::SimpleAtoi(n, &kib) || kib > (1u << 20) ||
                      (kib != 0 && (kib < 4 || (kib & (kib - 1)) != 0)))) {
        st = absl::InvalidArgumentError(
            absl::StrCat("--fault-around: '", n,
                         "' is not 0 or a power of two in 4..1048576"));
      }
      o.fault_around_kib = kib;
    } else {
      st = absl::InvalidArgumentError(
          absl::StrCat("unknown argument '", args[i], "' (see --help)"));
    }
    if (!st.ok()) return st;
  }
  o.cmdline += append;
  if (o.help) return o;
  if (o.node) {
    if (o.irqchip_given && o.irqchip == Irqchip::kKernel) {
      return absl::InvalidArgumentError(
          "--irqchip kernel: not with --node (KVM's in-kernel irqchip cannot "
          "deliver an interrupt to a vCPU in another process)");
    }
    o.irqchip = Irqchip::kUser;
  } else if (o.guest_tuning) {
    return absl::InvalidArgumentError(
        "--guest-tuning: only with --node (it tunes a guest across nodes)");
  }
  // Only node 0 (or the whole VM) boots anything.
  const bool loads = !o.node || *o.node == 0;
  if (loads && o.kernel.empty()) {
    return absl::InvalidArgumentError("--kernel: required (a bzImage)");
  }
  if (loads && o.initrd.empty()) {
    return absl::InvalidArgumentError("--initrd: required (an initramfs)");
  }
  return o;
}

}  // namespace ssihv::vmm
