#!/usr/bin/env bash
# Reference program: rdma-core's ibv_rc_pingpong, server and client on the
# same verbs device (RC QPs, SEND/RECV), over the IPv6 link-local RoCE v2
# GID. Both sides must exit 0 after all iterations.
. "$(dirname "$0")/lib.sh"
require_rdma
gid=$(rdma_gid_index "$RDMA_DEV") || fail "$RDMA_DEV has no link-local RoCE v2 GID"
port=$(pick_port rc_pingpong)
args=(-d "$RDMA_DEV" -i 1 -g "$gid" -p "$port" -s 4096 -n 1000)
tmp=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
timeout 120 ibv_rc_pingpong "${args[@]}" > "$tmp/server" 2>&1 &
server=$!
wait_listening "$port" 30 || { cat "$tmp/server"; fail "server not listening on $port"; }
client_rc=0
timeout 120 ibv_rc_pingpong "${args[@]}" localhost > "$tmp/client" 2>&1 || client_rc=$?
server_rc=0
wait $server || server_rc=$?
echo "--- server (gid index $gid, exit $server_rc)"; cat "$tmp/server"
echo "--- client (exit $client_rc)"; cat "$tmp/client"
[ "$server_rc" = 0 ] && [ "$client_rc" = 0 ] || fail "ibv_rc_pingpong failed"
grep -q '1000 iters in' "$tmp/client" || fail "client did not report 1000 iterations"
grep -q '1000 iters in' "$tmp/server" || fail "server did not report 1000 iterations"
echo "PASS: ibv_rc_pingpong over $RDMA_DEV gid[$gid]"
