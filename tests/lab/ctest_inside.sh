#!/usr/bin/env bash
# Inside the lab VM (lab_ctest.sh runs it through run.sh): the inner ctest,
# with core dumps on. A test process that crashes (an abort, a segfault)
# leaves its core in <results>/cores/, and its threads' backtraces are
# printed after ctest's output, so a crash seen once in CI is explained by
# the log that saw it.
#
#   ctest_inside.sh <build-dir> <results-dir> <extra-ctest-args> <labels> <exclude>
set -o pipefail
build=$1 results=$2 extra=$3 labels=$4 exclude=$5
cores=$results/cores
mkdir -p "$cores"
# %E: the executable's path with '!' for '/'; the lab's root is a throw-away
# overlay, so changing the pattern touches nothing outside this VM.
echo "$cores/core.%E.%p" > /proc/sys/kernel/core_pattern
ulimit -c unlimited
# Anonymous private memory only (no guest RAM shared with KVM, no file
# mappings): enough for the stacks, small over the 9p share.
echo 0x1 > /proc/self/coredump_filter
# junit.xml keeps a passed test's output up to 256 KiB (ctest's default is
# 1 KiB): dist_test prints each case's cost, the only record of a passing
# lab run's timings.
# shellcheck disable=SC2086  # extra arguments split on purpose
ctest --test-dir "$build" -L "$labels" -LE "$exclude" \
  --output-on-failure --no-tests=error -j "${SSIHV_LAB_JOBS:-1}" \
  --test-output-size-passed 262144 \
  --output-junit "$results/junit.xml" $extra 2>&1 | tee "$results/ctest.log"
rc=$?
for core in "$cores"/core.*; do
  [ -e "$core" ] || continue
  exe=$(basename "$core" | sed 's/^core\.//; s/\.[0-9]*$//; s/!/\//g')
  echo "lab: a test process crashed: $exe (core $core); its threads:"
  if command -v gdb >/dev/null && [ -x "$exe" ]; then
    gdb -q -batch -ex 'info signals SIGABRT' -ex 'thread apply all bt 30' \
      "$exe" "$core" 2>&1 | grep -v '^\[New LWP\|^Signal *Stop\|^SIGABRT ' |
      tee "$core.bt.txt"
  else
    echo "lab: no gdb or no $exe: keep $core for later"
  fi
done
exit $rc
