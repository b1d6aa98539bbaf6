#!/usr/bin/env bash
# The lab reliability stress (issue 15): boots a multi-vCPU, multi-node Linux
# guest again and again as a nested (L2) guest inside lab VMs, and counts
# what happened to every boot: clean / lab panic / lab hang / QEMU died /
# guest hang / unexplained guest reset / guest panic / VMM error.
#
#   tests/lab/reliability.sh [options]
#
# Options:
#   --labs M          fresh lab VMs, one after another (default 1)
#   --boots N         boots per lab VM (default 10)
#   --vmms K          VMMs booting at once in each boot (default 1; 2 is what
#                     the distributed VM does)
#   --inner ssihv|qemu  the inner VMM: ssihv-vmm (default) or Debian's
#                     qemu-system-x86_64 -accel kvm with the same guest
#   --config FILE     cluster config of the guest (default: 3 nodes, 1+2+1
#                     vCPUs, 512+384+256 MiB: the config issue 15 used)
#   --build DIR       build tree with apps/ssihv-vmm (default build)
#   --results DIR     where boots.tsv, summary.txt and failure evidence go
#                     (default a new /tmp/ssihv-reliability.*)
#   --boot-timeout S  a boot not finished after S s is a hang (default 240)
#   --stop-on-failure stop after the first lab VM with a failure
#   -h, --help
#
# The lab knobs under test come from the environment, as for run.sh:
# SSIHV_LAB_TCG_THREAD (multi|single), SSIHV_LAB_KERNEL_PKG, SSIHV_LAB_CPU
# (QEMU -cpu model), SSIHV_LAB_KVM_AMD (kvm_amd module parameters),
# SSIHV_LAB_KERNEL_ARGS (the lab kernel's extra command line),
# SSIHV_LAB_QEMU. The default is what tests/lab/pins.env pins.
# SSIHV_STRESS_VMM_ARGS adds ssihv-vmm arguments (e.g. "--irqchip user").
# SSIHV_STRESS_TRACE=1 keeps the lab kernel's KVM trace of every failed
# boot, frozen at its triple fault (trace.txt.gz; reliability/inner.sh).
#
# Exit status: 0 when every boot of every lab VM was clean, 1 otherwise, 2 bad
# usage. summary.txt has the counts and the lab configuration; docs/LAB.md
# has the table this script produced for each candidate.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

labs=1 boots=10 vmms=1 inner=ssihv config= build=$root/build results=
boot_timeout=240 stop_on_failure=0
while [ $# -gt 0 ]; do
  case "$1" in
    --labs) labs=${2:?}; shift 2 ;;
    --boots) boots=${2:?}; shift 2 ;;
    --vmms) vmms=${2:?}; shift 2 ;;
    --inner) inner=${2:?}; shift 2 ;;
    --config) config=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --results) results=${2:?}; shift 2 ;;
    --boot-timeout) boot_timeout=${2:?}; shift 2 ;;
    --stop-on-failure) stop_on_failure=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
      exit 0 ;;
    *) echo "reliability.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in labs boots vmms boot_timeout; do
  [[ "${!n}" =~ ^[1-9][0-9]*$ ]] ||
    { echo "reliability.sh: --${n//_/-} must be a positive integer" >&2; exit 2; }
done
case "$inner" in ssihv|qemu) ;; *)
  echo "reliability.sh: --inner must be ssihv or qemu" >&2; exit 2 ;; esac
vmm=$build/apps/ssihv-vmm/ssihv-vmm
[ "$inner" = qemu ] || [ -x "$vmm" ] ||
  { echo "reliability.sh: no $vmm (build first: scripts/build.sh release)" >&2; exit 2; }
command -v jq >/dev/null ||
  { echo "reliability.sh: jq is missing (scripts/setup.sh installs it)" >&2; exit 2; }

[ -n "$results" ] || results=$(mktemp -d /tmp/ssihv-reliability.XXXXXX)
mkdir -p "$results"
results=$(cd "$results" && pwd)
if [ -z "$config" ]; then
  config=$results/cluster.json
  cat > "$config" <<'EOF'
{"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 512},
           {"id": 1, "vcpus": 2, "memory_mib": 384},
           {"id": 2, "vcpus": 1, "memory_mib": 256}]}
EOF
fi
[ -r "$config" ] || { echo "reliability.sh: cannot read --config $config" >&2; exit 2; }
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")

# The L2 guest: the lab's own Debian kernel, the stress init.
eval "$("$here/prepare.sh" --print-env)"
initrd=$results/guest-initramfs.cpio
stage=$(mktemp -d)
mkdir -p "$stage"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$stage/bin/busybox"
install -m 755 "$here/reliability/guest-init" "$stage/init"
mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$initrd"
rm -rf "$stage"

say() { echo "reliability: $*" >&2; }
: > "$results/boots.tsv"
: > "$results/labs.tsv"
for lab in $(seq 1 "$labs"); do
  before=$(wc -l < "$results/boots.tsv")
  rc=0
  "$here/run.sh" --no-retry --results "$results" \
    --timeout $(( boots * (boot_timeout + 30) + 120 )) -- \
    "$here/reliability/inner.sh" "$results" "$lab" "$boots" "$vmms" "$inner" \
    "$config" "$LAB_KERNEL" "$initrd" "$vmm" "$boot_timeout" \
    2> >(tee "$results/lab$lab.run.log" >&2) || rc=$?
  cp "$results/.lab/console.log" "$results/lab$lab.console.log" 2>/dev/null || true
  after=$(wc -l < "$results/boots.tsv")
  lab_outcome=ok
  if [ "$rc" != 0 ]; then
    con=$(tr -d '\r' < "$results/lab$lab.console.log" 2>/dev/null || true)
    if grep -qE 'Kernel panic|BUG:|Oops|general protection|stack guard' <<<"$con"; then
      lab_outcome=lab-panic
    elif [ "$rc" = 125 ] && grep -q 'LAB VM HUNG' "$results/lab$lab.run.log" 2>/dev/null; then
      lab_outcome=lab-hang
    elif [ "$rc" = 124 ]; then
      lab_outcome=lab-timeout
    else
      lab_outcome=lab-died
    fi
    detail=$(grep -m1 -E 'Kernel panic|BUG:|Oops|general protection' <<<"$con" |
      cut -c1-160 || true)
    # The boot that was running when the lab went down counts as that.
    for v in $(seq 1 "$vmms"); do
      printf '%s\t%s\t%s\t0\t%s\t%s\n' "$lab" "$(( (after - before) / vmms + 1 ))" \
        "$v" "$lab_outcome" "run.sh exit $rc; $detail" >> "$results/boots.tsv"
    done
  fi
  printf '%s\t%s\t%s\n' "$lab" "$lab_outcome" "$rc" >> "$results/labs.tsv"
  say "lab $lab: $lab_outcome (run.sh exit $rc), $(( (after - before) / vmms )) boots recorded"
  if [ "$stop_on_failure" = 1 ] && awk -F'\t' -v l="$lab" '$1==l && $5!="clean"' \
    "$results/boots.tsv" | grep -q .; then
    break
  fi
done

{
  echo "# tests/lab/reliability.sh --labs $labs --boots $boots --vmms $vmms --inner $inner"
  echo "# $(date -u +%FT%TZ) host $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# lab: $LAB_QEMU_KIND tcg thread=$LAB_TCG_THREAD cpu=$LAB_CPU kernel $LAB_KVER kvm_amd '$LAB_KVM_AMD' kernel args '$LAB_KERNEL_ARGS'"
  echo "# ssihv-vmm extra args: '${SSIHV_STRESS_VMM_ARGS:-}'"
  echo "# guest config: $(jq -c . "$config")"
  sort -u "$results/labs.txt" 2>/dev/null | head -4
  awk -F'\t' '{n[$5]++; t++} END {
      printf "boots=%d", t; for (k in n) printf " %s=%d", k, n[k]; printf "\n" }' \
    "$results/boots.tsv"
} > "$results/summary.txt"
cat "$results/summary.txt" >&2
say "details: $results/boots.tsv (failures keep their console under $results/lab*/)"
! awk -F'\t' '$5 != "clean"' "$results/boots.tsv" | grep -q .
