# shellcheck shell=bash
# A 2-node ssihv-vmm cluster with each node's control API, for the control
# plane's lab test (control_lab_test.sh) and measurement
# (bench/control/control_bench.sh). Sourced by bash.
#
# By default node 0 has every vCPU, node 1 only memory ("vcpus": 0, a
# memory-only NUMA node the config accepts): that guest boots in under a
# minute in the lab, and node 0 still takes remote faults on node 1's memory.
# A guest with vCPUs on both nodes (cl_config's V1 > 0) takes 10-20 minutes
# there (issue 12). Loopback addresses only; the files
# (config, 0600 secret and API token, logs, stats) live in one mktemp dir
# that cl_cleanup removes with every process it started.
#
#   cl_init VMM SSIHVCTL BOOT_ENV   once: the temp dir, the token, tools
#   cl_config PORT_BASE [V0] [V1]   writes $CL_DIR/cluster.json: node K's
#                                   transport on PORT_BASE+K, API on
#                                   PORT_BASE+2+K (CL_API[K])
#   cl_start K APPEND               starts node K (CL_PID[K])
#   cl_wait_exit K SECONDS          waits for node K's end, sets CL_STATUS[K]
set -euo pipefail
# fail, skip_or_fail and require_kvm (the device check of tests/support).
. "$(dirname "${BASH_SOURCE[0]}")/../lab/ref/lib.sh"

cl_require_kvm() {
  require_kvm
  # As tests/linux-boot/main.cc: on the nested dev VMs a Linux guest under
  # KVM stalls in its decompressor, so the Linux guest is defined in the lab.
  if [ "${SSIHV_LAB:-}" != 1 ] && [ "${SSIHV_REQUIRE_KVM:-}" != 1 ] &&
    [ "${SSIHV_LINUX_BOOT:-}" != 1 ]; then
    echo "SKIP kvm: the Linux guest runs in the lab VM (tests/lab/run.sh); set SSIHV_LINUX_BOOT=1 to run it on this host's KVM"
    exit 77
  fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# poll SECONDS WHAT CMD...: runs CMD until it succeeds, failing with WHAT
# past the deadline (and at once when a node that should run has died:
# waiting on would only hide why). The pause between tries only paces it.
poll() {
  local limit=$1 what=$2
  shift 2
  local end=$(($(now_ms) + limit * 1000))
  until "$@"; do
    cl_check_alive
    [ "$(now_ms)" -lt "$end" ] || fail "no $what within ${limit}s"
    sleep 0.2
  done
}

cl_init() {  # vmm ssihvctl boot_env
  CL_VMM=$1 CL_CTL=$2
  [ -x "$CL_VMM" ] || fail "ssihv-vmm not found at $CL_VMM"
  [ -x "$CL_CTL" ] || fail "ssihvctl not found at $CL_CTL"
  [ -r "$3" ] || fail "no $3: run tests/linux-boot/prepare.sh"
  CL_KERNEL=$(sed -n 's/^LINUX_BOOT_KERNEL=//p' "$3")
  CL_INITRD=$(sed -n 's/^LINUX_BOOT_INITRD=//p' "$3")
  [ -r "$CL_KERNEL" ] && [ -r "$CL_INITRD" ] ||
    fail "$3 names a kernel or initramfs that is missing: rerun tests/linux-boot/prepare.sh"
  local t
  for t in curl jq ss ps; do
    command -v "$t" > /dev/null || fail "$t is missing (scripts/setup.sh)"
  done
  CL_DIR=$(mktemp -d /tmp/ssihv-control.XXXXXX)
  CL_PIDS=()
  trap cl_cleanup EXIT
  # Owner-only from the start: the nodes refuse group/other bits.
  (
    umask 077
    head -c 32 /dev/urandom | base64 > "$CL_DIR/token"
    head -c 32 /dev/urandom | base64 > "$CL_DIR/secret"
    # curl reads the header from this file, so the token never shows in ps.
    echo "Authorization: Bearer $(cat "$CL_DIR/token")" > "$CL_DIR/auth"
    echo "Authorization: Bearer wrong-$(cat "$CL_DIR/token")" > "$CL_DIR/bad-auth"
  )
}

# Every process started here, killed on any exit: a failed check must not
# leave a guest or a Prometheus running in the lab.
cl_cleanup() {
  local rc=$? p
  for p in "${CL_PIDS[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  for p in "${CL_PIDS[@]}"; do wait "$p" 2> /dev/null || true; done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -d "${CL_DIR:-}" ]; then
    cl_dump
  fi
  if [ -n "${SSIHV_CONTROL_ARTIFACTS:-}" ] && [ -d "${CL_DIR:-}" ]; then
    mkdir -p "$SSIHV_CONTROL_ARTIFACTS" &&
      cp "$CL_DIR"/*.stats.json "$CL_DIR"/*.err "$SSIHV_CONTROL_ARTIFACTS"/ 2> /dev/null || true
  fi
  [ -z "${CL_DIR:-}" ] || rm -rf "$CL_DIR"
  exit "$rc"
}

# What each node (and Prometheus) printed, for a failure.
cl_dump() {
  local f
  for f in "$CL_DIR"/*.out "$CL_DIR"/*.err "$CL_DIR"/*.log; do
    [ -s "$f" ] || continue
    echo "---- ${f##*/} (last 40 lines)"
    tail -n 40 "$f" | tr -d '\r'
  done
}

cl_port_free() {  # port
  [ -z "$(ss -Htln "sport = :$1")" ] ||
    fail "port $1 is in use (set SSIHV_CONTROL_PORT_BASE to move the test's ports)"
}

cl_config() {  # port_base [node 0's vcpus] [node 1's vcpus]
  local base=$1 vcpus=${2:-1} vcpus1=${3:-0} p
  for p in $(seq "$base" $((base + 3))); do cl_port_free "$p"; done
  CL_API=("127.0.0.1:$((base + 2))" "127.0.0.1:$((base + 3))")
  CL_CONFIG=$CL_DIR/cluster-$base.json
  cat > "$CL_CONFIG" << EOF
{"transport": "tcp", "secret_file": "$CL_DIR/secret",
 "api_token_file": "$CL_DIR/token",
 "distances": [[10, 100], [100, 10]],
 "nodes": [
  {"id": 0, "vcpus": $vcpus, "memory_mib": 256,
   "address": "127.0.0.1:$base", "api_address": "${CL_API[0]}"},
  {"id": 1, "vcpus": $vcpus1, "memory_mib": 256,
   "address": "127.0.0.1:$((base + 1))", "api_address": "${CL_API[1]}"}]}
EOF
  CL_PID=() CL_STATUS=() CL_RUNNING=()
}

cl_start() {  # k append
  local k=$1 tag
  tag=$(basename "$CL_CONFIG" .json)-node$k
  CL_OUT[$k]=$CL_DIR/$tag.out CL_ERR[$k]=$CL_DIR/$tag.err
  CL_STATS[$k]=$CL_DIR/$tag.stats.json
  "$CL_VMM" --config "$CL_CONFIG" --kernel "$CL_KERNEL" --initrd "$CL_INITRD" \
    --append "$2" --node "$k" --stats-json "${CL_STATS[$k]}" \
    --peer-timeout 120 < /dev/null > "${CL_OUT[$k]}" 2> "${CL_ERR[$k]}" &
  CL_PID[$k]=$!
  CL_PIDS+=("$!")
  CL_RUNNING[$k]=1
}

# Alive and not a zombie (bash reaps its children on its own, but a zombie
# must not pass for a live node in between).
running() {
  local s
  s=$(ps -o stat= -p "$1" 2> /dev/null) && [[ $s != Z* ]]
}

# Fails when a node that should run has exited.
cl_check_alive() {
  local k
  for k in "${!CL_RUNNING[@]}"; do
    [ "${CL_RUNNING[$k]}" = 1 ] || continue
    running "${CL_PID[$k]}" || {
      local rc=0
      wait "${CL_PID[$k]}" || rc=$?
      CL_RUNNING[$k]=0
      fail "node $k exited (status $rc) while it should run"
    }
  done
}

cl_wait_exit() {  # k seconds
  local k=$1 end=$(($(now_ms) + $2 * 1000)) rc=0
  CL_RUNNING[$k]=0  # expected to end now
  while running "${CL_PID[$k]}"; do
    [ "$(now_ms)" -lt "$end" ] || fail "node $k still runs ${2}s later"
    sleep 0.2
  done
  wait "${CL_PID[$k]}" || rc=$?
  CL_STATUS[$k]=$rc
}

# http METHOD URL [curl args...]: the body in $CL_DIR/body, the status code
# in HTTP_CODE. Never fails by itself: the caller checks the code.
http() {
  local method=$1 url=$2
  shift 2
  HTTP_CODE=$(curl -sS -o "$CL_DIR/body" -w '%{http_code}' --max-time 10 \
    -X "$method" "$@" "$url" 2> "$CL_DIR/curl.err") || HTTP_CODE=000
}

# expect CODE METHOD PATH NODE [curl args...]: the request to node NODE must
# answer CODE; the body stays in $CL_DIR/body.
expect() {
  local code=$1 method=$2 path=$3 k=$4
  shift 4
  http "$method" "http://${CL_API[$k]}$path" "$@"
  [ "$HTTP_CODE" = "$code" ] ||
    fail "$method $path on node $k: expected $code, got $HTTP_CODE: $(cat "$CL_DIR/body" "$CL_DIR/curl.err" 2> /dev/null)"
}

# jq_body FILTER: the last body must satisfy the jq filter.
jq_body() {
  jq -e "$@" "$CL_DIR/body" > /dev/null ||
    fail "body does not satisfy $*: $(cat "$CL_DIR/body")"
}

healthy() {  # k: /health is 200 (the guest runs)
  http GET "http://${CL_API[$1]}/health"
  [ "$HTTP_CODE" = 200 ]
}

# Sum of a node's ssihv_page_faults_total over the kinds given (all kinds
# when none), from its /metrics.
faults() {  # k [kind...]
  local k=$1 re
  shift
  re=$(IFS='|'; echo "${*:-[a-z_]+}")
  http GET "http://${CL_API[$k]}/metrics"
  [ "$HTTP_CODE" = 200 ] || { echo 0; return; }
  grep -E "^ssihv_page_faults_total\{.*kind=\"($re)\"" "$CL_DIR/body" |
    awk '{s += $NF} END {printf "%d\n", s}'
}

remote_faults_seen() {  # k
  [ "$(faults "$1" remote_read remote_write upgrade)" -gt 0 ]
}

guest_holding() {  # the guest's init reached ssihv.hold (node 0's console)
  grep -q '^SSIHV holding' "${CL_OUT[0]}"
}

page_idle() {  # k gpa: node k homes the page and no transaction is open
  http GET "http://${CL_API[$1]}/pages/$2"
  [ "$HTTP_CODE" = 200 ] && jq -e '.directory.busy == false' "$CL_DIR/body" > /dev/null
}

every_vcpu_halted() {  # every vCPU of every node exited on HLT at least once
  local k
  for k in 0 1; do
    [ "${VCPUS[$k]}" -gt 0 ] || continue
    http GET "http://${CL_API[$k]}/vcpus"
    [ "$HTTP_CODE" = 200 ] &&
      jq -e --argjson n "${VCPUS[$k]}" \
        '(.vcpus | length) == $n and all(.vcpus[]; .exits.hlt > 0)' \
        "$CL_DIR/body" > /dev/null || return 1
  done
}
