#!/usr/bin/env bash
# Manual check that a real Linux kernel accepts the NUMA tables acpi-gen
# makes: boots the kernel under QEMU (TCG, ~20-40 s per topology) with
# QEMU's own NUMA tables off and ours added with -acpitable, and prints
# what the guest reports (CPUs, MemTotal, distances, HMAT access0/access1
# attributes per node) next to the config. Only SRAT/SLIT/HMAT are tested
# this way (QEMU keeps its own FADT/MADT/DSDT); the VMM's boot test covers
# the full set.
#   Usage: linux_numa_check.sh KERNEL [ACPI_GEN] [TOPOLOGY...]
# KERNEL: a bzImage with CONFIG_ACPI_NUMA, CONFIG_ACPI_HMAT and
# CONFIG_HMEM_REPORTING (Debian's linux-image-amd64 has them; tests/lab's
# prepare.sh caches one under tests/lab/cache/kernel/).
# The QEMU machine must lay out RAM as cluster::GuestLayout does, so only
# these topologies are supported (q35 below 2.75 GiB; i440fx "pc" with
# >= 3.5 GiB puts the hole at exactly 3 GiB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kernel=${1:?usage: linux_numa_check.sh KERNEL [ACPI_GEN] [TOPOLOGY...]}
gen=${2:-$root/build/apps/acpi-gen/acpi-gen}
shift $(( $# >= 2 ? 2 : 1 ))
topologies=("$@")
[ ${#topologies[@]} -gt 0 ] || topologies=(two_node_default \
  three_node_asymmetric split_by_hole one_node memory_only_small)

work=$(mktemp -d /tmp/linux_numa_check.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin"
cp "$(command -v busybox)" "$work/root/bin/busybox"
cat > "$work/root/init" <<'INIT'
#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
echo "=== REPORT-BEGIN"
echo "nproc $($B nproc)"
for n in /sys/devices/system/node/node*; do
  id=${n##*node}
  echo "node$id cpus=$($B cat $n/cpulist) distance=[$($B cat $n/distance)]" \
       "$($B grep -o 'MemTotal:.*' $n/meminfo)"
  for a in access0 access1; do
    d=$n/$a/initiators
    [ -d $d ] || continue
    echo "node$id $a latency=$($B cat $d/read_latency)/$($B cat $d/write_latency)ns" \
         "bandwidth=$($B cat $d/read_bandwidth)/$($B cat $d/write_bandwidth)MB/s" \
         "initiators=$($B ls $d | $B grep node | $B tr '\n' ' ')"
  done
done
$B dmesg | $B grep -E "SRAT: Node|NUMA: (nodes|Initialized)|No NUMA|acpi/hmat: +Init|SRAT: PXM [0-9]+ -> (X2)?APIC 0x0*(fe|ff|12b) "
echo "=== REPORT-END"
$B poweroff -f
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc 2>/dev/null) > "$work/init.cpio"

# topology -> "config-file machine memory-MiB cpus"
config_of() {
  case $1 in
    memory_only_small)
      cat > "$work/mo.json" <<'JSON'
{"nodes": [{"id": 0, "vcpus": 2, "memory_mib": 1024},
           {"id": 1, "vcpus": 0, "memory_mib": 512},
           {"id": 2, "vcpus": 2, "memory_mib": 1024}],
 "distances": [[10, 15, 20], [15, 10, 15], [20, 15, 10]],
 "memory_latency_ns": [[100, 300, 5000], [300, 100, 300], [5000, 300, 100]],
 "memory_bandwidth_mbps": [[20000, 9000, 3000], [9000, 20000, 9000],
                           [3000, 9000, 20000]]}
JSON
      echo "$work/mo.json q35 2560 4" ;;
    two_node_default) echo "$here/golden/$1/cluster.json q35 2048 4" ;;
    three_node_asymmetric) echo "$here/golden/$1/cluster.json q35 2304 6" ;;
    one_node) echo "$here/golden/$1/cluster.json q35 512 4" ;;
    split_by_hole) echo "$here/golden/$1/cluster.json pc 5120 5" ;;
    # 300 vCPUs described, 4 booted: shows how Linux treats the x2APIC
    # affinity entries of absent CPUs.
    x2apic_300_vcpus) echo "$here/golden/$1/cluster.json pc 4096 4" ;;
    *) echo "linux_numa_check.sh: unsupported topology $1" >&2; exit 2 ;;
  esac
}

for t in "${topologies[@]}"; do
  read -r cfg machine mem cpus < <(config_of "$t")
  out="$work/$t"
  mkdir -p "$out"
  "$gen" --config "$cfg" --out "$out"
  echo "### $t ($machine, ${mem} MiB, $cpus CPUs): $cfg"
  timeout 600 qemu-system-x86_64 -machine "$machine,accel=tcg" -cpu max \
    -m "$mem" -smp "$cpus" -nographic -no-reboot -nic none \
    -kernel "$kernel" -initrd "$work/init.cpio" \
    -append "console=ttyS0 panic=-1 quiet" \
    -acpitable file="$out/srat.dat" -acpitable file="$out/slit.dat" \
    -acpitable file="$out/hmat.dat" 2>&1 |
    sed -n '/=== REPORT-BEGIN/,/=== REPORT-END/p' | grep -v '=== REPORT'
done
