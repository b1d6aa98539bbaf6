#!/usr/bin/env bash
# Runs the transport benchmarks and prints each fetch's (and CallSync's)
# p50 against its floor from the same run (medians over repetitions).
#
#   bench/transport/ratios.sh [build-dir]          TCP, on this host
#   bench/transport/ratios.sh --lab [build-dir]    RDMA, inside the lab VM,
#       with perftest's ib_read_lat -s 4096 in the same boot
#
# Extra benchmark flags: TRANSPORT_BENCH_ARGS (default: 5 repetitions of 1 s).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
lab=0
if [ "${1:-}" = --lab ]; then lab=1; shift; fi
build=$(cd "${1:-$root/build}" && pwd)
bench=$build/bench/transport/transport_bench
[ -x "$bench" ] || { echo "ratios.sh: $bench not built" >&2; exit 2; }
args=${TRANSPORT_BENCH_ARGS:---benchmark_min_time=1 --benchmark_repetitions=5}

summarize() {  # reads benchmark console output
  awk '
    /_median/ {
      name = $1; sub(/\/real_time_median$/, "", name)
      for (i = 1; i <= NF; i++) if ($i ~ /^p50_us=/) { v = $i; sub(/p50_us=/, "", v) }
      p50[name] = v; print
    }
    END {
      printf "\n"
      if ("BM_Floor/tcp_rtt_4k" in p50) {
        f = p50["BM_Floor/tcp_rtt_4k"]
        for (n in p50) if (n ~ /^BM_Fetch4K\/tcp/)
          printf "%-28s p50 %8.2f us = %.2fx BM_Floor/tcp_rtt_4k (%.2f us)\n", n, p50[n], p50[n] / f, f
      }
      if ("BM_Floor/tcp_rtt_16" in p50 && "BM_CallSync/tcp" in p50) {
        f = p50["BM_Floor/tcp_rtt_16"]
        printf "%-28s p50 %8.2f us = %.2fx BM_Floor/tcp_rtt_16 (%.2f us)\n", "BM_CallSync/tcp", p50["BM_CallSync/tcp"], p50["BM_CallSync/tcp"] / f, f
      }
      if ("BM_Floor/ib_read_4k" in p50) {
        f = p50["BM_Floor/ib_read_4k"]
        for (n in p50) if (n ~ /^BM_Fetch4K\/rdma/)
          printf "%-28s p50 %8.2f us = %.2fx BM_Floor/ib_read_4k (%.2f us)\n", n, p50[n], p50[n] / f, f
      }
      if ("BM_Floor/ib_read_4k_event" in p50) {
        f = p50["BM_Floor/ib_read_4k_event"]
        for (n in p50) if (n ~ /^BM_Fetch4K\/rdma_event/)
          printf "%-28s p50 %8.2f us = %.2fx BM_Floor/ib_read_4k_event (%.2f us)\n", n, p50[n], p50[n] / f, f
      }
    }'
}

if [ "$lab" = 0 ]; then
  echo "# $(date -u +%FT%TZ) $(uname -r) load $(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC2086
  "$bench" --benchmark_filter=tcp $args 2>&1 | summarize
  exit 0
fi
results=$(mktemp -d /tmp/ssihv-transport-lab.XXXXXX)
# shellcheck disable=SC2086
"$root/tests/lab/run.sh" --timeout 900 --results "$results" -- sh -c \
  "'$root/tests/lab/ref/ib_read_lat.sh' > \"\$SSIHV_LAB_RESULTS/ib_read_lat.log\" 2>&1;
   '$bench' --benchmark_filter='ib_read|rdma' $args > \"\$SSIHV_LAB_RESULTS/bench.txt\" 2>&1" \
  > "$results/run.log" 2>&1 || { tail -20 "$results/run.log"; exit 1; }
echo "# lab VM ($results): $(grep -m1 booting "$results/run.log" | sed 's/^lab: //')"
summarize < "$results/bench.txt"
echo
echo "# ib_read_lat -s 4096 in the same boot (t_typical is the 5th column):"
grep -E '^ *#bytes|^ *4096' "$results/ib_read_lat.txt" | head -2
