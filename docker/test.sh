#!/usr/bin/env bash
# End-to-end test of the Docker deployment (`make docker-test`):
# build the images, start docker/compose.yaml (3 members + nginx), talk to
# the cluster through nginx on 127.0.0.1, inject faults, check that nothing
# acknowledged is lost. Tears everything down on exit, even on failure.
#
# Environment:
#   RAFT_KV_IMAGE  image to test (default raft-kv:latest, built here)
#   NGINX_IMAGE    default raft-kv/nginx:local, built here with debootstrap
#   TEST_PORT      host port for nginx on 127.0.0.1 (default 2379)
#   SKIP_BUILD=1   use the images as they are
#   KEEP=1         leave the cluster running after the test (no teardown)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

T0=$(date +%s)
. docker/lib.sh
compose_prologue raft-kv-test 2379
export RAFT_KV_CLUSTER_TOKEN=raft-kv-docker-test
compose() { "${COMPOSE_BIN[@]}" -f docker/compose.yaml -p "$PROJECT" --profile scale-out "$@"; }
lb() { etcdctl_ --endpoints="$ENDPOINT" "$@"; }

# Members' client endpoints by container IP (bypassing nginx). No http://
# scheme: etcdctl 3.4 sends a bad :authority for several endpoints with one.
# A stopped or disconnected member has no address and is left out.
member_eps() {
  local m ip eps=
  for m in "$@"; do
    ip=$(ip_of "$m")
    if [ -n "$ip" ]; then eps+="${eps:+,}$ip:2379"; fi
  done
  echo "$eps"
}
# Service name of the current leader: the member whose id is its own leader.
leader_name() {
  etcdctl_ --endpoints="$(member_eps "${MEMBERS[@]}")" endpoint status -w json 2>/dev/null |
    python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["header"]["member_id"] == s["Status"].get("leader"):
        print(s["Endpoint"]); break' |
    while read -r ep; do
      for m in "${MEMBERS[@]}"; do
        ip=$(ip_of "$m")
        if [ -n "$ip" ] && [ "$ip:2379" = "$ep" ]; then echo "$m"; fi
      done
    done
}
# Serializable (local) read of a key on one member, bypassing nginx.
local_get() { etcdctl_ --endpoints="$(ip_of "$1"):2379" get --consistency=s --print-value-only "$2"; }
# Number of keys under a prefix (etcdctl 3.4 has no --count-only: the JSON
# answer of a limit-1 range carries the total count).
json_count() { python3 -c 'import json, sys; print(json.load(sys.stdin).get("count", 0))'; }
local_count() { etcdctl_ --endpoints="$(ip_of "$1"):2379" get --consistency=s --prefix --limit=1 -w json "$2" | json_count; }
# Predicates for wait_for (re-evaluated on every poll).
has_value() { [ "$(local_get "$1" "$2")" = "$3" ]; }
has_count() { [ "$(local_count "$1" "$2")" -ge "$3" ]; }
# Number of keys under a prefix, through nginx (linearizable).
lb_count() { lb get --prefix --limit=1 -w json "$1" | json_count; }

# ---------------------------------------------------------------- images
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "build images"
  t=$(date +%s); docker/build-image.sh "$RAFT_KV_IMAGE"; T_IMAGE=$(( $(date +%s) - t ))
  t=$(date +%s)
  if [ "$NGINX_IMAGE" = raft-kv/nginx:local ]; then docker/build-nginx-image.sh "$NGINX_IMAGE"; fi
  T_NGINX=$(( $(date +%s) - t ))
fi
IMAGE_MB=$(docker image inspect -f '{{.Size}}' "$RAFT_KV_IMAGE" | awk '{printf "%.1f", $1/1e6}')

step "python etcd3 client (venv in target/py-etcd3)"
py_etcd3_venv "$VENV"
PY=("$VENV/bin/python" "$ROOT/docker/etcd_client.py")

# ---------------------------------------------------------------- up
step "start the cluster"
compose down -v --remove-orphans >/dev/null 2>&1 || true   # leftovers of an aborted run
# Something else (a `make run` cluster?) on the port would take our clients.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  fail "127.0.0.1:$PORT is already in use; set TEST_PORT to another port"
fi
t=$(now)
compose up -d raft-kv-00 raft-kv-01 raft-kv-02 nginx
wait_for 120 "3 healthy members" all_healthy "${MEMBERS[@]}"
wait_for 30 "etcdctl through nginx" lb endpoint health
T_HEALTHY=$(python3 -c "print(f'{$(now) - $t:.1f}')")
echo "cluster healthy in ${T_HEALTHY}s"

# ---------------------------------------------------------------- clients
step "python etcd3 through nginx"
"${PY[@]}" smoke "$ENDPOINT"

step "etcdctl through nginx"
lb put /test/etcdctl 'hello from etcdctl'
[ "$(lb get --print-value-only /test/etcdctl)" = 'hello from etcdctl' ] || fail "etcdctl get"
lb member list -w table
lb endpoint status -w table

# ---------------------------------------------------------------- leader kill
step "kill the leader while a client writes through nginx"
ACKED=$WORK/acked STOP=$WORK/stop
: >"$ACKED"
"${PY[@]}" writer "$ENDPOINT" "$ACKED" "$STOP" 2>"$WORK/writer.err" &
WRITER_PID=$!
wait_for 20 "first acknowledged writes" lines_ge "$ACKED" 20
LEADER=$(leader_name); [ -n "$LEADER" ] || fail "no leader found"
before=$(wc -l <"$ACKED")
T_KILL=$(now)
docker kill "$(container "$LEADER")" >/dev/null
echo "killed leader $LEADER after $before acknowledged writes"
# A new leader among the two survivors, and writes through nginx resume.
wait_for 30 "a new leader" other_leader "$LEADER"
T_ELECT=$(python3 -c "print(f'{$(now) - $T_KILL:.2f}')")
NEW_LEADER=$(leader_name)
wait_for 30 "writes to resume after the leader was killed" \
  python3 -c "import sys; sys.exit(0 if sum(float(l.split()[1]) > $T_KILL + $T_ELECT for l in open('$ACKED')) >= 10 else 1)"
# The stall: the longest pause between two acknowledged writes around the
# kill (an in-flight write may still be acknowledged just after it).
T_STALL=$(python3 -c "
ts = [float(l.split()[1]) for l in open('$ACKED')]
print(f'{max(b - a for a, b in zip(ts, ts[1:]) if b > $T_KILL):.2f}')")
echo "new leader $NEW_LEADER after ${T_ELECT}s (as seen by polling); longest write stall ${T_STALL}s"
sleep 3
# `docker kill` counts as a manual stop, so the restart policy leaves the
# container down: start it again, as an operator (or orchestrator) would.
docker start "$(container "$LEADER")" >/dev/null
wait_for 60 "$LEADER healthy again" all_healthy "$LEADER"
sleep 2
touch "$STOP"; wait "$WRITER_PID" || fail "writer exited with an error"; WRITER_PID=
echo "writer: $(wc -l <"$ACKED") acknowledged, $(grep -c failed "$WORK/writer.err" || true) failed (outcome unknown)"
"${PY[@]}" verify "$ENDPOINT" "$ACKED"
# The restarted member has every acknowledged write too (local reads).
acked_n=$(wc -l <"$ACKED")
wait_for 30 "$LEADER to catch up" has_count "$LEADER" /load/ "$acked_n"

# ---------------------------------------------------------------- partition
step "partition a member (network disconnect), write, reconnect"
VICTIM=$(for m in "${MEMBERS[@]}"; do [ "$m" = "$(leader_name)" ] || { echo "$m"; break; }; done)
old_ip=$(ip_of "$VICTIM")
docker network disconnect "$NET" "$(container "$VICTIM")"
echo "disconnected $VICTIM ($old_ip)"
for i in $(seq 1 50); do lb put "/partition/$(printf %03d "$i")" "p$i" >/dev/null; done
echo "50 writes through nginx while $VICTIM is cut off"
# Reconnect under its service name, as Compose had it.
docker network connect --alias "$VICTIM" "$NET" "$(container "$VICTIM")"
new_ip=$(ip_of "$VICTIM")
if [ "$new_ip" != "$old_ip" ]; then
  # nginx resolved member names at start; make it see the new address.
  echo "$VICTIM came back as $new_ip (was $old_ip): reloading nginx"
  compose exec -T nginx nginx -s reload
fi
wait_for 60 "$VICTIM to catch up" has_value "$VICTIM" /partition/050 p50
echo "$VICTIM caught up"

# ---------------------------------------------------------------- restart all
step "restart all members (data survives in volumes)"
count_before=$(lb_count /)
compose restart raft-kv-00 raft-kv-01 raft-kv-02
wait_for 120 "members healthy after restart" all_healthy "${MEMBERS[@]}"
wait_for 30 "etcdctl through nginx after restart" lb endpoint health
count_after=$(lb_count /)
[ "$count_after" = "$count_before" ] || fail "key count $count_before before restart, $count_after after"
[ "$(lb get --print-value-only /test/key1)" = 'hey key1' ] || fail "/test/key1 after restart"
"${PY[@]}" verify "$ENDPOINT" "$ACKED"
echo "$count_after keys before and after"

# ---------------------------------------------------------------- scale out
step "scale out: member add + a fourth member with --initial-cluster-state=existing"
lb member add raft-kv-03 --peer-urls=http://raft-kv-03:2380
compose up -d --no-deps raft-kv-03
wait_for 120 "raft-kv-03 healthy" all_healthy raft-kv-03
wait_for 60 "raft-kv-03 to catch up" has_value raft-kv-03 /test/key1 'hey key1'
lb member list -w table
[ "$(lb member list | wc -l)" = 4 ] || fail "expected 4 members"
lb put /test/after-scale-out ok >/dev/null
wait_for 30 "raft-kv-03 to see a new write" has_value raft-kv-03 /test/after-scale-out ok

# ---------------------------------------------------------------- nginx log
step "connections per member, from nginx's access log"
for m in "${MEMBERS[@]}"; do echo "  $m = $(ip_of "$m")"; done
compose logs --no-color nginx | grep -o 'upstream=[0-9.:, ]*' | sed 's/, *$//' | sort | uniq -c | sort -rn | sed -n 1,10p

# ---------------------------------------------------------------- summary
step "PASS"
cat <<SUMMARY
  image $RAFT_KV_IMAGE:            ${IMAGE_MB} MB
  image build (cargo + docker):   ${T_IMAGE:-(skipped)} s;  nginx image: ${T_NGINX:-(skipped)} s
  time to healthy cluster:        ${T_HEALTHY} s
  new leader after leader kill:   ${T_ELECT} s (polled)
  longest write stall (leader kill): ${T_STALL} s
  total:                          $(( $(date +%s) - T0 )) s
SUMMARY
