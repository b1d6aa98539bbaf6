#!/usr/bin/env bash
# Reference program: rdma-core's ibv_devinfo must show the verbs device with
# its port ACTIVE (in the lab: rxe0, SoftRoCE over dummy0, Ethernet link).
. "$(dirname "$0")/lib.sh"
require_rdma
out=$(ibv_devinfo -d "$RDMA_DEV" -i 1) || fail "ibv_devinfo -d $RDMA_DEV exited $?"
echo "$out"
grep -qE "hca_id:[[:space:]]+$RDMA_DEV\$" <<< "$out" || fail "no hca_id $RDMA_DEV"
grep -qE 'state:[[:space:]]+PORT_ACTIVE' <<< "$out" || fail "port 1 not PORT_ACTIVE"
if [ "${SSIHV_LAB:-}" = 1 ]; then
  grep -qE 'link_layer:[[:space:]]+Ethernet' <<< "$out" ||
    fail "rxe should report an Ethernet link layer"
fi
echo "PASS: $RDMA_DEV port 1 PORT_ACTIVE"
