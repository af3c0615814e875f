#!/usr/bin/env bash
# raft-kv vs etcd, side by side (issue 7). Starts a 3-member etcd cluster and
# a 3-member raft-kv-server cluster on loopback (data under $OUT, same
# filesystem, same raft flags), prefills the key space on each, then runs the
# same raft-kv-bench matrix against both, alternating systems run by run (and
# who goes first, row by row). Afterwards it loads RSS_KEYS distinct 256-byte
# keys into each and reports every member's VmRSS. Both clusters are torn down
# on exit, whatever happens.
#
# Usage: benches/scripts/bench-vs-etcd.sh    (make bench-vs-etcd builds first)
#   QUICK=1            small totals: a smoke test of the whole pipeline
#   TOTAL_PUT_1 TOTAL_PUT TOTAL_TXN TOTAL_RANGE TOTAL_SRANGE
#                      ops per run of each row (defaults aim at 5-15 s a run)
#   KEY_SPACE=100000   keys of the matrix (8-byte keys, 256-byte values)
#   RSS_KEYS=1000000   distinct keys loaded before the RSS sample (0: skip)
#   CLIENTS=64 CONNS=8 the concurrent rows' callers and connections
#   SNAPSHOT_COUNT=10000, OUT=target/bench-vs-etcd,
#   SERVER=target/release/raft-kv-server, BENCH=target/release/raft-kv-bench,
#   ETCD_BIN=etcd, ETCDCTL_BIN=etcdctl
#
# Output: a markdown table on stdout and in $OUT/table.md; every raw JSON
# line (one per run, plus RSS samples) in $OUT/results.jsonl; member logs and
# bench stderr in $OUT/logs/. Exits 1 if any run failed (>1% errors).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-target/bench-vs-etcd}
QUICK=${QUICK:-0}
CLIENTS=${CLIENTS:-64}
CONNS=${CONNS:-8}
if [ "$QUICK" = 1 ]; then
  TOTAL_PUT_1=${TOTAL_PUT_1:-500}
  TOTAL_PUT=${TOTAL_PUT:-5000}
  TOTAL_TXN=${TOTAL_TXN:-5000}
  TOTAL_RANGE=${TOTAL_RANGE:-5000}
  TOTAL_SRANGE=${TOTAL_SRANGE:-5000}
  KEY_SPACE=${KEY_SPACE:-10000}
  RSS_KEYS=${RSS_KEYS:-20000}
else
  TOTAL_PUT_1=${TOTAL_PUT_1:-8000}
  TOTAL_PUT=${TOTAL_PUT:-70000}
  TOTAL_TXN=${TOTAL_TXN:-30000}
  TOTAL_RANGE=${TOTAL_RANGE:-100000}
  TOTAL_SRANGE=${TOTAL_SRANGE:-130000}
  KEY_SPACE=${KEY_SPACE:-100000}
  RSS_KEYS=${RSS_KEYS:-1000000}
fi
KEY_SIZE=8
VAL_SIZE=256

# name | op | clients | conns | target (leader: the leader's URL only; all:
# every member, connections round robin) | total ops
ROWS=(
  "put 1c/1conn leader|put|1|1|leader|$TOTAL_PUT_1"
  "put ${CLIENTS}c/${CONNS}conn leader|put|$CLIENTS|$CONNS|leader|$TOTAL_PUT"
  "txn ${CLIENTS}c/${CONNS}conn leader|txn|$CLIENTS|$CONNS|leader|$TOTAL_TXN"
  "range (linearizable) ${CLIENTS}c/${CONNS}conn all|range|$CLIENTS|$CONNS|all|$TOTAL_RANGE"
  "range (serializable) ${CLIENTS}c/${CONNS}conn all|range-serializable|$CLIENTS|$CONNS|all|$TOTAL_SRANGE"
)

# shellcheck source=lib.sh
. benches/scripts/lib.sh

for f in "$SERVER" "$BENCH"; do [ -x "$f" ] || die "$f not built (make bench-vs-etcd builds it)"; done
command -v "$ETCD_BIN" >/dev/null || die "$ETCD_BIN not found (Debian: apt-get install etcd-server)"
command -v "$ETCDCTL_BIN" >/dev/null || die "$ETCDCTL_BIN not found (Debian: apt-get install etcd-client)"
command -v python3 >/dev/null || die "python3 not found"

trap stop_members EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"
rm -rf "$OUT/logs"
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
FAILED=0

# record KIND SYSTEM ROW RC JSON: appends {"kind","system","row","rc",...bench
# fields} to results.jsonl.
record() {
  python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
kind, system, row, rc, line = sys.argv[1:6]
d = {"kind": kind, "system": system, "row": row, "rc": int(rc)}
try:
    d.update(json.loads(line))
except ValueError:
    d["raw"] = line
print(json.dumps(d, separators=(",", ":")))
PY
}

# bench SYSTEM KIND ROW ARGS...: one raft-kv-bench run; records its JSON line.
bench() {
  local sys=$1 kind=$2 row=$3 rc=0 line
  shift 3
  local logf="$OUT/logs/bench-$sys.log"
  echo "== $kind / $row: $BENCH $*" >>"$logf"
  line=$("$BENCH" "$@" --label "$sys: $row" 2>>"$logf") || rc=$?
  record "$kind" "$sys" "$row" "$rc" "${line:-null}"
  if [ "$rc" != 0 ]; then
    FAILED=1
    log "$sys: $row FAILED (exit $rc; see $logf)"
    tail -n 5 "$logf" >&2 || true
  fi
  python3 -c '
import json, sys
d = json.loads(sys.argv[1] or "null") or {}
if d.get("total"):
    print("%s: %s: %s ops/s, p50 %s ms, p99 %s ms, %s errors, %.1f s" % (sys.argv[2], sys.argv[3],
          d.get("ops_per_sec"), d.get("p50_ms"), d.get("p99_ms"), d.get("errors"), d.get("secs") or 0))
else:
    print("%s: %s: %s s, %s errors" % (sys.argv[2], sys.argv[3], d.get("prefill_secs"), d.get("prefill_errors")))
' "${line:-null}" "$sys" "$row" >&2 || true
  check_alive "$sys"
}

# run_row SYSTEM ROWSPEC
run_row() {
  local sys=$1 name op clients conns target total eps
  IFS='|' read -r name op clients conns target total <<<"$2"
  if [ "$target" = leader ]; then
    eps=$(leader_of "$sys")
  else
    eps=${ENDPOINTS_OF[$sys]}
  fi
  bench "$sys" run "$name" --endpoints "$eps" --op "$op" --clients "$clients" --conns "$conns" \
    --total "$total" --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space "$KEY_SPACE"
}

# rss_sample PHASE: records every member's VmRSS.
rss_sample() {
  local phase=$1 sys i leader
  for sys in etcd raft-kv; do
    leader=$(leader_of "$sys")
    leader=$(member_of_url "$sys" "$leader")
    for i in 1 2 3; do
      local kib
      kib=$(rss_kib "${PID_OF[$sys/m$i]}")
      echo "{\"kind\":\"rss\",\"system\":\"$sys\",\"row\":\"$phase\",\"member\":\"m$i\",\"leader\":$([ "$leader" = "m$i" ] && echo true || echo false),\"pid\":${PID_OF[$sys/m$i]},\"rss_kib\":$kib,\"data_kib\":$(du -sk "$OUT/$sys/m$i" | cut -f1)}" >>"$RESULTS"
    done
  done
}

log "etcd: $("$ETCD_BIN" --version | head -n 1); raft-kv: $(git describe --always --dirty 2>/dev/null || echo unknown)"
start_cluster etcd bench-etcd
start_cluster raft-kv bench-raft-kv
wait_healthy etcd
wait_healthy raft-kv

for sys in etcd raft-kv; do
  log "$sys: prefilling $KEY_SPACE keys"
  leader=$(leader_of "$sys")
  bench "$sys" prefill "prefill $KEY_SPACE keys" --endpoints "$leader" --op put --prefill --total 0 \
    --clients "$CLIENTS" --conns "$CONNS" --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space "$KEY_SPACE"
done

r=0
for spec in "${ROWS[@]}"; do
  if [ $((r % 2)) = 0 ]; then order=(etcd raft-kv); else order=(raft-kv etcd); fi
  for sys in "${order[@]}"; do run_row "$sys" "$spec"; done
  r=$((r + 1))
done

rss_sample "after matrix"
if [ "$RSS_KEYS" -gt 0 ]; then
  # Keys r0000000.. : disjoint from the matrix keys, 8 bytes while they fit.
  digits=${#RSS_KEYS}
  rss_key_size=$((digits + 1 > KEY_SIZE ? digits + 1 : KEY_SIZE))
  for sys in etcd raft-kv; do
    log "$sys: loading $RSS_KEYS distinct keys"
    leader=$(leader_of "$sys")
    bench "$sys" load "load $RSS_KEYS keys" --endpoints "$leader" --op put --sequential \
      --total "$RSS_KEYS" --key-space "$RSS_KEYS" --key-prefix r --key-size "$rss_key_size" --val-size "$VAL_SIZE" \
      --clients "$CLIENTS" --conns "$CONNS"
  done
  sleep 5
  rss_sample "after $RSS_KEYS keys"
fi

python3 - "$RESULTS" "$OUT/table.md" <<PY
import json, sys
results, table = sys.argv[1], sys.argv[2]
lines = [l for l in open(results) if l.strip()]
recs = [json.loads(l) for l in lines]
def f(x, fmt):
    return "n/a" if x is None else fmt.format(x)
out = []
out.append("# raft-kv vs etcd")
out.append("")
out.append("3 members each on loopback, heartbeat ${HEARTBEAT} ms, election ${ELECTION} ms, "
           "snapshot count ${SNAPSHOT_COUNT}; ${KEY_SIZE}-byte keys, ${VAL_SIZE}-byte values, "
           "key space ${KEY_SPACE} (prefilled); QUICK=${QUICK}.")
out.append("etcd: $("$ETCD_BIN" --version | head -n 1 | sed 's/.*: //'); raft-kv: "
           "$(git describe --always --dirty 2>/dev/null || echo unknown); "
           "$(nproc) cores, $(uname -r).")
out.append("")
out.append("| row | etcd ops/s | raft-kv ops/s | raft-kv/etcd | etcd p99 ms | raft-kv p99 ms |")
out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
rows = []
for r in recs:
    if r["kind"] in ("run", "load") and r["row"] not in rows:
        rows.append(r["row"])
for row in rows:
    by = {r["system"]: r for r in recs if r["kind"] in ("run", "load") and r["row"] == row}
    e, k = by.get("etcd", {}), by.get("raft-kv", {})
    eo, ko = e.get("ops_per_sec"), k.get("ops_per_sec")
    ratio = f"{ko / eo:.2f}x" if eo and ko else "n/a"
    mark = lambda d: "" if d.get("rc") == 0 else " (FAILED)"
    out.append(f"| {row} | {f(eo, '{:,.0f}')}{mark(e)} | {f(ko, '{:,.0f}')}{mark(k)} | {ratio} "
               f"| {f(e.get('p99_ms'), '{:.2f}')} | {f(k.get('p99_ms'), '{:.2f}')} |")
rss = [r for r in recs if r["kind"] == "rss"]
if rss:
    out.append("")
    out.append("| RSS (MiB) | member | etcd | raft-kv |")
    out.append("| --- | --- | ---: | ---: |")
    for phase in dict.fromkeys(r["row"] for r in rss):
        tot = {}
        for m in ("m1", "m2", "m3"):
            cells = []
            for sysname in ("etcd", "raft-kv"):
                x = [r for r in rss if r["row"] == phase and r["system"] == sysname and r["member"] == m]
                if x:
                    tot[sysname] = tot.get(sysname, 0) + x[0]["rss_kib"]
                    cells.append(f"{x[0]['rss_kib'] / 1024:.0f}" + (" (leader)" if x[0]["leader"] else ""))
                else:
                    cells.append("n/a")
            out.append(f"| {phase} | {m} | {cells[0]} | {cells[1]} |")
        out.append(f"| {phase} | total | {tot.get('etcd', 0) / 1024:.0f} | {tot.get('raft-kv', 0) / 1024:.0f} |")
    out.append("")
    out.append("| data dir (MiB) | etcd | raft-kv |")
    out.append("| --- | ---: | ---: |")
    for phase in dict.fromkeys(r["row"] for r in rss):
        s = {n: sum(r["data_kib"] for r in rss if r["row"] == phase and r["system"] == n) / 1024 for n in ("etcd", "raft-kv")}
        out.append(f"| {phase} (3 members) | {s['etcd']:.0f} | {s['raft-kv']:.0f} |")
out.append("")
out.append("Raw JSON lines (also in results.jsonl):")
out.append("")
out.append("\`\`\`")
out.extend(l.rstrip("\n") for l in lines)
out.append("\`\`\`")
open(table, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
log "results: $RESULTS, table: $OUT/table.md, logs: $OUT/logs/"
exit "$FAILED"
