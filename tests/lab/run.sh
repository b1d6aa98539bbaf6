#!/usr/bin/env bash
# Runs a command inside the lab VM: real KVM (kvm_amd on QEMU's emulated SVM)
# and real RDMA (rdma_rxe, device rxe0) on a machine that has neither.
#
#   tests/lab/run.sh [options] -- <command> [args...]
#   tests/lab/run.sh --shell [options] [-- <command> [args...]]
#
# The command runs as root in a chroot of the host's own filesystem (9p,
# read-only, under a throw-away tmpfs overlay), in the caller's working
# directory, so host-built binaries run unchanged at their own paths. Its
# exit status is run.sh's exit status.
#
# Options:
#   --timeout S     hard limit for boot + command, a retry included (default
#                   600, or $SSIHV_LAB_TIMEOUT; --shell: none unless given);
#                   QEMU itself is killed at the limit
#   --results DIR   writable share, mounted at the same path inside and
#                   exported there as $SSIHV_LAB_RESULTS (default:
#                   $SSIHV_LAB_RESULTS, else a new folder under /tmp)
#   --env NAME=VAL  extra environment for the command (repeatable); the
#                   caller's SSIHV_* variables are passed anyway
#   --shell         interactive shell (or the command) on the console;
#                   Ctrl-A X kills the VM, `exit` powers it off
#   --no-retry      do not retry a hung VM
#   -h, --help
#
# Exit status: the command's; 124 when the timeout killed a live VM (the
# command was too slow or stuck: a test failure); 125 when the lab itself
# failed (VM hung twice or crashed; prepare.sh or the VM's setup failed).
# A hung VM (heartbeat stale for $SSIHV_LAB_HANG_S s, default 60, or none
# within $SSIHV_LAB_BOOT_S s of boot, default 90) is retried once, saying so.
# Console log and lab facts: <results>/.lab/{console.log,lab.env,status}.
#
# Environment: SSIHV_LAB_ACCEL=kvm boots with the host's KVM instead of TCG
# (faster for RDMA-only work; KVM tests then fail: no nested SVM here);
# prepare.sh documents SSIHV_LAB_CACHE, SSIHV_LAB_OMIT_MODULES, SSIHV_LAB_QEMU.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; }
timeout_s=${SSIHV_LAB_TIMEOUT:-600}
hang_s=${SSIHV_LAB_HANG_S:-60}
boot_s=${SSIHV_LAB_BOOT_S:-90}
results=${SSIHV_LAB_RESULTS:-}
mode=run retry=1 timeout_given=0
extra_env=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_s=${2:?--timeout needs seconds}; timeout_given=1; shift 2 ;;
    --results) results=${2:?--results needs a folder}; shift 2 ;;
    --env) [[ "${2:-}" == [A-Za-z_]*=* ]] ||
             { echo "run.sh: --env needs NAME=VALUE" >&2; exit 2; }
           extra_env+=("$2"); shift 2 ;;
    --shell) mode=shell; shift ;;
    --no-retry) retry=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$timeout_s" =~ ^[0-9]+$ ]] && [ "$timeout_s" -gt 0 ] ||
  { echo "run.sh: --timeout must be a positive number of seconds" >&2; exit 2; }
if [ $# -eq 0 ]; then
  if [ "$mode" = shell ]; then set -- bash -i
  else echo "run.sh: no command (usage: run.sh [options] -- <command...>)" >&2; exit 2
  fi
fi

say() { echo "lab: $*" >&2; }

if [ -z "$results" ]; then
  results=$(mktemp -d /tmp/ssihv-lab.XXXXXX)
fi
mkdir -p "$results/.lab"
results=$(cd "$results" && pwd)
[[ "$results" =~ ^[A-Za-z0-9_./+-]+$ ]] ||
  { echo "run.sh: --results path must not contain spaces or quotes: $results" >&2; exit 2; }
ctl=$results/.lab
exec 8>"$ctl/lock"
flock -n 8 || { echo "run.sh: another lab VM uses $results" >&2; exit 2; }

lab_env=$("$here/prepare.sh" --print-env) ||
  { say "LAB SETUP FAILED: tests/lab/prepare.sh (see its messages above)"; exit 125; }
eval "$lab_env"

# The command, as a script in the share: no quoting through the kernel
# command line, and the environment goes with it.
write_cmd() {
  {
    echo "# written by tests/lab/run.sh"
    echo ". '$ctl/lab.env'"
    local name
    while IFS= read -r name; do
      case "$name" in SSIHV_LAB_*) continue ;; esac
      printf 'export %s=%q\n' "$name" "${!name}"
    done < <(compgen -e | grep -E '^SSIHV_' || true)
    local kv
    for kv in "${extra_env[@]}"; do printf 'export %q\n' "$kv"; done
    printf 'export SSIHV_LAB_CACHE=%q\n' "$LAB_CACHE"
    printf 'export TERM=%q\n' "${TERM:-linux}"
    printf 'cd %q || exit 126\n' "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    echo
  } > "$ctl/cmd.sh.tmp"
  mv "$ctl/cmd.sh.tmp" "$ctl/cmd.sh"
}

accel=tcg,thread=$LAB_TCG_THREAD cpu=$LAB_CPU
if [ "${SSIHV_LAB_ACCEL:-tcg}" = kvm ]; then
  accel=kvm cpu=host
  say "SSIHV_LAB_ACCEL=kvm: host KVM, no nested SVM: /dev/kvm inside will be missing"
fi

qargs=()
[ -n "$LAB_QEMU_DATA" ] && qargs+=(-L "$LAB_QEMU_DATA")
chardev="stdio,id=con,mux=on,logfile=$ctl/console.log"
# Batch runs: Ctrl-C on the host stops the run; the shell passes it in.
[ "$mode" = run ] && chardev+=",signal=on"
[ "$mode" = shell ] && chardev+=",signal=off"
# -display none rather than -nographic: with -nographic SeaBIOS also writes
# to the serial console, starting with a terminal reset (ESC c) that wipes
# the caller's screen. The console is the serial port either way.
qargs+=(-machine q35 -accel "$accel" -cpu "$cpu" -smp 2 -m 2G
  -display none -no-reboot -nic none -nodefaults
  -chardev "$chardev" -serial chardev:con -mon chardev=con,mode=readline
  -kernel "$LAB_KERNEL" -initrd "$LAB_INITRD"
  -d cpu_reset -D "$ctl/qemu-reset.log"
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$results,mount_tag=results,security_model=none,multidevs=remap")

cmdline="console=ttyS0 panic=-1 quiet mitigations=off lab.mode=$mode lab.results=$results lab.qemu=$LAB_QEMU_KIND"
# kvm_amd's parameters travel on the kernel command line as modprobe would
# take them from /etc/modprobe.d (the kernel applies kvm_amd.x=y itself).
for p in $LAB_KVM_AMD; do cmdline+=" kvm_amd.$p"; done
[ -n "$LAB_KERNEL_ARGS" ] && cmdline+=" $LAB_KERNEL_ARGS"

last_console() {
  say "last console lines:"
  tail -n "${1:-25}" "$ctl/console.log" 2>/dev/null | tr -d '\r' | sed 's/^/  | /' >&2
}

# What the lab kernel itself reported (panics, BUGs, oopses, lockups, RCU
# stalls, warnings): the lab's problems, never the command's.
lab_kernel_problems() {
  tr -d '\r' < "$ctl/console.log" 2>/dev/null | grep -E \
    'Kernel panic|BUG:|Oops|general protection fault|soft lockup|hard LOCKUP|rcu_(preempt|sched) detected stall|WARNING: CPU:|stack guard page|corrupted stack' |
    head -n "${1:-8}" || true
}

report_lab_kernel() {  # verdict-words
  local lines
  lines=$(lab_kernel_problems)
  [ -n "$lines" ] || return 0
  say "$1 (the lab kernel's own messages, not the command's):"
  sed 's/^/  | /' <<<"$lines" >&2
}

# -no-reboot turns a reset of the lab VM into QEMU's exit with status 0;
# QEMU's reset log (-d cpu_reset) tells a triple fault of the lab kernel
# from a reset it asked for, with the CPU's state at that moment.
report_lab_reset() {
  local log=$ctl/qemu-reset.log resets
  [ -s "$log" ] || return 0
  resets=$(grep -c '^CPU Reset' "$log" || true)
  if grep -q 'Triple fault' "$log"; then
    say "the lab kernel TRIPLE-FAULTED (QEMU's reset log, $log):"
  else
    # QEMU's own power-on resets are in the count too.
    say "QEMU's reset log ($log): no triple fault, $resets CPU resets, the last:"
  fi
  # The state of the CPUs at the last reset: where the lab kernel was.
  tr -d '\r' < "$log" | grep -E 'Triple fault|^CPU Reset|^(RAX|RSI|R8|R12|RIP|CR0|EFER) ?=' |
    tail -n 14 | sed 's/^/  | /' >&2
}

# A QEMU that died of a signal: where its core is and, with gdb, the stack
# of the thread that crashed. (On 2026-12-05 the lab's QEMU died once of
# SIGSEGV during a boot, before init, with core dumps off: unexplained.)
report_qemu_core() {
  [ "${qemu_rc:-0}" -gt 128 ] || return 0
  local core
  core=$(ls -t "$ctl"/core "$ctl"/core.* 2>/dev/null | head -n 1 || true)
  if [ -z "$core" ]; then
    say "QEMU died of signal $((qemu_rc - 128)); no core in $ctl (core_pattern: $(cat /proc/sys/kernel/core_pattern 2>/dev/null))"
    return 0
  fi
  say "QEMU died of signal $((qemu_rc - 128)); its core: $core"
  command -v gdb > /dev/null || return 0
  say "the crashing thread's stack:"
  gdb -batch -nx -ex 'bt 24' "$LAB_QEMU" "$core" 2>/dev/null |
    grep -E '^#' | awk '!seen[$0]++' | head -n 24 | sed 's/^/  | /' >&2 || true
}

kill_qemu() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in 1 2 3 4 5; do kill -0 "$1" 2>/dev/null || return 0; sleep 1; done
  kill -KILL "$1" 2>/dev/null || true
}

# One boot. Sets $outcome: exit:<n> | timeout | hung | crashed | setup:<why>
boot_once() {
  rm -f "$ctl/status" "$ctl/heartbeat" "$ctl/lab.env" "$ctl/console.log"
  local start now qpid stdin=/dev/null
  start=$(date +%s)
  [ "$mode" = shell ] && stdin=/dev/stdin
  # `timeout` is a second guard: should run.sh itself be killed (a CTest
  # timeout sends SIGKILL), QEMU still dies shortly after the deadline.
  # (--foreground keeps the console's terminal usable for --shell.)
  local guard=(timeout -k 5 $((deadline - start + 30)))
  [ "$mode" = shell ] && guard=(timeout --foreground -k 5 $((deadline - start + 30)))
  [ "$mode" = shell ] && [ "$timeout_given" = 0 ] && guard=()
  rm -f "$ctl"/core "$ctl"/core.*
  # QEMU runs in .lab with core dumps on, so that a QEMU that crashes
  # leaves its core there for report_qemu_core (with the kernel's default
  # core_pattern; a pipe pattern hands it to the system's collector).
  (cd "$ctl" && { ulimit -c unlimited 2>/dev/null || true; } &&
    exec "${guard[@]}" "$LAB_QEMU" "${qargs[@]}" -append "$cmdline") < "$stdin" &
  qpid=$!
  trap 'kill_qemu '"$qpid"'; exit 130' INT TERM
  outcome=
  while kill -0 "$qpid" 2>/dev/null; do
    sleep 1
    now=$(date +%s)
    # Hung first: a VM that never reaches init or stops its heartbeat is a
    # lab failure (retried), not the command's.
    if [ "$mode" = run ] && [ -e "$ctl/heartbeat" ]; then
      [ $((now - $(stat -c %Y "$ctl/heartbeat"))) -ge "$hang_s" ] && outcome=hung
    elif [ "$mode" = run ] && [ $((now - start)) -ge "$boot_s" ]; then
      outcome=hung
    fi
    if [ -z "$outcome" ] && [ "$now" -ge "$deadline" ] &&
      { [ "$mode" = run ] || [ "$timeout_given" = 1 ]; }; then
      outcome=timeout
    fi
    if [ -n "$outcome" ]; then
      kill_qemu "$qpid"
      break
    fi
  done
  local qrc=0
  wait "$qpid" || qrc=$?
  trap - INT TERM
  elapsed=$(( $(date +%s) - start ))
  [ -n "$outcome" ] && return 0
  local status
  status=$(cat "$ctl/status" 2>/dev/null || true)
  case "$status" in
    "exit "*) outcome=exit:${status#exit } ;;
    setup-failed:*) outcome=setup:${status#setup-failed: } ;;
    *) outcome=crashed; qemu_rc=$qrc ;;
  esac
}

write_cmd "$@"
# One deadline for the whole run: a retry gets only the time that is left.
deadline=$(( $(date +%s) + timeout_s ))
say "booting ($LAB_QEMU_KIND, accel=$accel, kernel $LAB_KVER${LAB_OMIT_MODULES:+, initramfs WITHOUT $LAB_OMIT_MODULES}); results in $results"
attempt=1
while :; do
  boot_once
  case "$outcome" in
    hung)
      if [ -e "$ctl/heartbeat" ]; then
        say "LAB VM HUNG: no heartbeat for ${hang_s}s (after ${elapsed}s); QEMU killed"
      else
        say "LAB VM HUNG: no heartbeat within ${boot_s}s of boot; QEMU killed"
      fi
      report_lab_kernel "LAB KERNEL"
      last_console
      if [ "$retry" = 1 ] && [ "$attempt" = 1 ] &&
        [ $((deadline - $(date +%s))) -ge 30 ]; then
        mv "$ctl/console.log" "$ctl/console.attempt1.log" 2>/dev/null || true
        say "retrying the hung run ONCE (attempt 2 of 2; first console: $ctl/console.attempt1.log)"
        attempt=2
        continue
      fi
      exit 125 ;;
    timeout)
      say "TIMEOUT: the command did not finish within ${timeout_s}s (the VM was alive); QEMU killed"
      last_console
      exit 124 ;;
    crashed)
      if grep -q 'Kernel panic' "$ctl/console.log" 2>/dev/null; then
        say "LAB VM CRASHED: the lab kernel panicked after ${elapsed}s (QEMU status ${qemu_rc}); a lab failure, not the command's"
      else
        say "LAB VM CRASHED: QEMU exited (status ${qemu_rc}) after ${elapsed}s without the command's status; a lab failure, not the command's"
      fi
      report_qemu_core
      report_lab_reset
      report_lab_kernel "LAB KERNEL"
      last_console 40
      exit 125 ;;
    setup:*)
      say "LAB SETUP FAILED: ${outcome#setup:}"
      last_console
      exit 125 ;;
    exit:*)
      rc=${outcome#exit:}
      [ "$attempt" = 2 ] && say "note: this result comes from the retry after a hung VM"
      report_lab_kernel "LAB WARNING: the lab kernel reported problems during this run"
      say "command exited with status $rc (${elapsed}s including boot)"
      exit "$rc" ;;
  esac
done
