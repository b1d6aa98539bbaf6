#!/usr/bin/env bash
# The main job: ssihv-vmm boots an unmodified Debian 12 kernel with a busybox
# initramfs on the embedded 2-node cluster (2 NUMA nodes x 2 vCPUs x 1 GiB).
# The guest's init prints what it sees — CPUs, NUMA nodes, each node's
# memory, SLIT distances, HMAT latencies and bandwidths — and reboots; the
# VMM then prints how its userfaultfd pager served the guest's memory.
#
#   scripts/demo.sh [ssihv-vmm options...]     e.g. --config my-cluster.json
#
# Installs what is missing, builds, and fetches the kernel with `apt-get
# download` (unpacked into a cache, never installed). Needs a KVM that can
# run Linux guests; where there is none (as on the project's machines) the
# demo runs inside the lab VM (tests/lab/run.sh: nested KVM under QEMU) and
# says so — expect a few minutes there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >&2
# The release tree of scripts/build.sh (or $SSIHV_DEMO_BUILD), building only
# what the demo runs.
build=${SSIHV_DEMO_BUILD:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" ssihv-vmm >&2
eval "$("$root/tests/linux-boot/prepare.sh" --print-env)"
vmm=$build/apps/ssihv-vmm/ssihv-vmm
cmd=("$vmm" --kernel "$LINUX_BOOT_KERNEL" --initrd "$LINUX_BOOT_INITRD"
     --append quiet "$@")

# A KVM that boots Linux: /dev/kvm usable and the CPU showing VT-x/AMD-V
# (nested dev VMs expose /dev/kvm without it, and Linux guests stall there).
if [ "${SSIHV_LAB:-}" = 1 ] ||
   { [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; }; then
  echo "demo: booting $(basename "$LINUX_BOOT_KERNEL") on this host's KVM" >&2
  exec "${cmd[@]}"
fi
echo "demo: no KVM that can boot Linux here: running ssihv-vmm inside the lab VM (tests/lab/run.sh)" >&2
"$root/tests/lab/prepare.sh" >&2
exec "$root/tests/lab/run.sh" --timeout 1200 -- "${cmd[@]}"
