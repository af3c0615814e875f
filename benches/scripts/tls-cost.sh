#!/usr/bin/env bash
# The cost of TLS (issue 14): put latency with 1 client and with 64 clients,
# over cleartext and over mutual TLS on both ports, for raft-kv-server and
# etcd 3.5.1 in the same run. Four 3-member clusters on loopback (certs from
# docker/tls-certs.sh); rows alternate systems. Prints a table of mean, p50
# and p99 latency and the TLS/cleartext ratios; raw JSON in
# $OUT/results.jsonl.
#
# Usage: benches/scripts/tls-cost.sh  (after building raft-kv-server and
#        raft-kv-bench in release, and with etcd 3.5.1 unpacked by the
#        examples tests in target/etcd-3.5.1/)
#   TOTAL_1=3000 TOTAL_64=30000 CLIENTS=64 CONNS=8 OUT=target/tls-cost
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-target/tls-cost}
TOTAL_1=${TOTAL_1:-3000}
TOTAL_64=${TOTAL_64:-30000}
CLIENTS=${CLIENTS:-64}
CONNS=${CONNS:-8}
ETCD_BIN=${ETCD_BIN:-target/etcd-3.5.1/etcd}
ETCDCTL_BIN=${ETCDCTL_BIN:-target/etcd-3.5.1/etcdctl}
# shellcheck source=lib.sh
. benches/scripts/lib.sh
for f in "$SERVER" "$BENCH" "$ETCD_BIN" "$ETCDCTL_BIN"; do [ -x "$f" ] || die "$f is missing"; done

trap stop_members EXIT
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
PKI=$OUT/pki
rm -rf "$PKI"
docker/tls-certs.sh "$PKI" >/dev/null
TLS_FLAGS=(--cert-file "$PKI/member.pem" --key-file "$PKI/member.key" --trusted-ca-file "$PKI/ca.pem"
  --client-cert-auth --peer-cert-file "$PKI/member.pem" --peer-key-file "$PKI/member.key"
  --peer-trusted-ca-file "$PKI/ca.pem" --peer-client-cert-auth)
CLIENT_TLS="--cacert=$PKI/ca.pem --cert=$PKI/client.pem --key=$PKI/client.key"

start_cluster etcd tls-cost-etcd
start_cluster raft-kv tls-cost-raft-kv
SCHEME=https start_cluster etcd-tls tls-cost-etcd-tls "${TLS_FLAGS[@]}"
SCHEME=https start_cluster raft-kv-tls tls-cost-raft-kv-tls "${TLS_FLAGS[@]}"
CTL_OF[etcd-tls]=$CLIENT_TLS
CTL_OF[raft-kv-tls]=$CLIENT_TLS
SYSTEMS=(etcd etcd-tls raft-kv raft-kv-tls)
for sys in "${SYSTEMS[@]}"; do wait_healthy "$sys"; done

# run SYSTEM ROW CLIENTS CONNS TOTAL: one put run against the leader.
run() {
  local sys=$1 row=$2 line
  # shellcheck disable=SC2086 # CTL_OF holds several flags
  line=$("$BENCH" --endpoints "$(leader_of "$sys")" ${CTL_OF[$sys]:-} --op put --clients "$3" --conns "$4" \
    --total "$5" --key-space 10000 --label "$sys: $row" 2>>"$OUT/logs/bench-$sys.log")
  echo "{\"system\":\"$sys\",\"row\":\"$row\",\"bench\":$line}" >>"$RESULTS"
  log "$sys $row: $line"
}
r=0
for spec in "put 1c|1|1|$TOTAL_1" "put ${CLIENTS}c|$CLIENTS|$CONNS|$TOTAL_64"; do
  IFS='|' read -r row clients conns total <<<"$spec"
  for sys in "${SYSTEMS[@]}"; do run "$sys" "$row" "$clients" "$conns" "$total"; done
  r=$((r + 1))
done

python3 - "$RESULTS" <<'PY' | tee "$OUT/table.md"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["system"], r["row"]): r["bench"] for r in recs}
rows = sorted({r["row"] for r in recs}, key=lambda r: int(r.split()[1][:-1]))
print("| row | system | plain mean / p50 / p99 ms | TLS mean / p50 / p99 ms | TLS/plain mean | p50 | p99 | ops/s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for row in rows:
    for sys_ in ("etcd", "raft-kv"):
        a, b = by[(sys_, row)], by[(sys_ + "-tls", row)]
        fmt = lambda d: "%.2f / %.2f / %.2f" % (d["mean_ms"], d["p50_ms"], d["p99_ms"])
        ratio = lambda k: "%.2f" % (b[k] / a[k]) if a[k] else "n/a"
        print(f"| {row} | {sys_} | {fmt(a)} | {fmt(b)} | {ratio('mean_ms')} | {ratio('p50_ms')} | {ratio('p99_ms')} "
              f"| {a['ops_per_sec']:.0f} → {b['ops_per_sec']:.0f} |")
PY
