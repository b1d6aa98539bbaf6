#!/usr/bin/env bash
# Boot time of ssihv-vmm against qemu-system-x86_64 -accel kvm (issue 7):
# the same Debian kernel, busybox initramfs (tests/linux-boot/prepare.sh),
# command line, vCPUs, memory and NUMA nodes, on the same machine, runs
# alternated. Measured: process start -> the init's first line
# (SSIHV_INIT_REACHED), and process start -> exit (the init powers off).
# --compare irqchip (issue 11) compares ssihv-vmm --irqchip kernel against
# --irqchip user instead; --ipi N also has the guest measure N IPI round
# trips between its two vCPUs (ipi-pingpong: median and p90, in ns).
# ssihv-vmm runs must end with the guest's power-off (stats JSON stop
# reason), else the run is marked bad and left out of the medians.
#
#   bench/boot/boot_bench.sh [--runs N] [--build DIR] [--out FILE] [--host]
#                            [--vmm-arg ARG]... [--only NAME]
#                            [--compare qemu|irqchip] [--ipi N]
#
# Where the host has no KVM that can run Linux guests (these machines), it
# runs itself inside the lab VM (tests/lab/run.sh) and says so; --host
# forces the host. Results: a table on stdout and, with --out, the same
# text in FILE. Timings in the lab are comparable only as a ratio taken in
# one run (nested virtualization under TCG).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=3 build=$root/build out= where=auto only= compare=qemu ipi=
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
    --compare) compare=$2; shift 2 ;;
    --ipi) ipi=$2; shift 2 ;;
    --inside) where=inside; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "boot_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
case "$compare" in qemu) contenders="ssihv qemu" ;; irqchip) contenders="user kernel" ;;
  *) echo "boot_bench.sh: --compare must be qemu or irqchip" >&2; exit 2 ;; esac
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
    --compare "$compare" ${ipi:+--ipi "$ipi"} ${only:+--only "$only"} \
    "${vmm_args[@]/#/--vmm-arg=}" || rc=$?
  cat "$res/boot_bench.txt"
  if [ -n "$out" ]; then cp "$res/boot_bench.txt" "$out"; fi
  exit "$rc"
fi

qemu=${SSIHV_BOOT_QEMU:-/usr/bin/qemu-system-x86_64}
cmdline="console=ttyS0 pci=off panic=-1 quiet ssihv.end=poweroff${ipi:+ ssihv.ipi=$ipi}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/cluster.json" <<'JSON'
{"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 256},
           {"id": 1, "vcpus": 1, "memory_mib": 256}]}
JSON
ssihv_cmd=("$vmm" --kernel "$LINUX_BOOT_KERNEL" --initrd "$LINUX_BOOT_INITRD"
  --config "$tmp/cluster.json" --cmdline "$cmdline" "${vmm_args[@]}")
qemu_cmd=("$qemu" -machine q35 -accel kvm -cpu host -smp 2 -m 512M
  -object memory-backend-ram,id=m0,size=256M
  -object memory-backend-ram,id=m1,size=256M
  -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1
  -nographic -nodefaults -no-reboot -nic none -serial stdio
  -kernel "$LINUX_BOOT_KERNEL" -initrd "$LINUX_BOOT_INITRD" -append "$cmdline")

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# One timed boot of contender $1: prints "<ms to init line> <ms to exit>
# <status> <ipi median ns> <ipi p90 ns>"; the status is the exit status,
# bad:<stop reason> when ssihv-vmm did not end with the guest's power-off,
# bad:no_power_down when QEMU's console never said "reboot: Power down"
# (-no-reboot turns a reset into an exit 0 too), or bad:no_done when the
# init never finished (SSIHV_DONE). A bad boot is left out of the medians.
time_boot() {
  local who=$1 start init_ms=- line rc=- med=- p90=- reason done=0 off=0
  local cmd
  case "$who" in
    qemu) cmd=("${qemu_cmd[@]}") ;;
    ssihv) cmd=("${ssihv_cmd[@]}" --stats-json "$tmp/stats.json") ;;
    *) cmd=("${ssihv_cmd[@]}" --irqchip "$who" --stats-json "$tmp/stats.json") ;;
  esac
  rm -f "$tmp/stats.json"
  start=$(ms)
  while IFS= read -r line; do
    if [ "$init_ms" = - ] && [[ "$line" == *SSIHV_INIT_REACHED* ]]; then
      init_ms=$(( $(ms) - start ))
    fi
    if [[ "$line" == "SSIHV ipi "* ]]; then
      med=$(sed -n 's/.*rtt_ns_median=\([0-9]*\).*/\1/p' <<< "$line")
      p90=$(sed -n 's/.*rtt_ns_p90=\([0-9]*\).*/\1/p' <<< "$line")
    fi
    [[ "$line" == SSIHV_DONE* ]] && done=1
    [[ "$line" == *"reboot: Power down"* ]] && off=1
    [[ "$line" == "BOOT_BENCH_EXIT "* ]] && rc=${line#BOOT_BENCH_EXIT }
  done < <(timeout 600 "${cmd[@]}" < /dev/null 2>"$tmp/stderr"; echo "BOOT_BENCH_EXIT $?")
  local exit_ms=$(( $(ms) - start ))
  if [ "$who" != qemu ]; then
    reason=$(jq -r '.stop.reason' "$tmp/stats.json" 2>/dev/null || echo none)
    [ "$reason" = "guest power off" ] || rc="bad:${reason// /_}"
  elif [ "$off" = 0 ] && [ "$rc" = 0 ]; then
    rc=bad:no_power_down
  fi
  [ "$done" = 1 ] || [[ "$rc" == bad:* ]] || rc=bad:no_done
  echo "$init_ms $exit_ms $rc $med $p90"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

read -r first second <<< "$contenders"
{
  echo "# $first vs $second boot time ($(date -u +%FT%TZ))"
  echo "# where: $( [ "${SSIHV_LAB:-}" = 1 ] && echo "lab VM (${LAB_QEMU_KIND:-qemu tcg}, nested KVM)" || echo host) kernel $(basename "$LINUX_BOOT_KERNEL")"
  echo "# guest: 2 NUMA nodes x 1 vCPU x 256 MiB; cmdline: $cmdline"
  [ "$compare" = qemu ] && echo "# qemu: $("$qemu" --version | head -1)"
  echo "# ssihv-vmm extra args: ${vmm_args[*]:-(none)}"
  printf '%-6s %-4s %10s %10s %6s %14s %14s\n' vmm run init_ms exit_ms rc \
    ipi_median_ns ipi_p90_ns
} > "$tmp/report"
failed=0
for i in $(seq 1 "$runs"); do
  for who in $contenders; do
    [ -n "$only" ] && [ "$who" != "$only" ] && continue
    read -r init_ms exit_ms rc med p90 <<< "$(time_boot "$who")"
    printf '%-6s %-4s %10s %10s %6s %14s %14s\n' "$who" "$i" "$init_ms" \
      "$exit_ms" "$rc" "$med" "$p90" >> "$tmp/report"
    if [ "$rc" != 0 ]; then
      failed=$((failed + 1))
      echo "# $who run $i did not end cleanly ($rc): left out; its stderr:" >> "$tmp/report"
      tail -5 "$tmp/stderr" | sed 's/^/#   /' >> "$tmp/report"
      continue
    fi
    echo "$init_ms" >> "$tmp/$who.init"
    echo "$exit_ms" >> "$tmp/$who.exit"
    [ "$med" = - ] || echo "$med" >> "$tmp/$who.ipi"
  done
done
for who in $contenders; do
  touch "$tmp/$who.init" "$tmp/$who.exit" "$tmp/$who.ipi"
done
if [ -z "$only" ]; then
  for what in init exit ipi; do
    a=$(median < "$tmp/$first.$what") b=$(median < "$tmp/$second.$what")
    [ -n "$a" ] && [ -n "$b" ] || continue
    echo "median $what: $first $a $second $b ratio $first/$second $(ratio "$a" "$b")"
  done >> "$tmp/report"
fi
cat "$tmp/report"
if [ -n "$out" ]; then cp "$tmp/report" "$out"; fi
[ "$failed" = 0 ] || { echo "boot_bench: $failed boots did not end cleanly" >&2; exit 1; }
