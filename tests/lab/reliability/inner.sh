#!/usr/bin/env bash
# Inside the lab VM: boots the stress guest `boots` times, `vmms` VMMs at once
# each time, and appends one line per VMM run to <out>/boots.tsv (synced at
# once, so a lab crash loses nothing already counted). Called by
# tests/lab/reliability.sh; not meant to be run by hand.
#
#   inner.sh OUT LAB BOOTS VMMS INNER CONFIG KERNEL INITRD VMM BOOT_TIMEOUT
#
# INNER: ssihv (ssihv-vmm at VMM) or qemu (Debian's qemu-system-x86_64
# -accel kvm, the same guest and vCPU count, for comparison).
# Outcomes per VMM run:
#   clean        exit 0, the guest powered off by itself after SSIHV_DONE
#                with every vCPU online
#   guest-reset  the guest reset or triple-faulted (or exited 0 without
#                finishing): nothing asked for a reset
#   guest-panic  the guest kernel panicked
#   hang         no end within BOOT_TIMEOUT s (killed)
#   vmm-error    any other exit (status and last stderr line recorded)
set -uo pipefail
out=$1 lab=$2 boots=$3 vmms=$4 inner=$5 config=$6 kernel=$7 initrd=$8
vmm=$9 boot_timeout=${10}

want_nproc=$(jq '[.nodes[].vcpus] | add' "$config")
mem_mib=$(jq '[.nodes[].memory_mib] | add' "$config")
# SSIHV_STRESS_APPEND replaces "quiet" (e.g. "earlyprintk=serial,ttyS0"
# to see how far a failing boot got).
append="${SSIHV_STRESS_APPEND:-quiet} ssihv.work_s=${SSIHV_STRESS_WORK_S:-4}"
# SSIHV_STRESS_VMM_ARGS: more ssihv-vmm arguments (e.g. "--irqchip user").
read -r -a vmm_args <<< "${SSIHV_STRESS_VMM_ARGS:-}"

# SSIHV_STRESS_TRACE=1: the lab kernel's KVM trace (exits, injected
# interrupts and exceptions, nested page faults, MSR accesses, IPIs) in a
# 16 MiB-per-CPU ring buffer during each boot, frozen by the first SHUTDOWN
# exit (SVM exit code 0x7f: a triple fault; the lab is AMD), so that the
# events that led to an unexplained reset survive the rest of the run. A
# failed boot keeps the last 200,000 events in trace.txt.gz.
trace=/sys/kernel/tracing
trace_events="kvm_exit kvm_inj_virq kvm_inj_exception kvm_page_fault kvm_msr kvm_apic_ipi"
trace_on() {
  [ "${SSIHV_STRESS_TRACE:-0}" = 1 ] || return 0
  [ -d "$trace/events/kvm" ] || mount -t tracefs nodev "$trace" 2>/dev/null || true
  echo 0 > "$trace/tracing_on"
  echo 16384 > "$trace/buffer_size_kb"
  : > "$trace/trace"
  echo '!traceoff if exit_reason == 127' > "$trace/events/kvm/kvm_exit/trigger" 2>/dev/null
  echo 'traceoff if exit_reason == 127' > "$trace/events/kvm/kvm_exit/trigger"
  local e
  for e in $trace_events; do echo 1 > "$trace/events/kvm/$e/enable"; done
  echo 1 > "$trace/tracing_on"
}
trace_keep() {  # dir
  [ "${SSIHV_STRESS_TRACE:-0}" = 1 ] || return 0
  echo 0 > "$trace/tracing_on"
  [ -s "$1/trace.txt.gz" ] || tail -n 200000 "$trace/trace" | gzip > "$1/trace.txt.gz"
}

{
  echo "# lab $lab: L1 kernel $(uname -r), ${SSIHV_LAB_QEMU:-?}, cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "# kvm_amd: $(cd /sys/module/kvm_amd/parameters && for p in *; do printf '%s=%s ' "$p" "$(cat "$p")"; done)"
  echo "# L1 THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled); cmdline: $(cat /proc/cmdline)"
} >> "$out/labs.txt"

run_one() {  # boot vmm-index -> writes $dir/rc, console, err, stats.json
  local dir=$1
  local start=$(date +%s%N)
  if [ "$inner" = qemu ]; then
    timeout -s KILL "$boot_timeout" qemu-system-x86_64 -machine q35 \
      -accel kvm -cpu host -smp "$want_nproc" -m "${mem_mib}M" \
      -display none -no-reboot -nodefaults -nic none -serial stdio \
      -kernel "$kernel" -initrd "$initrd" \
      -append "console=ttyS0 panic=-1 $append" \
      </dev/null >"$dir/console" 2>"$dir/err"
  else
    timeout -s KILL "$boot_timeout" "$vmm" --kernel "$kernel" \
      --initrd "$initrd" --config "$config" --stats-json "$dir/stats.json" \
      --append "$append" "${vmm_args[@]}" </dev/null >"$dir/console" 2>"$dir/err"
  fi
  echo $? > "$dir/rc"
  echo $(( ($(date +%s%N) - start) / 1000000 )) > "$dir/ms"
}

classify() {  # dir -> "outcome<TAB>detail"
  local dir=$1 rc reason=
  rc=$(cat "$dir/rc")
  local con
  con=$(tr -d '\r' < "$dir/console")
  local done_line nproc=
  done_line=$(grep -a 'SSIHV_DONE' <<<"$con" | tail -1)
  [ -n "$done_line" ] && nproc=${done_line#*nproc=}
  if [ -s "$dir/stats.json" ]; then
    reason=$(jq -r '.stop.reason' "$dir/stats.json" 2>/dev/null)
  fi
  if [ "$rc" = 137 ]; then
    printf 'hang\tkilled after %ss; last console: %s' "$boot_timeout" \
      "$(grep -av '^$' <<<"$con" | tail -1 | cut -c1-120)"
  elif grep -aq 'Kernel panic - not syncing' <<<"$con"; then
    printf 'guest-panic\t%s' "$(grep -a -m1 'Kernel panic' <<<"$con" | cut -c1-160)"
  elif [ "$inner" = ssihv ] && [ "$rc" = 0 ] && [ "$reason" = "guest power off" ] &&
    [ "$nproc" = "$want_nproc" ]; then
    printf 'clean\t'
  elif [ "$inner" = qemu ] && [ "$rc" = 0 ] && [ "$nproc" = "$want_nproc" ] &&
    grep -aq 'reboot: Power down' <<<"$con"; then
    printf 'clean\t'
  elif [ "$rc" = 0 ] || [ "$reason" = "guest reset" ] ||
    [[ "$reason" == "guest triple fault"* ]]; then
    printf 'guest-reset\treason=%s done=%s; %s; last console: %s' "${reason:-?}" \
      "${nproc:-no}" "$(grep -a -m1 -o 'pages the loader wrote.*' "$dir/err" | cut -c1-160)" \
      "$(grep -av '^$' <<<"$con" | tail -1 | cut -c1-120)"
  else
    printf 'vmm-error\texit %s reason=%s: %s' "$rc" "${reason:-?}" \
      "$(tail -1 "$dir/err" | cut -c1-160)"
  fi
}

for b in $(seq 1 "$boots"); do
  trace_on
  pids=()
  for v in $(seq 1 "$vmms"); do
    dir=$out/lab$lab/boot$b.vmm$v
    mkdir -p "$dir"
    echo "running lab $lab boot $b vmm $v" > "$out/lab$lab.current"
    run_one "$dir" &
    pids+=($!)
  done
  wait "${pids[@]}"
  for v in $(seq 1 "$vmms"); do
    dir=$out/lab$lab/boot$b.vmm$v
    line=$(classify "$dir")
    printf '%s\t%s\t%s\t%s\t%s\n' "$lab" "$b" "$v" "$(cat "$dir/ms")" "$line" \
      >> "$out/boots.tsv"
    echo "reliability: lab $lab boot $b vmm $v: ${line%%	*} ($(cat "$dir/ms") ms)"
    # Keep the evidence of failures only (a clean boot's console is noise).
    [[ "$line" == clean* ]] || trace_keep "$dir"
    [[ "$line" == clean* ]] && rm -rf "$dir"
  done
  sync
done
rm -f "$out/lab$lab.current"
