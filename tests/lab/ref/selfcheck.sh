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
kvm_opens() { [ -c /dev/kvm ] && { : <>/dev/kvm; } 2>/dev/null; }
check "/dev/kvm opens read-write" kvm_opens
check "kvm_amd is loaded" test -d /sys/module/kvm_amd
check "kvm_amd has nested paging (npt=Y)" grep -qx Y /sys/module/kvm_amd/parameters/npt
check "KVM VMs held for the lab's life (kvm-hold)" pidof kvm-hold
check "$rxe exists (rdma_rxe)" test -d "/sys/class/infiniband/$rxe"
softroce() {  # rdma_rxe loaded and rxe's own "parent" attribute names the netdev
  [ -d /sys/module/rdma_rxe ] &&
    [ "$(cat "/sys/class/infiniband/$rxe/parent")" = "${SSIHV_LAB_NETDEV:-dummy0}" ]
}
check "$rxe is SoftRoCE over ${SSIHV_LAB_NETDEV:-dummy0}" softroce
check "$rxe port 1 is ACTIVE" grep -q ACTIVE "$port/state"
uverbs_node() {  # /sys/class/infiniband_verbs/uverbsN/ibdev names it
  local d
  for d in /sys/class/infiniband_verbs/uverbs*; do
    [ "$(cat "$d/ibdev" 2>/dev/null)" = "$rxe" ] && [ -c "/dev/infiniband/${d##*/}" ] &&
      return 0
  done
  return 1
}
check "$rxe has a uverbs node in /dev/infiniband" uverbs_node
check "$rxe has a link-local RoCE v2 GID" rdma_gid_index "$rxe"
no_ipv4() {  # RoCE runs on the IPv6 link-local GID; IPv4 only on lo
  [ -z "$(ip -4 -o addr show | awk '$2 != "lo"')" ]
}
check "no IPv4 address besides loopback (no private ranges)" no_ipv4
[ "$bad" = 0 ] || fail "the lab VM lacks what it promises (see FAIL lines)"
echo "PASS: /dev/kvm and $rxe (ACTIVE) are there"
