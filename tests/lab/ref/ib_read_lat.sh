#!/usr/bin/env bash
# Reference program: perftest's ib_read_lat -s 4096 (RDMA READ latency) on
# the verbs device, server and client on the same device. The client's
# report is saved as <results>/ib_read_lat.txt (the lab test copies it to
# <build>/lab-results/ib_read_lat.txt): the transport issue's floor.
. "$(dirname "$0")/lib.sh"
require_rdma
gid=$(rdma_gid_index "$RDMA_DEV") || fail "$RDMA_DEV has no link-local RoCE v2 GID"
port=$(pick_port ib_read_lat)
out=$(results_dir)
args=(-d "$RDMA_DEV" -i 1 -x "$gid" -p "$port" -s 4096 -n 1000 -F)
tmp=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
timeout 180 ib_read_lat "${args[@]}" > "$tmp/server" 2>&1 &
server=$!
wait_listening "$port" 30 || { cat "$tmp/server"; fail "server not listening on $port"; }
client_rc=0
timeout 180 ib_read_lat "${args[@]}" localhost > "$tmp/client" 2>&1 || client_rc=$?
server_rc=0
wait $server || server_rc=$?
echo "--- server (gid index $gid, exit $server_rc)"; cat "$tmp/server"
echo "--- client (exit $client_rc)"; cat "$tmp/client"
[ "$server_rc" = 0 ] && [ "$client_rc" = 0 ] || fail "ib_read_lat failed"
# The result row: bytes, iterations, t_min, t_max, t_typical, t_avg, ...
row=$(awk '$1 == 4096 && $2 == 1000 && NF >= 5' "$tmp/client")
[ -n "$row" ] || fail "no 4096-byte result row in the client's report"
{
  echo "# ib_read_lat ${args[*]} localhost"
  echo "# $(date -u +%FT%TZ) kernel $(uname -r) lab=${SSIHV_LAB:-0} ${SSIHV_LAB_QEMU:-}"
  cat "$tmp/client"
} > "$out/ib_read_lat.txt.tmp"
mv "$out/ib_read_lat.txt.tmp" "$out/ib_read_lat.txt"
echo "PASS: ib_read_lat -s 4096 on $RDMA_DEV gid[$gid]; saved $out/ib_read_lat.txt"
