#!/usr/bin/env bash
# The lab's self-check (labels kvm and rdma, so the lab runs it): inside the
# lab VM every device the lab promises must be there, or this FAILS (never
# skips): /dev/kvm from kvm_amd with nested paging, the KVM VMs held for the
# lab's life (guard against the QEMU 7.2 TCG hang), an rxe device with an
# ACTIVE port, its uverbs node and a link-local RoCE v2 GID.
# Outside the lab it skips, unless SSIHV_REQUIRE_KVM/RDMA=1.
. "$(dirname "$0")/lib.sh"
if [ "${SSIHV_LAB:-}" != 1 ] && [ "${SSIHV_REQUIRE_KVM:-}" != 1 ] &&
  [ "${SSIHV_REQUIRE_RDMA:-}" != 1 ]; then
  echo "SKIP lab: not inside the lab VM (tests/lab/run.sh)"
  exit 77
fi
bad=0
check() {  # description command...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then echo "ok    $what"
  else echo "FAIL  $what"; bad=1
  fi
}
rxe=${SSIHV_LAB_RDMA_DEV:-rxe0}
port=/sys/class/infiniband/$rxe/ports/1
check "/dev/kvm is a character device" test -c /dev/kvm
check "/dev/kvm opens read-write" sh -c 'test -c /dev/kvm && : <>/dev/kvm'
check "kvm_amd is loaded" test -d /sys/module/kvm_amd
check "kvm_amd has nested paging (npt=Y)" grep -qx Y /sys/module/kvm_amd/parameters/npt
check "KVM VMs held for the lab's life (kvm-hold)" \
  sh -c 'grep -qx kvm-hold /proc/[0-9]*/comm'
check "$rxe exists (rdma_rxe)" test -d "/sys/class/infiniband/$rxe"
check "$rxe is a SoftRoCE device" sh -c "readlink /sys/class/infiniband/$rxe/device/driver 2>/dev/null | grep -q rxe || grep -q rxe /sys/class/infiniband/$rxe/node_desc || test -d /sys/module/rdma_rxe"
check "$rxe port 1 is ACTIVE" grep -q ACTIVE "$port/state"
check "$rxe has a uverbs node" sh -c "ls /sys/class/infiniband/$rxe/device/infiniband_verbs/ 2>/dev/null | grep -q uverbs || ls /dev/infiniband/uverbs* >/dev/null"
check "$rxe has a link-local RoCE v2 GID" rdma_gid_index "$rxe"
check "no private-range IPv4 address" sh -c '! ip -4 addr | grep -Eq "inet (10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.)"'
[ "$bad" = 0 ] || fail "the lab VM lacks what it promises (see FAIL lines)"
echo "PASS: /dev/kvm and $rxe (ACTIVE) are there"
