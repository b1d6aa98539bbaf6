#!/usr/bin/env bash
# The "never stale" campaign (docs/PAGER.md, "Checked histories"): rounds of
# `dsm_stress --history` with 2 to 4 nodes, rotating through every
# adversity, until the time is up; one line per run and a summary.
#
#   bench/pager/dsm_campaign.sh [--build DIR] [--minutes M] [--seconds S]
#                               [--transport tcp|rdma] [--netem] [--out FILE]
#                               [--log-ops N]
#
# --netem adds the netem rounds (a private network namespace whose loopback
# delays packets: needs iproute2, CAP_NET_ADMIN and sch_netem; in the lab VM
# the module is loaded from the lab's kernel cache). Exit status: 0 when
# every run was linearizable and completed, 1 otherwise.
set -uo pipefail
build=build minutes=10 seconds=20 transport=tcp netem=0 out=/dev/stdout
log_ops=8388608  # per thread: a 2-node run logs ~1.5 M operations/s
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --netem) netem=1; shift ;;
    --out) out=$2; shift 2 ;;
    --log-ops) log_ops=$2; shift 2 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "dsm_campaign.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
stress=$build/bench/pager/dsm_stress
[ -x "$stress" ] || { echo "dsm_campaign.sh: no $stress (build dsm_stress)" >&2; exit 2; }

if [ "$netem" = 1 ] && ! grep -q '^sch_netem ' /proc/modules 2>/dev/null; then
  # The lab VM's kernel modules live in its cache, not in the host root.
  ko=$(ls "${SSIHV_LAB_CACHE:-/work/lab-cache}"/kernel/*/lib/modules/"$(uname -r)"/kernel/net/sched/sch_netem.ko 2>/dev/null | head -1)
  modprobe sch_netem 2>/dev/null || { [ -n "$ko" ] && insmod "$ko"; } ||
    { echo "dsm_campaign.sh: no sch_netem for $(uname -r)" >&2; exit 2; }
fi

adversities=("--sigstop 100" "--hogs 2" "--kill" "--sigstop 50 --hogs 1"
             "--kill --sigstop 50 --hogs 1")
# With --netem, the netem rounds come first (short campaigns reach them).
[ "$netem" = 1 ] && adversities=("--netem delay 300us 200us"
                                 "--netem delay 1ms 1ms --sigstop 50 --kill"
                                 "${adversities[@]}")

end=$(( $(date +%s) + minutes * 60 ))
runs=0 bad=0 node_s=0 ops=0 i=0
echo "# $(date -u +%FT%TZ) $(uname -r) transport=$transport seconds=$seconds load=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out"
while [ "$(date +%s)" -lt "$end" ]; do
  nodes=$(( 2 + i % 3 ))
  adv=${adversities[$(( (i / 3) % ${#adversities[@]} ))]}
  seed=$(( 1000 + i ))
  i=$(( i + 1 ))
  # shellcheck disable=SC2086  # $adv is a list of arguments (netem: quoted)
  if [[ "$adv" == --netem* ]]; then
    spec=${adv#--netem }; rest=
    case "$spec" in *" --"*) rest="--${spec#* --}"; spec=${spec%% --*} ;; esac
    res=$("$stress" --history --transport "$transport" --nodes "$nodes" \
      --seconds "$seconds" --seed "$seed" --log-ops "$log_ops" \
      --netem "$spec" $rest 2>&1)
  else
    res=$("$stress" --history --transport "$transport" --nodes "$nodes" \
      --seconds "$seconds" --seed "$seed" --log-ops "$log_ops" $adv 2>&1)
  fi
  rc=$?
  hist=$(echo "$res" | grep '^history:' | head -1)
  n=$(echo "$hist" | sed -n 's/.* \([0-9]*\) ops checked.*/\1/p')
  viol=$(echo "$res" | grep -c '^VIOLATION')
  runs=$(( runs + 1 ))
  [ "$rc" = 0 ] || bad=$(( bad + 1 ))
  node_s=$(( node_s + nodes * seconds ))
  ops=$(( ops + ${n:-0} ))
  echo "run $runs rc=$rc nodes=$nodes seed=$seed [$adv] violations=$viol ${hist#history: }" >> "$out"
  if [ "$rc" != 0 ]; then
    # The whole output beside the summary: the info lines name why a
    # connection or lane closed, which the last error lines do not.
    echo "$res" > "$out.run$runs.log"
    echo "    (whole output: $out.run$runs.log)" >> "$out"
    echo "$res" | grep -v '^ssihv I' | tail -20 | sed 's/^/    /' >> "$out"
  fi
done
echo "# summary: $runs runs, $bad failed, $(awk "BEGIN{printf \"%.2f\", $node_s/3600}") node-hours, $ops operations checked" >> "$out"
[ "$bad" = 0 ]
