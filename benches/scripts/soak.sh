#!/usr/bin/env bash
# Soak: a 3-member raft-kv-server cluster on loopback under a steady put load
# (raft-kv-bench, CLIENTS callers over CONNS connections to the leader, random
# keys from a bounded key space so the live data stays flat) for SOAK_SECS.
# raft-kv-server has no --auto-compaction flag, so every 30 s the script
# compacts the history up to the current revision with `etcdctl compact`; at
# the same moments it samples each member's VmRSS and data-dir size. Prints a
# table, then the RSS growth between the sample at 2 minutes and the last one.
# The cluster is torn down on exit, whatever happens.
#
# Usage: benches/scripts/soak.sh    (make bench-soak builds first)
#   SOAK_SECS=600  INTERVAL=30  CLIENTS=64  CONNS=8  KEY_SPACE=100000
#   VAL_SIZE=256  SNAPSHOT_COUNT=10000  OUT=target/bench-soak
#   SERVER=target/release/raft-kv-server  BENCH=target/release/raft-kv-bench
#   ETCDCTL_BIN=etcdctl  COMPACT=0 (no compaction: to tell its effect apart)
# Output: the table on stdout and in $OUT/soak.md, samples in
# $OUT/samples.jsonl, the bench's JSON line last in samples.jsonl, logs in
# $OUT/logs/. Exits 1 if the load failed (>1% errors) or a member died.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-target/bench-soak}
SOAK_SECS=${SOAK_SECS:-600}
INTERVAL=${INTERVAL:-30}
CLIENTS=${CLIENTS:-64}
CONNS=${CONNS:-8}
KEY_SPACE=${KEY_SPACE:-100000}
VAL_SIZE=${VAL_SIZE:-256}
# The sample growth is measured from (after warm-up).
BASELINE_SECS=${BASELINE_SECS:-120}
COMPACT=${COMPACT:-1}

# shellcheck source=lib.sh
. benches/scripts/lib.sh

for f in "$SERVER" "$BENCH"; do [ -x "$f" ] || die "$f not built (make bench-soak builds it)"; done
command -v "$ETCDCTL_BIN" >/dev/null || die "$ETCDCTL_BIN not found (Debian: apt-get install etcd-client)"
command -v python3 >/dev/null || die "python3 not found"

BENCH_PID=""
cleanup() {
  if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    wait "$BENCH_PID" 2>/dev/null || true
  fi
  stop_members
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"
rm -rf "$OUT/logs"
mkdir -p "$OUT/logs"
SAMPLES=$OUT/samples.jsonl
: >"$SAMPLES"

start_cluster raft-kv soak-raft-kv
wait_healthy raft-kv
leader=$(leader_of raft-kv)
log "raft-kv: leader $leader ($(member_of_url raft-kv "$leader")); load for ${SOAK_SECS} s, samples every ${INTERVAL} s"

# Fill the key space first so the live data is at its steady size from the
# first sample on.
"$BENCH" --endpoints "$leader" --op put --prefill --total 0 --clients "$CLIENTS" --conns "$CONNS" \
  --key-space "$KEY_SPACE" --val-size "$VAL_SIZE" --label "soak prefill" >"$OUT/prefill.json" 2>>"$OUT/logs/bench.log" ||
  die "prefill failed: $(cat "$OUT/prefill.json")"

"$BENCH" --endpoints "$leader" --op put --total 1000000000000 --duration-secs "$SOAK_SECS" \
  --clients "$CLIENTS" --conns "$CONNS" --key-space "$KEY_SPACE" --val-size "$VAL_SIZE" \
  --label "soak ${SOAK_SECS}s" >"$OUT/bench.json" 2>>"$OUT/logs/bench.log" &
BENCH_PID=$!

# Current store revision (the highest any member reports).
revision() {
  "$ETCDCTL_BIN" --endpoints="${ENDPOINTS_OF[raft-kv]}" --command-timeout=5s endpoint status -w json 2>/dev/null |
    python3 -c '
import json, sys
try:
    print(max(int(e["Status"]["header"]["revision"]) for e in json.load(sys.stdin)))
except (ValueError, KeyError):
    print(0)
'
}

# sample ELAPSED REVISION COMPACTED_REV: one line of samples.jsonl (RSS and
# data-dir size of every member).
sample() {
  local t=$1 rev=$2 crev=$3 i line
  line="{\"t\":$t,\"revision\":$rev,\"compacted\":$crev"
  for i in 1 2 3; do
    line+=",\"m${i}_rss_kib\":$(rss_kib "${PID_OF[raft-kv/m$i]}")"
    line+=",\"m${i}_data_kib\":$(du -sk "$OUT/raft-kv/m$i" 2>/dev/null | cut -f1)"
  done
  echo "$line}" >>"$SAMPLES"
}

start=$(date +%s)
sample 0 "$(revision)" 0
last=0
next=$INTERVAL
while kill -0 "$BENCH_PID" 2>/dev/null; do
  now=$(($(date +%s) - start))
  if [ "$now" -lt "$next" ]; then
    sleep 1
    continue
  fi
  check_alive raft-kv
  rev=$(revision)
  crev=0
  if [ "$COMPACT" = 1 ] && [ "$rev" -gt 1 ]; then
    t0=$(date +%s.%N)
    if "$ETCDCTL_BIN" --endpoints="${ENDPOINTS_OF[raft-kv]}" --command-timeout=10s compact "$rev" \
      >>"$OUT/logs/compact.log" 2>&1; then
      crev=$rev
      echo "t=${now}s: compact $rev took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }') s" >>"$OUT/logs/compact.log"
    else
      log "compact $rev failed (see $OUT/logs/compact.log)"
    fi
  fi
  sample "$now" "$rev" "$crev"
  last=$now
  log "t=${now}s revision $rev: RSS $(tail -n 1 "$SAMPLES" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print(" ".join("m%d %.0f MiB" % (i, d["m%d_rss_kib" % i] / 1024) for i in (1, 2, 3)))')"
  next=$((next + INTERVAL))
done
rc=0
wait "$BENCH_PID" || rc=$?
BENCH_PID=""
check_alive raft-kv
now=$(($(date +%s) - start))
# A closing sample unless the last periodic one was just taken.
[ $((now - last)) -lt 5 ] || sample "$now" "$(revision)" 0
cat "$OUT/bench.json" >>"$SAMPLES"

python3 - "$SAMPLES" "$OUT/soak.md" "$BASELINE_SECS" <<PY
import json, sys
samples_path, md, base_secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
recs = [json.loads(l) for l in open(samples_path) if l.strip()]
samples = [r for r in recs if "t" in r]
bench = [r for r in recs if "ops_per_sec" in r]
out = ["# raft-kv soak", "",
       "3 members on loopback, ${CLIENTS} clients / ${CONNS} conns of ${VAL_SIZE}-byte puts to the leader, "
       "key space ${KEY_SPACE}, ${SOAK_SECS} s, $([ "$COMPACT" = 1 ] && echo "compaction to the current revision every ${INTERVAL} s" || echo "no compaction"); "
       "raft-kv $(git describe --always --dirty 2>/dev/null || echo unknown).", "",
       "| t (s) | revision | puts/s since last | m1 RSS MiB | m2 RSS MiB | m3 RSS MiB | data dirs MiB |",
       "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
prev = None
for s in samples:
    rate = "" if prev is None or s["t"] == prev["t"] else f"{(s['revision'] - prev['revision']) / (s['t'] - prev['t']):,.0f}"
    data = sum(s.get(f"m{i}_data_kib") or 0 for i in (1, 2, 3)) / 1024
    out.append(f"| {s['t']} | {s['revision']:,} | {rate} | " +
               " | ".join(f"{s[f'm{i}_rss_kib'] / 1024:.0f}" for i in (1, 2, 3)) + f" | {data:.0f} |")
    prev = s
for b in bench:
    out += ["", f"load: {b['ops_per_sec']:,.0f} puts/s over {b['secs']} s, {b['errors']} errors, "
            f"p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms, p99.9 {b['p999_ms']} ms, max {b['max_ms']} ms"]
out.append("")
later = [s for s in samples if s["t"] >= base_secs]
if len(later) >= 2:
    a, z = later[0], later[-1]
    label = f"t={a['t']}s"
else:
    a, z = samples[0], samples[-1]
    label = f"t={a['t']}s (run shorter than {base_secs} s: first sample)"
parts = []
for i in (1, 2, 3):
    x, y = a[f"m{i}_rss_kib"] / 1024, z[f"m{i}_rss_kib"] / 1024
    pct = (y - x) / x * 100 if x else 0.0
    parts.append(f"m{i} {x:.0f} -> {y:.0f} MiB ({y - x:+.0f} MiB, {pct:+.1f}%)")
out.append(f"RSS growth from {label} to t={z['t']}s: " + "; ".join(parts))
open(md, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
log "samples: $SAMPLES, table: $OUT/soak.md, logs: $OUT/logs/"
if [ "$rc" != 0 ]; then
  log "the load failed (exit $rc): $(cat "$OUT/bench.json")"
  tail -n 5 "$OUT/logs/bench.log" >&2 || true
  exit 1
fi
