#!/usr/bin/env bash
# The `lab` CTest test: boots the lab VM once and runs every kvm- and
# rdma-labelled test of the build tree inside it, with SSIHV_REQUIRE_KVM=1
# and SSIHV_REQUIRE_RDMA=1 so that no test can pass by skipping.
#
#   tests/lab/lab_ctest.sh <build-dir> [timeout-seconds] [main|dist|dist_ci|dist_slow|bigvm|perf]
#
# main (default): every kvm/rdma test but the distributed VM's (label dist),
# results in <build>/lab-results/; dist: the distributed VM's tests (several
# ssihv-vmm processes, minutes each) in a lab of their own, results in
# <build>/lab-results-dist/; dist_ci: the distributed VM's quick cases,
# which CI runs (label dist_ci), results in <build>/lab-results-dist-ci/;
# dist_slow: six of its slow cases that CI runs too (label dist_slow),
# results in <build>/lab-results-dist-slow/;
# bigvm: the slow many-vCPU boot (label bigvm) in
# a lab of its own, results in <build>/lab-results-bigvm/ (docs/LAB.md, "In
# CTest"); perf: the distributed VM's performance run (label dist_perf,
# tests/dist/dist_perf.cc; docs/PERFORMANCE.md), results and its report in
# <build>/lab-results-perf/. Only main requires lab_selfcheck.
#
# Results come back through the lab's writable share, <build>/lab-results/:
#   junit.xml          the inner ctest's JUnit report
#   ctest.log          the inner ctest's output
#   ib_read_lat.txt    perftest's RDMA READ latency (reference for librdmax)
#   qemu_kvm_boot.txt  qemu -accel kvm boot time in the lab (reference for
#                      ssihv-vmm)
#   timings.txt        boot and run times of this lab run
#   cores/             core dumps of crashed test processes, with each one's
#                      backtraces (printed in the log too; ctest_inside.sh)
#   .lab/              console.log, lab.env, status of the VM
# SSIHV_LAB_CTEST_ARGS adds arguments to the inner ctest (e.g. "-R rdmax" to
# run a subset while iterating); SSIHV_LAB_JOBS sets its -j (default 1).
# Fails when run.sh fails (test failures, lab hung/crashed), when no test
# ran, when any test was skipped, or when the lab self-check did not pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: lab_ctest.sh <build-dir> [timeout]}" && pwd)
timeout_s=${2:-900}
set_name=${3:-main}
case "$set_name" in
  main) labels="kvm|rdma" exclude="lab|dist" results=$build/lab-results ;;
  # The label itself, anchored: the other dist sets' labels contain it.
  dist) labels="^dist\$" exclude="lab" results=$build/lab-results-dist ;;
  dist_ci) labels="dist_ci" exclude="lab" results=$build/lab-results-dist-ci ;;
  dist_slow) labels="dist_slow" exclude="lab" results=$build/lab-results-dist-slow ;;
  bigvm) labels="bigvm" exclude="lab" results=$build/lab-results-bigvm ;;
  perf) labels="dist_perf" exclude="lab" results=$build/lab-results-perf ;;
  *) echo "lab_ctest.sh: the set is main, dist, dist_ci, dist_slow, bigvm or perf, not '$set_name'" >&2
     exit 2 ;;
esac

# The distributed VM's lab kernel trusts its TSC: without that, the lab's
# KVM rewrites every vCPU's kvmclock at every entry and the guest page the
# first 64 vCPUs' kvmclock slots share moves between the nodes at the
# VM-entry rate (docs/LAB.md, "The lab's own QEMU bugs"). The main set
# keeps the pinned kernel arguments.
case "$set_name" in
  dist | dist_ci | dist_slow | perf)
    [ -n "${SSIHV_LAB_KERNEL_ARGS+set}" ] ||
      export SSIHV_LAB_KERNEL_ARGS="tsc=reliable" ;;
esac

rm -rf "$results"
mkdir -p "$results"
# dist_perf's Markdown report: CTest keeps only the first 1024 bytes of a
# passing test's output.
if [ "$set_name" = perf ] && [ -z "${SSIHV_DIST_PERF_REPORT+set}" ]; then
  export SSIHV_DIST_PERF_REPORT=$results/dist_perf.md
fi
start=$(date +%s)
rc=0
"$here/run.sh" --timeout "$timeout_s" --results "$results" \
  --env SSIHV_REQUIRE_KVM=1 --env SSIHV_REQUIRE_RDMA=1 -- \
  "$here/ctest_inside.sh" "$build" "$results" "${SSIHV_LAB_CTEST_ARGS:-}" \
  "$labels" "$exclude" || rc=$?
elapsed=$(( $(date +%s) - start ))

ready=$(sed -n "s/^export SSIHV_LAB_READY_S='\(.*\)'/\1/p" \
  "$results/.lab/lab.env" 2>/dev/null || true)
{
  echo "lab_run_total_s=$elapsed"
  echo "lab_guest_ready_s=${ready:-unknown}"
  echo "lab_exit_status=$rc"
} > "$results/timings.txt"

if [ "$rc" = 125 ]; then
  # run.sh has printed the verdict and the lab kernel's lines above.
  echo "lab: LAB FAILURE: the lab VM itself failed (hung, crashed or could not be set up): this is the lab's failure, not a test's; see the LAB lines above and $results/.lab/console.log"
  exit 1
fi
junit=$results/junit.xml
if [ ! -s "$junit" ]; then
  echo "lab: FAILED: no JUnit report from inside the lab (run.sh exit $rc)"
  exit 1
fi
# <testsuite ... tests="N" failures="F" ... skipped="S" ...>, attributes
# possibly on separate lines; one <testcase .../> element per test.
flat=$(tr '\n\t' '  ' < "$junit")
attr() { grep -o '<testsuite [^>]*' <<< "$flat" | grep -o " $1=\"[0-9]*\"" |
  grep -o '[0-9]*' | head -1; }
tests=$(attr tests) failures=$(attr failures) skipped=$(attr skipped)
echo "lab: inside the VM: ${tests:-0} tests, ${failures:-0} failing," \
  "${skipped:-0} skipped; ${elapsed}s in all (guest ready at ${ready:-?}s)"
echo "lab: results in $results"
status=0
if [ "${tests:-0}" -eq 0 ]; then
  echo "lab: FAILED: no kvm/rdma test ran inside the lab"; status=1
fi
if [ "${skipped:-0}" -ne 0 ]; then
  echo "lab: FAILED: tests were skipped inside the lab (a lab run cannot pass by skipping)"
  status=1
fi
# Only the main set has it; `|| true`: a set without it must not end here.
selfcheck=$(grep -o '<testcase name="lab_selfcheck".*' <<< "$flat" |
  sed 's|</testcase>.*||' || true)
if [ "$set_name" = main ] && { ! grep -q 'status="run"' <<< "$selfcheck" ||
  grep -q '<failure' <<< "$selfcheck"; }; then
  echo "lab: FAILED: the lab self-check did not run and pass"; status=1
fi
[ "$rc" -eq 0 ] || { echo "lab: FAILED: tests inside the lab failed (exit $rc)"; status=1; }
exit $status
