#!/usr/bin/env bash
# Issue 13's control-plane measurements on a real guest across two
# `ssihv-vmm --node K` processes (the cluster of tests/control/lib.sh: node
# 0 has the vCPU, node 1 memory only). Needs KVM that runs Linux guests:
# run it in the lab VM,
#
#   tests/lab/run.sh --timeout 1500 -- bench/control/control_bench.sh [--pairs N]
#
# 1. Requests per second on node 0's GET /metrics and GET /health while the
#    guest runs (idle, held by ssihv.hold): wrk (Debian package wrk), one
#    thread, 4 keep-alive connections, 10 s per endpoint.
# 2. The pager's fault service time p50 over whole boots (the guest powers
#    off itself) with and without a scraper taking both nodes' /metrics
#    every 100 ms (one curl process, keep-alive, `--rate 20/s` over the two
#    nodes), N pairs alternated (default 3), from each node's
#    --stats-json (pager.latency_us); the ratio of the medians with/without.
#    A boot is the guest that faults steadily here: with every vCPU on one
#    node a page moves once, and an idle guest stops faulting.
#
# Results: a table on stdout and, in the lab, $SSIHV_LAB_RESULTS/
# control_bench.txt. Ports from SSIHV_CONTROL_PORT_BASE (default 8000).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tests/control/lib.sh"
pairs=3 build=$root/build
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "control_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ $pairs =~ ^[1-9][0-9]*$ ]] || { echo "--pairs: a count >= 1" >&2; exit 2; }
cl_require_kvm
command -v wrk > /dev/null || fail "wrk is missing (apt-get install wrk)"
cl_init "$build/apps/ssihv-vmm/ssihv-vmm" "$build/apps/ssihvctl/ssihvctl" \
  "$root/tests/linux-boot/cache/boot.env"
base=${SSIHV_CONTROL_PORT_BASE:-8000}
out=$CL_DIR/report.txt
say() { echo "$*" | tee -a "$out"; }
say "# control plane bench $(date -u +%FT%TZ) lab=${SSIHV_LAB:-0} ${SSIHV_LAB_QEMU:-} kernel $(uname -r) nproc $(nproc)"
say "# cluster: node 0 1 vCPU 256 MiB, node 1 0 vCPUs 256 MiB, TCP on 127.0.0.1"

# ---------------------------------------------------------- 1. requests/s
cl_config "$base"
cl_start 1 "quiet ssihv.end=poweroff ssihv.hold=3600"
cl_start 0 "quiet ssihv.end=poweroff ssihv.hold=3600"
poll 600 "guest init reaching ssihv.hold" guest_holding
for path in /metrics /health; do
  wrk -t1 -c4 -d10s "http://${CL_API[0]}$path" > "$CL_DIR/wrk.out" 2>&1 ||
    fail "wrk $path: $(cat "$CL_DIR/wrk.out")"
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$CL_DIR/wrk.out")
  lat=$(awk '$1 == "Latency" {print $2; exit}' "$CL_DIR/wrk.out")
  errs=$(grep -E 'Non-2xx|Socket errors' "$CL_DIR/wrk.out" | tr '\n' ' ' || true)
  say "rps path=$path requests_per_s=$rps mean_latency=$lat ${errs:+errors: $errs}(wrk -t1 -c4 -d10s)"
done
http GET "http://${CL_API[0]}/metrics"
say "# /metrics of node 0 is $(wc -c < "$CL_DIR/body") bytes, $(grep -vc '^#' "$CL_DIR/body") samples"
expect 200 POST /vm/stop 0 -H @"$CL_DIR/auth"
cl_wait_exit 0 60
cl_wait_exit 1 60

# --------------------------------------------- 2. scraping vs fault p50
# One curl, URLs alternating between the nodes at 20/s: each node's
# /metrics every 100 ms on a kept-alive connection, as a scraper would.
start_scraper() {
  local i
  for i in $(seq 1 3000); do
    printf 'url = "http://%s/metrics"\noutput = "/dev/null"\n' "${CL_API[$((i % 2))]}"
  done > "$CL_DIR/scrape.conf"
  # Line-buffered: the scraper is killed at the end, and a block-buffered
  # stdout would take the status codes with it.
  stdbuf -oL curl -s --rate 20/s -K "$CL_DIR/scrape.conf" -w '%{http_code}\n' \
    > "$CL_DIR/scrape.codes" 2> /dev/null &
  scraper=$!
  CL_PIDS+=("$scraper")
}

# One row per boot: mode, boot seconds, then per node faults and p50s (us).
row() {  # mode scrapes
  local k line="mode=$1 scrapes=$2"
  for k in 0 1; do
    line+=$(jq -r --arg k "$k" '" node\($k)_faults=\(.pager.total_faults)" +
      " node\($k)_p50_all=\(.pager.latency_us.all.p50)" +
      " node\($k)_p50_remote_read=\(.pager.latency_us.remote_read.p50)" +
      " node\($k)_remote_read=\(.pager.faults.remote_read)"' "${CL_STATS[$k]}")
  done
  line+=" run_s=$(jq -r .run_seconds "${CL_STATS[0]}")"
  say "$line"
}

for i in $(seq 0 $((2 * pairs - 1))); do
  mode=without
  [ $((i % 2)) = 1 ] && mode=with
  cl_config "$((base + 10 + 10 * i))"
  cl_start 1 "quiet ssihv.end=poweroff"
  cl_start 0 "quiet ssihv.end=poweroff"
  scrapes=0
  if [ "$mode" = with ]; then
    poll 120 "the API of node 1" healthy 1
    start_scraper
  fi
  cl_wait_exit 0 900
  cl_wait_exit 1 60
  if [ "$mode" = with ]; then
    kill -TERM "$scraper" 2> /dev/null || true
    wait "$scraper" 2> /dev/null || true
    scrapes=$(grep -c '^200$' "$CL_DIR/scrape.codes" || true)
  fi
  [ "${CL_STATUS[0]}" = 0 ] && [ "${CL_STATUS[1]}" = 0 ] ||
    fail "boot $i ($mode): nodes exited ${CL_STATUS[0]}/${CL_STATUS[1]}"
  row "$mode" "$scrapes"
done

# Medians per mode and the ratio with/without.
awk '
  /^mode=/ {
    for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
    m = v["mode"]
    for (key in v) if (key ~ /p50|run_s/) { n = ++cnt[m, key]; val[m, key, n] = v[key] }
  }
  function median(m, key,   n, i, j, t, a) {
    n = cnt[m, key]
    for (i = 1; i <= n; i++) a[i] = val[m, key, i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    split("node0_p50_all node0_p50_remote_read node1_p50_all run_s", keys, " ")
    for (k = 1; k <= 4; k++) {
      key = keys[k]; w = median("with", key); wo = median("without", key)
      printf "median %s without=%.1f with=%.1f ratio=%.3f\n", key, wo, w, (wo > 0 ? w / wo : 0)
    }
  }' "$out" | tee -a "$out"
if [ -n "${SSIHV_LAB_RESULTS:-}" ]; then cp "$out" "$SSIHV_LAB_RESULTS/control_bench.txt"; fi
