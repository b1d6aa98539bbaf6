#!/usr/bin/env bash
# Boot time of ssihv-vmm against qemu-system-x86_64 -accel kvm (issue 7):
# the same Debian kernel, busybox initramfs (tests/linux-boot/prepare.sh),
# command line, vCPUs, memory and NUMA nodes, on the same machine, runs
# alternated. Measured: process start -> the init's first line
# (SSIHV_INIT_REACHED), and process start -> exit (the init powers off).
#
#   bench/boot/boot_bench.sh [--runs N] [--build DIR] [--out FILE] [--host]
#                            [--vmm-arg ARG]... [--only ssihv|qemu]
#
# Where the host has no KVM that can run Linux guests (these machines), it
# runs itself inside the lab VM (tests/lab/run.sh) and says so; --host
# forces the host. Results: a table on stdout and, with --out, the same
# text in FILE. Timings in the lab are comparable only as a ratio taken in
# one run (nested virtualization under TCG).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=3 build=$root/build out= where=auto only=
vmm_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --host) where=host; shift ;;
    --vmm-arg) vmm_args+=("$2"); shift 2 ;;
    --vmm-arg=*) vmm_args+=("${1#--vmm-arg=}"); shift ;;
    --only) only=$2; shift 2 ;;
    --inside) where=inside; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "boot_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
vmm=$build/apps/ssihv-vmm/ssihv-vmm
[ -x "$vmm" ] || { echo "boot_bench.sh: no $vmm (build first)" >&2; exit 2; }
eval "$("$root/tests/linux-boot/prepare.sh" --print-env)"

host_kvm_ok() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo
}
if [ "$where" = auto ] && [ "${SSIHV_LAB:-}" != 1 ] && ! host_kvm_ok; then
  echo "boot_bench: no usable KVM on this host: running inside the lab VM" >&2
  res=$(mktemp -d /tmp/ssihv-boot-bench.XXXXXX)
  rc=0
  "$root/tests/lab/run.sh" --results "$res" --timeout 3000 -- \
    "$0" --inside --runs "$runs" --build "$build" --out "$res/boot_bench.txt" \
    ${only:+--only "$only"} "${vmm_args[@]/#/--vmm-arg=}" || rc=$?
  cat "$res/boot_bench.txt"
  if [ -n "$out" ]; then cp "$res/boot_bench.txt" "$out"; fi
  exit "$rc"
fi

qemu=${SSIHV_BOOT_QEMU:-/usr/bin/qemu-system-x86_64}
cmdline="console=ttyS0 pci=off panic=-1 quiet ssihv.end=poweroff"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/cluster.json" <<'JSON'
{"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 256},
           {"id": 1, "vcpus": 1, "memory_mib": 256}]}
JSON
ssihv_cmd=("$vmm" --kernel "$LINUX_BOOT_KERNEL" --initrd "$LINUX_BOOT_INITRD"
  --config "$tmp/cluster.json" --cmdline "$cmdline"
  --stats-json "$tmp/stats.json" "${vmm_args[@]}")
qemu_cmd=("$qemu" -machine q35 -accel kvm -cpu host -smp 2 -m 512M
  -object memory-backend-ram,id=m0,size=256M
  -object memory-backend-ram,id=m1,size=256M
  -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1
  -nographic -nodefaults -no-reboot -nic none -serial stdio
  -kernel "$LINUX_BOOT_KERNEL" -initrd "$LINUX_BOOT_INITRD" -append "$cmdline")

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# One timed boot: prints "<ms to init line> <ms to exit> <exit status> <ok>".
# ok: the guest's init finished (SSIHV_DONE) and the guest powered off by
# itself: ssihv-vmm's stop reason says "guest power off", QEMU's console
# "reboot: Power down" (-no-reboot turns a reset into an exit 0 too). A boot
# that is not ok is reported and left out of the medians.
time_boot() {
  local start init_ms=- line rc=- done=0 off=0 ok=no
  rm -f "$tmp/stats.json"
  start=$(ms)
  while IFS= read -r line; do
    if [ "$init_ms" = - ] && [[ "$line" == *SSIHV_INIT_REACHED* ]]; then
      init_ms=$(( $(ms) - start ))
    fi
    [[ "$line" == SSIHV_DONE* ]] && done=1
    [[ "$line" == *"reboot: Power down"* ]] && off=1
    [[ "$line" == "BOOT_BENCH_EXIT "* ]] && rc=${line#BOOT_BENCH_EXIT }
  done < <(timeout 600 "$@" < /dev/null 2>"$tmp/stderr"; echo "BOOT_BENCH_EXIT $?")
  if [ -s "$tmp/stats.json" ]; then
    grep -q '"reason": "guest power off"' "$tmp/stats.json" && off=1
  fi
  [ "$rc" = 0 ] && [ "$done" = 1 ] && [ "$off" = 1 ] && ok=yes
  echo "$init_ms $(( $(ms) - start )) $rc $ok"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

{
  echo "# ssihv-vmm vs qemu -accel kvm boot time ($(date -u +%FT%TZ))"
  echo "# where: $( [ "${SSIHV_LAB:-}" = 1 ] && echo "lab VM (${LAB_QEMU_KIND:-qemu tcg}, nested KVM)" || echo host) kernel $(basename "$LINUX_BOOT_KERNEL")"
  echo "# guest: 2 NUMA nodes x 1 vCPU x 256 MiB; cmdline: $cmdline"
  echo "# qemu: $("$qemu" --version | head -1)"
  echo "# ssihv-vmm extra args: ${vmm_args[*]:-(none)}"
  printf '%-6s %-4s %10s %10s %4s %4s\n' vmm run init_ms exit_ms rc ok
} > "$tmp/report"
failed=0
for i in $(seq 1 "$runs"); do
  for who in ssihv qemu; do
    [ -n "$only" ] && [ "$who" != "$only" ] && continue
    if [ "$who" = ssihv ]; then r=$(time_boot "${ssihv_cmd[@]}"); else r=$(time_boot "${qemu_cmd[@]}"); fi
    read -r init_ms exit_ms rc ok <<< "$r"
    printf '%-6s %-4s %10s %10s %4s %4s\n' "$who" "$i" "$init_ms" "$exit_ms" "$rc" "$ok" >> "$tmp/report"
    if [ "$ok" != yes ]; then
      failed=$((failed + 1))
      echo "# $who run $i did not end cleanly (exit $rc): left out; its stderr:" >> "$tmp/report"
      tail -5 "$tmp/stderr" | sed 's/^/#   /' >> "$tmp/report"
      continue
    fi
    echo "$init_ms" >> "$tmp/$who.init"
    echo "$exit_ms" >> "$tmp/$who.exit"
  done
done
touch "$tmp/ssihv.init" "$tmp/qemu.init" "$tmp/ssihv.exit" "$tmp/qemu.exit"
s_init=$(median < "$tmp/ssihv.init") q_init=$(median < "$tmp/qemu.init")
s_exit=$(median < "$tmp/ssihv.exit") q_exit=$(median < "$tmp/qemu.exit")
[ -z "$only" ] && {
  echo "median init_ms: ssihv-vmm $s_init qemu $q_init ratio $(awk -v a="$s_init" -v b="$q_init" 'BEGIN {printf "%.2f", a/b}')"
  echo "median exit_ms: ssihv-vmm $s_exit qemu $q_exit ratio $(awk -v a="$s_exit" -v b="$q_exit" 'BEGIN {printf "%.2f", a/b}')"
} >> "$tmp/report"
cat "$tmp/report"
if [ -n "$out" ]; then cp "$tmp/report" "$out"; fi
[ "$failed" = 0 ] || { echo "boot_bench: $failed boots did not end cleanly" >&2; exit 1; }
