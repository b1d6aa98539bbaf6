#!/usr/bin/env bash
# Tests tests/lab/run.sh itself (label lab): exit status, environment, working
# directory and the results share pass through; writes to the lab's root do
# not reach the host; --shell takes its input from the console; and the
# failure paths are told apart: a timeout (124), a hung VM retried once (125),
# a crashed VM (125), QEMU itself dying of a signal (125, its core's stack).
#
#   tests/lab/runner_test.sh <scratch-dir>
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scratch=${1:?usage: runner_test.sh <scratch-dir>}
rm -rf "$scratch"
mkdir -p "$scratch/cwd"
scratch=$(cd "$scratch" && pwd)
failures=0

expect() {  # description expected actual
  if [ "$2" = "$3" ]; then echo "ok    $1"
  else echo "FAIL  $1: expected '$2', got '$3'"; failures=$((failures + 1))
  fi
}
expect_grep() {  # description pattern file
  if grep -q -- "$2" "$3"; then echo "ok    $1"
  else echo "FAIL  $1: no '$2' in $3"; failures=$((failures + 1))
  fi
}
lab() {  # name args... -> $rc, output in $scratch/name.out
  local name=$1
  shift
  rc=0
  "$here/run.sh" "$@" > "$scratch/$name.out" 2>&1 || rc=$?
  sed "s/^/  [$name] /" "$scratch/$name.out" | tr -d '\r' | tail -n 6
}

# 1. Status, environment, cwd, results share; the root is a throw-away layer.
leak=$scratch/cwd/written-inside
cd "$scratch/cwd" || exit 1
SSIHV_RUNNER_PROBE=from-host lab pass \
  --results "$scratch/res" --env EXTRA=from-env -- bash -c '
    [ "$PWD" = "$1" ] || exit 10
    [ "$SSIHV_RUNNER_PROBE" = from-host ] || exit 11
    [ "$EXTRA" = from-env ] || exit 12
    [ "$SSIHV_LAB" = 1 ] || exit 13
    [ "$SSIHV_LAB_RESULTS" = "$2" ] || exit 14
    echo result > "$SSIHV_LAB_RESULTS/out.txt" || exit 15
    echo leak > "$3" || exit 16
    exit 7' _ "$scratch/cwd" "$scratch/res" "$leak"
cd "$scratch" || exit 1
expect "the command's exit status comes back" 7 "$rc"
expect "results written inside reach the host" result \
  "$(cat "$scratch/res/out.txt" 2>/dev/null)"
expect "writes to the lab's root stay in the lab" absent \
  "$([ -e "$leak" ] && echo present || echo absent)"

# 2. --shell: an interactive shell on the console. Input typed before the
#    prompt is lost (as on a real console), so type once it is there.
fifo=$scratch/shell.in
mkfifo "$fifo"
rc=0
"$here/run.sh" --shell --timeout 120 --results "$scratch/shell" < "$fifo" \
  > "$scratch/shell.out" 2>&1 &
shell_pid=$!
exec 7> "$fifo"
for _ in $(seq 1 120); do
  grep -q "leave with 'exit'" "$scratch/shell.out" && break
  sleep 1
done
sleep 2  # bash -i prints its prompt after init's last line
printf 'echo shell-says-$((6*7)); exit 5\n' >&7
wait "$shell_pid" || rc=$?
exec 7>&-
expect "--shell returns the shell's exit status" 5 "$rc"
expect_grep "--shell ran the typed command" shell-says-42 "$scratch/shell.out"

# 3. A command slower than --timeout: QEMU killed, 124, not retried.
lab timeout --timeout 20 --results "$scratch/to" -- sleep 600
expect "a slow command ends with status 124" 124 "$rc"
expect_grep "the timeout is reported as such" "TIMEOUT" "$scratch/timeout.out"

# 4. A hung VM (heartbeat stops: every process but init stopped): 125,
#    retried once, saying so, with the last console lines.
SSIHV_LAB_HANG_S=8 lab hung --timeout 120 --results "$scratch/hung" -- \
  bash -c 'echo about-to-freeze; kill -STOP -1; sleep 600'
expect "a hung VM ends with status 125" 125 "$rc"
expect_grep "the hang is reported as such" "LAB VM HUNG" "$scratch/hung.out"
expect_grep "a hung run is retried once" "retrying the hung run ONCE" \
  "$scratch/hung.out"
expect "and only once" 2 "$(grep -c 'LAB VM HUNG' "$scratch/hung.out")"
expect_grep "the last console lines are shown" "| about-to-freeze" \
  "$scratch/hung.out"

# 5. A crashed VM (kernel panic): 125, reported as a crash, not retried.
lab crash --timeout 120 --results "$scratch/crash" -- \
  bash -c 'echo c > /proc/sysrq-trigger; sleep 600'
expect "a crashed VM ends with status 125" 125 "$rc"
expect_grep "the crash is reported as such" "LAB VM CRASHED" "$scratch/crash.out"
expect "a crash is not retried" 0 "$(grep -c retrying "$scratch/crash.out")"

# 6. QEMU itself dies of a signal (SIGSEGV, sent here from the host once
# the VM is up): 125, a crash, with QEMU's core and the crashing thread's
# stack reported (gdb is in scripts/packages.txt).
"$here/run.sh" --timeout 120 --results "$scratch/qsegv" -- sleep 600 \
  > "$scratch/qsegv.out" 2>&1 &
runner=$!
for _ in $(seq 120); do
  grep -q 'ready at' "$scratch/qsegv.out" 2>/dev/null && break
  sleep 1
done
guard=$(pgrep -f "^timeout .*mount_tag=results.*$scratch/qsegv" | head -n 1)
qemu=$([ -n "$guard" ] && pgrep -P "$guard" | head -n 1)
[ -n "$qemu" ] && kill -SEGV "$qemu"
rc=0
wait "$runner" || rc=$?
sed "s/^/  [qsegv] /" "$scratch/qsegv.out" | tr -d '\r' | grep -E 'CRASHED|signal|stack|#[0-9]' | head -n 6
expect "a QEMU killed by SIGSEGV ends with status 125" 125 "$rc"
expect_grep "its death is reported" "QEMU died of signal 11" \
  "$scratch/qsegv.out"
# The core and its stack only where the kernel writes cores to a file (a
# core_pattern that pipes to a collector, or a hard core limit of 0, keeps
# it from run.sh, which then says so).
if grep -q "QEMU died of signal 11; its core:" "$scratch/qsegv.out"; then
  expect_grep "with the stack of the thread that crashed" "  | #1 " \
    "$scratch/qsegv.out"
else
  expect_grep "or why there is no core" "no core in" "$scratch/qsegv.out"
fi
rm -f "$scratch/qsegv/.lab/core" "$scratch"/qsegv/.lab/core.*

# No QEMU of ours is left behind.
expect "no lab QEMU left running" "" \
  "$(pgrep -f "mount_tag=results.*$scratch" || true)"

if [ "$failures" -ne 0 ]; then
  echo "runner_test: $failures check(s) failed"
  exit 1
fi
echo "runner_test: all checks passed"
