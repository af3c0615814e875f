#!/usr/bin/env bash
# CPU per request of raft-kv-server builds, side by side: for each build,
# a 3-member cluster on loopback, 64-client and 1-client puts to the leader and
# 64-client serializable and linearizable ranges over all members
# (raft-kv-bench), and the
# CPU time (user + system, from /proc) the three members spent, divided by
# the requests served, the raft messages they sent per request (their
# /metrics) and their threads' context switches per request (thread
# hand-offs, from /proc/PID/task/*/status). Builds alternate over ROUNDS rounds in one run, so
# they share the machine's state; the table gives each build's median.
#
#   benches/scripts/cpu-per-request.sh before=/path/to/old/raft-kv-server after=target/release/raft-kv-server
#
# Environment: ROUNDS (default 2), PUTS (default 20000), PUTS1 (1-client
# puts, default 3000), RANGES (default 40000), OUT (default target/cpu-per-request).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-target/cpu-per-request}
ROUNDS=${ROUNDS:-2}
PUTS=${PUTS:-20000}
PUTS1=${PUTS1:-3000}
RANGES=${RANGES:-40000}
# shellcheck source=lib.sh
source benches/scripts/lib.sh
trap stop_members EXIT
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
[ -x "$BENCH" ] || die "$BENCH not built (cargo build --release -p benches --bin raft-kv-bench)"
[ $# -gt 0 ] || die "usage: $0 label=server-binary..."
TCK=$(getconf CLK_TCK)

# CPU ticks (user + system) of the members of SYSTEM.
cpu_ticks() {
  local sys=$1 i total=0 t
  for i in 1 2 3; do
    t=$(awk '{ print $14 + $15 }' "/proc/${PID_OF[$sys/m$i]}/stat")
    total=$((total + t))
  done
  echo "$total"
}

# Context switches (voluntary and not) of every thread of the members of
# SYSTEM: thread hand-offs, which CPU time alone does not show.
switches() {
  local sys=$1 i
  for i in 1 2 3; do
    cat /proc/"${PID_OF[$sys/m$i]}"/task/*/status 2>/dev/null
  done | awk '/ctxt_switches/ { n += $2 } END { printf "%d", n }'
}

# Raft messages the members of SYSTEM sent (their /metrics), summed.
raft_messages() {
  local sys=$1 url total=0 n
  IFS=, read -r -a urls <<<"${ENDPOINTS_OF[$sys]}"
  for url in "${urls[@]}"; do
    n=$(curl -s "$url/metrics" | awk '$1 == "raft_kv_transport_messages_sent_total" { printf "%d", $2 }')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

# measure LABEL ROW OPS ARGS...: one bench run; records ops/s, CPU µs/op
# and raft messages per op.
measure() {
  local label=$1 row=$2 ops=$3 before after line msgs_before msgs_after sw_before sw_after
  shift 3
  sw_before=$(switches "$label")
  before=$(cpu_ticks "$label")
  msgs_before=$(raft_messages "$label")
  line=$("$BENCH" "$@" --total "$ops" --label "$label: $row" 2>>"$OUT/logs/bench-$label.log")
  after=$(cpu_ticks "$label")
  sw_after=$(switches "$label")
  msgs_after=$(raft_messages "$label")
  python3 - "$label" "$row" "$ops" "$before" "$after" "$TCK" "$line" "$msgs_before" "$msgs_after" \
    "$sw_before" "$sw_after" >>"$RESULTS" <<'PY'
import json, sys
label, row, ops, before, after, tck, line, msgs_before, msgs_after, sw_before, sw_after = sys.argv[1:]
d = json.loads(line)
us = (int(after) - int(before)) / int(tck) * 1e6 / int(ops)
msgs = (int(msgs_after) - int(msgs_before)) / int(ops)
print(json.dumps({"build": label, "row": row, "ops_per_sec": d["ops_per_sec"], "p50_ms": d["p50_ms"], "p99_ms": d["p99_ms"],
                  "errors": d["errors"], "cpu_us_per_op": round(us, 1), "msgs_per_op": round(msgs, 2),
                  "switches_per_op": round((int(sw_after) - int(sw_before)) / int(ops), 2)}))
PY
  tail -n 1 "$RESULTS" >&2
}

for round in $(seq 1 "$ROUNDS"); do
  for spec in "$@"; do
    label=${spec%%=*}
    SERVER=${spec#*=}
    [ -x "$SERVER" ] || die "$SERVER is not an executable"
    start_cluster "$label" "cpu-$label-$round"
    wait_healthy "$label"
    leader=$(leader_of "$label")
    "$BENCH" --endpoints "$leader" --op put --clients 64 --conns 8 --total 1 --key-space 10000 --prefill \
      --key-size 8 --val-size 256 >/dev/null 2>>"$OUT/logs/bench-$label.log"
    measure "$label" "put 64c/8conn leader" "$PUTS" --endpoints "$leader" --op put --clients 64 --conns 8 \
      --key-space 10000 --key-size 8 --val-size 256
    measure "$label" "put 1c leader" "$PUTS1" --endpoints "$leader" --op put --clients 1 --conns 1 \
      --key-space 10000 --key-size 8 --val-size 256
    measure "$label" "range-serializable 64c/8conn all" "$RANGES" --endpoints "${ENDPOINTS_OF[$label]}" \
      --op range-serializable --clients 64 --conns 8 --key-space 10000 --key-size 8 --val-size 256
    measure "$label" "range-linearizable 64c/8conn all" "$RANGES" --endpoints "${ENDPOINTS_OF[$label]}" \
      --op range --clients 64 --conns 8 --key-space 10000 --key-size 8 --val-size 256
    stop_members
  done
done

python3 - "$RESULTS" <<'PY' | tee "$OUT/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
builds = list(dict.fromkeys(r["build"] for r in rows))
print("| row | " + " | ".join(f"{b} CPU µs/op | {b} ops/s | {b} p50 ms | {b} msgs/op | {b} switches/op" for b in builds) + " |")
print("| --- |" + " ---: | ---: | ---: | ---: | ---: |" * len(builds))
for row in dict.fromkeys(r["row"] for r in rows):
    cells = []
    for b in builds:
        rs = [r for r in rows if r["build"] == b and r["row"] == row]
        cells += [f'{statistics.median(r["cpu_us_per_op"] for r in rs):.1f}',
                  f'{statistics.median(r["ops_per_sec"] for r in rs):.0f}',
                  f'{statistics.median(r["p50_ms"] for r in rs):.3f}',
                  f'{statistics.median(r.get("msgs_per_op", 0) for r in rs):.2f}',
                  f'{statistics.median(r.get("switches_per_op", 0) for r in rs):.2f}']
    print(f"| {row} | " + " | ".join(cells) + " |")
PY
