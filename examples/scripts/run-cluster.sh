#!/usr/bin/env bash
# Starts a local 3-member raft-kv-server cluster on loopback and stops it on
# Ctrl-C. Usage: run-cluster.sh [BINARY] [DATA_DIR]
#   client URLs: http://127.0.0.1:2379, :22379, :32379 (gRPC + JSON gateway)
#   peer URLs:   http://127.0.0.1:2380, :22380, :32380
set -euo pipefail
BIN=${1:-target/release/raft-kv-server}
DATA=${2:-data/cluster}
TOKEN=raft-kv-local
CLUSTER="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
ENDPOINTS="http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379"
mkdir -p "$DATA"
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping members: ${pids[*]}"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "stopped; data kept in $DATA"
  exit 0
}
trap stop INT TERM EXIT
for i in 1 2 3; do
  port=$(( i == 1 ? 2379 : i * 10000 + 2379 ))
  "$BIN" --name "m$i" --data-dir "$DATA/m$i" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "$CLUSTER" --initial-cluster-token "$TOKEN" --initial-cluster-state new \
    2> "$DATA/m$i.log" &
  pids+=($!)
done
cat <<MSG
raft-kv cluster running (logs in $DATA/m*.log). Try:
  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$ENDPOINTS
  etcdctl put greeting hello && etcdctl get greeting
  etcdctl member list -w table && etcdctl endpoint status -w table
  curl -s http://127.0.0.1:2379/v3/kv/range -d '{"key":"Z3JlZXRpbmc="}'
  curl -s http://127.0.0.1:2379/metrics
Ctrl-C stops the cluster.
MSG
wait -n "${pids[@]}" || true
echo "a member exited; see $DATA/m*.log"
