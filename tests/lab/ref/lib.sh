# Shared by the lab's reference-program tests (sourced, bash).
# Mirrors tests/support/device.cc: without the device a test prints
# "SKIP <dev>: <reason>" and exits 77 (CTest: skipped), unless
# SSIHV_REQUIRE_<DEV>=1 (set inside the lab VM) makes that a failure.
set -euo pipefail

skip_or_fail() {  # dev reason
  local var=SSIHV_REQUIRE_${1^^}
  if [ "${!var:-}" = 1 ]; then
    echo "FAIL $1 required ($var=1): $2"
    exit 1
  fi
  echo "SKIP $1: $2"
  exit 77
}

fail() { echo "FAIL: $*"; exit 1; }

require_kvm() {
  # Test -c before opening: `<>` would create a plain file /dev/kvm.
  [ -c /dev/kvm ] || skip_or_fail kvm "open /dev/kvm: No such file or directory"
  { : <>/dev/kvm; } 2>/dev/null ||
    skip_or_fail kvm "open /dev/kvm: cannot open read-write"
}

# Sets RDMA_DEV: $SSIHV_LAB_RDMA_DEV in the lab, else the first verbs device
# whose port 1 is ACTIVE.
require_rdma() {
  local d
  RDMA_DEV=
  for d in ${SSIHV_LAB_RDMA_DEV:-} $(ls /sys/class/infiniband 2>/dev/null); do
    if grep -q ACTIVE "/sys/class/infiniband/$d/ports/1/state" 2>/dev/null; then
      RDMA_DEV=$d
      return 0
    fi
  done
  skip_or_fail rdma "no verbs device with an ACTIVE port in /sys/class/infiniband"
}

# Prints the GID index of the device's IPv6 link-local RoCE v2 GID. Reads
# only the first entries: the whole table through sysfs is slow.
rdma_gid_index() {  # dev
  local p=/sys/class/infiniband/$1/ports/1 n gid type
  for n in 0 1 2 3 4 5 6 7; do
    gid=$(cat "$p/gids/$n" 2>/dev/null) || continue
    type=$(cat "$p/gid_attrs/types/$n" 2>/dev/null) || continue
    if [[ "$gid" == fe80:* && "$type" == "RoCE v2" ]]; then
      echo "$n"
      return 0
    fi
  done
  return 1
}

# Where results go: the lab's results share (copied back to the host), else
# $SSIHV_LAB_RESULTS, else the test's working directory.
results_dir() {
  local d=${SSIHV_LAB_RESULTS:-$PWD}
  mkdir -p "$d"
  echo "$d"
}

# Waits (bounded) until something listens on TCP port $1.
wait_listening() {  # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    ss -Hltn "sport = :$1" 2>/dev/null | grep . >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A TCP port derived from the test name, so tests run in parallel differ.
# Below Linux's ephemeral range (32768-60999): an outgoing connection of an
# earlier test (or its TIME_WAIT) can hold any port there. On 2026-12-05
# ibv_rc_pingpong's server could not listen on 39170, inside that range.
pick_port() { echo $((20000 + $(cksum <<< "$1" | cut -d' ' -f1) % 12000)); }
