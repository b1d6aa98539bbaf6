#!/usr/bin/env bash
# pager_bench_smoke (CTest): the pager benchmarks that run without a device,
# each briefly. They go through the product's paths (a forked home node, the
# DSM over TCP, answer lanes, read-ahead, write runs), the remote ones
# checking every page they read against what the home wrote (remote_bench.cc,
# remote_image_bench.cc): a stale or wrong byte, a home that
# stops answering, a benchmark that errors, hangs (CTest's timeout) or is
# missing fails the test. The names are public (the issues and
# docs/PERFORMANCE.md use them). Timings are not checked: CI's host is
# shared; docs/PERFORMANCE.md has the measurements and their commands.
#
#   bench_smoke.sh <pager_bench>
set -euo pipefail
bench=$1
work=$(mktemp -d /tmp/ssihv-bench-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT

expected=(
  BM_Floor/uffd_copy
  BM_LocalFault/copy
  BM_LocalFault/zero
  BM_FaultThroughput/threads:2
  BM_Floor/tcp_stream/real_time
  BM_Bound/tcp_lane
  BM_Bound/tcp_lane_wp
  BM_RemoteFault/tcp
  BM_RemoteFault/tcp_shared
  BM_RemoteUpgrade/tcp
  BM_RemoteTick/tcp
  BM_RemoteSequentialRead/tcp
  BM_RemoteFirstTouch/tcp/iterations:1
  BM_RemoteImageFault/tcp
  BM_RemoteFaultThroughput/tcp/threads:1
  BM_RemoteFaultThroughput/tcp/threads:2
  BM_RemoteFaultThroughput/tcp/threads:4
)
filter=$(printf '%s|' "${expected[@]}")
filter="^(${filter%|})\$"

if ! "$bench" --benchmark_filter="$filter" --benchmark_min_time=0.01 \
  --benchmark_out="$work/results.json" --benchmark_out_format=json \
  >"$work/log" 2>&1; then
  tail -n 40 "$work/log"
  echo "bench_smoke: $bench exited with an error" >&2
  exit 1
fi

python3 - "$work/results.json" "${expected[@]}" <<'EOF'
import json
import sys

results = json.load(open(sys.argv[1]))["benchmarks"]
expected = sys.argv[2:]
seen = {}
for b in results:
    seen.setdefault(b["name"], []).append(b)
failed = []
for name in expected:
    runs = seen.get(name)
    if not runs:
        failed.append(f"{name}: did not run")
        continue
    for b in runs:
        if b.get("error_occurred"):
            failed.append(f"{name}: {b.get('error_message', 'error')}")
        elif b.get("iterations", 0) < 1:
            failed.append(f"{name}: no iteration")
        for counter in ("faults_per_s", "bytes_per_s"):
            if counter in b and not b[counter] > 0:
                failed.append(f"{name}: {counter} = {b[counter]}")
for line in failed:
    print("bench_smoke:", line, file=sys.stderr)
print(f"bench_smoke: {len(expected)} benchmarks expected, {len(failed)} failures")
sys.exit(1 if failed else 0)
EOF
