#!/usr/bin/env bash
# The main job: one Debian 12 Linux guest across two ssihv-vmm processes.
# ssihv-launch starts one `ssihv-vmm --node K` per node of the embedded
# 2-node cluster (2 NUMA nodes x 2 vCPUs x 1 GiB): each process runs its
# node's vCPUs and is the home of its node's memory, kept coherent over TCP
# by the DSM pager. Node 0 has the console: the guest's init prints what it
# sees (CPUs, NUMA nodes, each node's memory, SLIT distances, HMAT
# latencies and bandwidths, and on which node each CPU is) and reboots;
# every process then exits 0 and prints its statistics (its vCPUs' exits,
# its pager's local and remote faults, interrupts and I/O to and from the
# other node).
#
#   scripts/demo.sh [ssihv-vmm options...]     e.g. --config my-cluster.json
#
# Installs what is missing, builds, and fetches the kernel with `apt-get
# download` (unpacked into a cache, never installed). Needs a KVM that can
# run Linux guests; where there is none (as on the project's machines) the
# demo runs inside the lab VM (tests/lab/run.sh: nested KVM under QEMU) and
# says so — expect about a minute there (30-32 s on 2026-12-07, the lab's boot
# included), most of it the emulated nested guest faulting pages between
# the two processes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >&2
# The release tree of scripts/build.sh (or $SSIHV_DEMO_BUILD), building only
# what the demo runs.
build=${SSIHV_DEMO_BUILD:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" ssihv-vmm ssihv-launch >&2
eval "$("$root/tests/linux-boot/prepare.sh" --print-env)"
launch=$build/apps/ssihv-launch/ssihv-launch
# The guest boots on node 0's CPUs (2 in the default cluster: maxcpus=2)
# and its init brings the other node's online (ssihv.online=cpus): much
# faster than booting every CPU across processes (docs/VMM.md, "Booting on
# node 0's CPUs"); with another --config the CPUs beyond the second still
# come up, from init.
# Once up, the guest keeps time on CPU 0 and runs the other CPUs tickless
# (nohz_full=): a CPU on node 1 that takes the tick reads jiffies and the
# timekeeper, which CPU 0 rewrites at every tick, so every tick would be
# remote misses. Nor does the kernel scan the tasks' memory for NUMA
# balancing or wake kcompactd on every node twice a second: both run on
# the other node's CPUs and keep their tick going. ssihv-vmm's
# --guest-tuning appends the three for whichever cluster it runs (docs/VMM.md,
# "Guest settings for a guest across nodes").
cmd=("$launch" --kernel "$LINUX_BOOT_KERNEL" --initrd "$LINUX_BOOT_INITRD"
     --append "quiet maxcpus=2 ssihv.online=cpus" --guest-tuning "$@")

# A KVM that boots Linux: /dev/kvm usable and the CPU showing VT-x/AMD-V
# (nested dev VMs expose /dev/kvm without it, and Linux guests stall there).
if [ "${SSIHV_LAB:-}" = 1 ] ||
   { [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; }; then
  echo "demo: booting $(basename "$LINUX_BOOT_KERNEL") across two ssihv-vmm processes on this host's KVM" >&2
  exec "${cmd[@]}"
fi
echo "demo: no KVM that can boot Linux here: running the two ssihv-vmm processes inside the lab VM (tests/lab/run.sh); expect about a minute" >&2
"$root/tests/lab/prepare.sh" >&2
# The lab kernel trusts its TSC, as for the distributed VM's tests: else the
# lab's KVM rewrites every vCPU's kvmclock at every entry and that page
# moves between the two processes at the VM-entry rate (docs/LAB.md).
export SSIHV_LAB_KERNEL_ARGS=${SSIHV_LAB_KERNEL_ARGS-tsc=reliable}
exec "$root/tests/lab/run.sh" --timeout 2400 -- "${cmd[@]}"
