# Shared by bench-vs-etcd.sh, soak.sh and the other bench scripts (sourced, not run): starting
# 3-member etcd and raft-kv-server clusters on loopback, health and leader
# checks through etcdctl, RSS sampling, and teardown of everything started.
#
# The caller sets OUT (output dir). The binaries and the raft flags both
# scripts run with are set here, once (each overridable from the environment
# except the timing flags, which must match between etcd and raft-kv).

SERVER=${SERVER:-target/release/raft-kv-server}
BENCH=${BENCH:-target/release/raft-kv-bench}
ETCD_BIN=${ETCD_BIN:-etcd}
# "system" -> the etcd binary that system runs (default: $ETCD_BIN).
declare -A ETCD_BIN_OF=()
ETCDCTL_BIN=${ETCDCTL_BIN:-etcdctl}
HEARTBEAT=100
ELECTION=1000
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-10000}

export ETCDCTL_API=3

# pids of every member started, and "system/member" -> pid.
MEMBER_PIDS=()
declare -A PID_OF=()
# "system" -> comma-separated client URLs.
declare -A ENDPOINTS_OF=()
# "system" -> etcdctl's TLS flags for it (space-separated; empty: cleartext).
declare -A CTL_OF=()
# Ports handed out so far (never hand one out twice).
PORTS_USED=" "

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# Kills every member started (by pid): TERM, up to 15 s, then KILL.
stop_members() {
  local p i
  [ "${#MEMBER_PIDS[@]}" -gt 0 ] || return 0
  log "stopping members: ${MEMBER_PIDS[*]}"
  for p in "${MEMBER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 150); do
    local alive=0
    for p in "${MEMBER_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${MEMBER_PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      log "member $p ignored TERM; killing"
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  MEMBER_PIDS=()
}

# Prints N loopback TCP ports nobody listens on and not in $PORTS_USED
# (below the ephemeral range, so outgoing connections never hold one). Runs
# in a subshell: the caller adds them to PORTS_USED.
free_ports() {
  python3 - "$1" "$PORTS_USED" <<'PY'
import socket, sys
n, used = int(sys.argv[1]), set(int(x) for x in sys.argv[2].split())
found = []
for p in range(23100, 32000):
    if len(found) == n:
        break
    if p in used:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        found.append(p)
    except OSError:
        pass
    finally:
        s.close()
if len(found) < n:
    sys.exit("no free ports")
print(" ".join(map(str, found)))
PY
}

# start_cluster SYSTEM TOKEN [FLAGS...]: starts 3 members of SYSTEM (etcd* |
# raft-kv*) with FLAGS added, data under $OUT/SYSTEM/mN and logs in
# $OUT/logs/SYSTEM-mN.log. SCHEME=https in the environment: TLS URLs.
start_cluster() {
  local sys=$1 token=$2 i cluster="" eps="" scheme=${SCHEME:-http}
  shift 2
  local -a cport pport ports
  read -r -a ports <<<"$(free_ports 6)"
  [ "${#ports[@]}" = 6 ] || die "no free ports"
  PORTS_USED+="${ports[*]} "
  for i in 1 2 3; do
    cport[$i]=${ports[$((2 * i - 2))]}
    pport[$i]=${ports[$((2 * i - 1))]}
    cluster+="${cluster:+,}m$i=$scheme://127.0.0.1:${pport[$i]}"
    eps+="${eps:+,}$scheme://127.0.0.1:${cport[$i]}"
  done
  rm -rf "${OUT:?}/$sys"
  mkdir -p "$OUT/$sys" "$OUT/logs"
  for i in 1 2 3; do
    local c="$scheme://127.0.0.1:${cport[$i]}" p="$scheme://127.0.0.1:${pport[$i]}"
    local -a common=(
      --name "m$i" --data-dir "$OUT/$sys/m$i"
      --listen-client-urls "$c" --advertise-client-urls "$c"
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p"
      --initial-cluster "$cluster" --initial-cluster-token "$token" --initial-cluster-state new
      --heartbeat-interval "$HEARTBEAT" --election-timeout "$ELECTION"
      --snapshot-count "$SNAPSHOT_COUNT" --log-level warn "$@"
    )
    if [[ $sys == etcd* ]]; then
      # The quota only keeps etcd from raising NOSPACE during the 1M-key
      # load (raft-kv has no quota); it costs nothing while unused.
      "${ETCD_BIN_OF[$sys]:-$ETCD_BIN}" "${common[@]}" --logger zap --quota-backend-bytes $((8 << 30)) \
        >"$OUT/logs/$sys-m$i.log" 2>&1 &
    else
      "$SERVER" "${common[@]}" >"$OUT/logs/$sys-m$i.log" 2>&1 &
    fi
    MEMBER_PIDS+=($!)
    PID_OF[$sys/m$i]=$!
  done
  ENDPOINTS_OF[$sys]=$eps
  log "$sys: members m1-m3 pids ${PID_OF[$sys/m1]} ${PID_OF[$sys/m2]} ${PID_OF[$sys/m3]}, client URLs $eps"
}

# Fails (with the member's log tail) if a member of SYSTEM has exited.
check_alive() {
  local sys=$1 i
  for i in 1 2 3; do
    if ! kill -0 "${PID_OF[$sys/m$i]}" 2>/dev/null; then
      tail -n 20 "$OUT/logs/$sys-m$i.log" >&2 || true
      die "$sys member m$i (pid ${PID_OF[$sys/m$i]}) exited; log: $OUT/logs/$sys-m$i.log"
    fi
  done
}

# Waits (at most 60 s) until every member of SYSTEM answers `endpoint health`.
wait_healthy() {
  local sys=$1 i
  for i in $(seq 1 120); do
    check_alive "$sys"
    if "$ETCDCTL_BIN" ${CTL_OF[$sys]:-} --endpoints="${ENDPOINTS_OF[$sys]}" --command-timeout=2s endpoint health >/dev/null 2>&1; then
      log "$sys: all members healthy"
      return 0
    fi
    sleep 0.5
  done
  "$ETCDCTL_BIN" ${CTL_OF[$sys]:-} --endpoints="${ENDPOINTS_OF[$sys]}" --command-timeout=2s endpoint health >&2 || true
  die "$sys: not healthy after 60 s"
}

# Prints the client URL of SYSTEM's leader (from `endpoint status -w json`:
# the member whose own id is the leader it reports), retrying for up to 20 s.
leader_of() {
  local sys=$1 i url
  for i in $(seq 1 40); do
    url=$("$ETCDCTL_BIN" ${CTL_OF[$sys]:-} --endpoints="${ENDPOINTS_OF[$sys]}" --command-timeout=2s endpoint status -w json 2>/dev/null |
      python3 -c '
import json, sys
try:
    for e in json.load(sys.stdin):
        s = e["Status"]
        if s["leader"] and s["header"]["member_id"] == s["leader"]:
            print(e["Endpoint"])
            break
except ValueError:
    pass
') || true
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    check_alive "$sys"
    sleep 0.5
  done
  die "$sys: no leader found"
}

# The member (m1..m3) of SYSTEM serving client URL $2.
member_of_url() {
  local sys=$1 url=$2 i=1 e
  IFS=, read -r -a eps <<<"${ENDPOINTS_OF[$sys]}"
  for e in "${eps[@]}"; do
    [ "$e" = "$url" ] && { echo "m$i"; return 0; }
    i=$((i + 1))
  done
  echo "?"
}

# VmRSS of a pid in KiB (0 if gone).
rss_kib() {
  local v=""
  [ -r "/proc/$1/status" ] && v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
  echo "${v:-0}"
}
