#!/usr/bin/env bash
# Runs one program of the ThreadSanitizer build (scripts/build.sh tsan) with
# the project's suppressions (tests/tsan.supp: guest memory only) and fails
# when TSan reported anything, the program's own status otherwise:
#   tests/tsan.sh build-tsan/libpager/pager_uffd_test
#   tests/tsan.sh build-tsan/bench/pager/dsm_stress --history --nodes 3 --kill
# Reports go to stderr and, one file per process (dsm_stress forks its
# nodes), to $SSIHV_TSAN_LOG_DIR (default: a new directory under /tmp).
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARGS...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
logs=${SSIHV_TSAN_LOG_DIR:-$(mktemp -d /tmp/ssihv-tsan.XXXXXX)}
mkdir -p "$logs"
# die_after_fork=0: dsm_stress forks node processes from a threaded driver.
export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp die_after_fork=0 \
second_deadlock_stack=1 log_path=$logs/tsan ${TSAN_OPTIONS:-}"
"$@"
rc=$?
reports=$(cat "$logs"/tsan.* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer')
if [ "$reports" -gt 0 ]; then
  cat "$logs"/tsan.* >&2
  echo "tsan.sh: $reports ThreadSanitizer report(s) from $1 (logs in $logs)" >&2
  exit 66
fi
echo "tsan.sh: no ThreadSanitizer report from $1 (exit status $rc)" >&2
exit "$rc"
