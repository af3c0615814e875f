# Helpers shared by the docker/*-test.sh scripts (sourced).
# The caller sets T0=$(date +%s) first.

# `step TEXT`: a progress line with the seconds since the start.
step() { printf '\n=== [%4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# `wait_for SECONDS DESCRIPTION COMMAND...`: run COMMAND every half second
# until it succeeds; fail after SECONDS. COMMAND is re-run each time, so pass
# a function, not "$(...)" (that would be evaluated once).
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.5
  done
}
# `etcdctl_ ARGS...`: etcdctl (v3 API) with bounded dial and command times.
etcdctl_() { ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=10s "$@"; }
# `py_etcd3_venv DIR`: a venv with the Python `etcd3` client (the one the
# examples tests create in target/py-etcd3), made once.
py_etcd3_venv() {
  if ! "$1/bin/python" -c 'import etcd3' 2>/dev/null; then
    python3 -m venv "$1"
    "$1/bin/pip" install -q 'etcd3==0.12.0' 'protobuf==3.20.*'
  fi
}
# `build_images`: the raft-kv and local nginx images (cached), unless SKIP_BUILD=1.
build_images() {
  [ "${SKIP_BUILD:-0}" = 1 ] && return 0
  step "build images"
  docker/build-image.sh "$1"
  [ "$2" != raft-kv/nginx:local ] || docker/build-nginx-image.sh "$2"
}
# `seed_client PYTHON`: the seed's Python test (docker/seed/test.py) through
# nginx on 127.0.0.1:2379; succeeds when it prints both values.
seed_client() {
  local out
  out=$(timeout 20 "$1" docker/seed/test.py 2>&1) || return 1
  [ "$out" = "$(printf 'hey key1\nhey key2')" ] || { echo "$out" >&2; return 1; }
  echo "$out"
}

# `volume_data_dirs IMAGE`: as with etcd's image, a fresh named volume works
# mounted at any path, with --data-dir given absolute (a directory inside the
# volume) or relative to the working directory / (the mount point itself).
# For each, a one-member cluster writes a key, then a new container on the
# same volume reads it back. Containers and volumes carry the label
# raft-kv-test=data-dir; volume_data_dirs_cleanup removes them.
volume_data_dirs() {
  local image=$1 spec mount data vol c ep round n=0
  # MOUNT:DATA_DIR
  for spec in /srv/etcd-volume:/srv/etcd-volume/data /var/lib/etcd-rel:var/lib/etcd-rel; do
    mount=${spec%%:*} data=${spec#*:} n=$((n + 1))
    vol=raft-kv-data-dir-$n
    docker volume rm -f "$vol" >/dev/null 2>&1 || true
    docker volume create --label raft-kv-test=data-dir "$vol" >/dev/null
    for round in write read; do
      c=$(docker run -d --label raft-kv-test=data-dir -p 127.0.0.1::2379 -v "$vol:$mount" "$image" \
        etcd --name=solo --data-dir="$data" --listen-client-urls=http://0.0.0.0:2379 \
        --advertise-client-urls=http://127.0.0.1:2379 --listen-peer-urls=http://0.0.0.0:2380 \
        --initial-advertise-peer-urls=http://127.0.0.1:2380 --initial-cluster=solo=http://127.0.0.1:2380)
      ep=$(docker port "$c" 2379/tcp | grep -m1 '^127\.0\.0\.1:')
      if [ "$round" = write ]; then
        wait_for 60 "a member on $vol at $mount, --data-dir=$data" etcdctl_ --endpoints="$ep" put /where "$data"
      else
        wait_for 60 "the member restarted on $vol" etcdctl_ --endpoints="$ep" get /where
        [ "$(etcdctl_ --endpoints="$ep" get --print-value-only /where)" = "$data" ] ||
          fail "--data-dir=$data on a volume at $mount: the key did not survive a new container"
      fi
      docker rm -f -v "$c" >/dev/null
    done
    docker volume rm "$vol" >/dev/null
    echo "volume at $mount, --data-dir=$data: written, and read back by a new container"
  done
}
volume_data_dirs_cleanup() {
  docker ps -aq --filter label=raft-kv-test=data-dir | xargs -r docker rm -f -v >/dev/null 2>&1 || true
  docker volume ls -q --filter label=raft-kv-test=data-dir | xargs -r docker volume rm >/dev/null 2>&1 || true
}

# ---- Compose tests (test.sh, tls-test.sh) ----------------------------------
# `compose_prologue PROJECT DEFAULT_PORT`: what both set up before their own
# steps: the images (RAFT_KV_IMAGE, NGINX_IMAGE), nginx's port on 127.0.0.1
# (TEST_PORT, else DEFAULT_PORT) as PORT, ENDPOINT and RAFT_KV_PUBLISH,
# PROJECT and its network NET, MEMBERS, the Python venv VENV, a scratch dir
# WORK, COMPOSE_BIN, and compose_teardown on exit. The caller defines
# `compose` (its file and flags) and may set COMPOSE_CLEANUP to a function
# that removes what it started outside Compose.
compose_prologue() {
  PROJECT=$1
  export RAFT_KV_IMAGE=${RAFT_KV_IMAGE:-raft-kv:latest}
  export NGINX_IMAGE=${NGINX_IMAGE:-raft-kv/nginx:local}
  PORT=${TEST_PORT:-$2}
  export RAFT_KV_PUBLISH=127.0.0.1:$PORT
  ENDPOINT=127.0.0.1:$PORT
  NET=${PROJECT}_raft-kv
  MEMBERS=(raft-kv-00 raft-kv-01 raft-kv-02)
  # The same venv the examples tests create (examples/tests/common/mod.rs).
  VENV=$PWD/target/py-etcd3
  WORK=$(mktemp -d "/tmp/$PROJECT.XXXXXX")
  # Compose v2 plugin if present, else the standalone docker-compose.
  if docker compose version >/dev/null 2>&1; then COMPOSE_BIN=(docker compose); else COMPOSE_BIN=(docker-compose); fi
  WRITER_PID=
  trap compose_teardown EXIT
}
# Stops the background writer, shows recent logs on failure, takes the
# project down (unless KEEP=1) and removes WORK; keeps the exit status.
compose_teardown() {
  local rc=$?
  [ -z "$WRITER_PID" ] || kill "$WRITER_PID" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    echo "--- test failed (exit $rc); recent logs:" >&2
    compose logs --no-color --tail=40 >&2 2>&1 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "KEEP=1: cluster left running (project $PROJECT)"
  else
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    [ -z "${COMPOSE_CLEANUP:-}" ] || "$COMPOSE_CLEANUP" || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
# Container id of a service (by Compose's labels: faster than `compose ps`).
container() {
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1"
}
ip_of() { docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$(container "$1")"; }
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(container "$1")"; }
all_healthy() { local m; for m in "$@"; do [ "$(health_of "$m")" = healthy ] || return 1; done; }
now() { date +%s.%N; }
lines_ge() { [ "$(wc -l <"$1")" -ge "$2" ]; }
# A leader other than $1 is known (the caller defines leader_name).
other_leader() { local l; l=$(leader_name); [ -n "$l" ] && [ "$l" != "$1" ]; }

# ---- Swarm tests (swarm-test.sh, seed-swarm-test.sh, tls-swarm-test.sh) ----
# `swarm_up STACK`: refuses an engine already in a swarm, makes a throwaway
# one-node swarm advertised on loopback, and tears it down on exit whatever
# happens (swarm_teardown). SWARM_CLEANUP, if set, names a function run
# after the swarm is gone.
swarm_up() {
  STACK=$1
  local state
  state=$(docker info -f '{{.Swarm.LocalNodeState}}')
  [ "$state" = inactive ] || fail "this engine is already in a swarm ($state); not touching it"
  HAD_GWBRIDGE=$(docker network ls -q --filter name=^docker_gwbridge$)
  trap swarm_teardown EXIT
  step "single-node swarm"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
}
# Shows the tasks and logs on failure, removes the stack (waiting, bounded,
# for its containers so its volumes are free), leaves the swarm, removes
# the stack's volumes and docker_gwbridge if `swarm init` made it.
swarm_teardown() {
  local rc=$? s
  if [ "$rc" != 0 ]; then
    echo "--- swarm test failed (exit $rc)" >&2
    docker stack ps --no-trunc "$STACK" >&2 2>&1 || true
    for s in $(docker stack services -q "$STACK" 2>/dev/null); do
      docker service logs --tail 20 "$s" >&2 2>&1 || true
    done
  fi
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  docker swarm leave --force >/dev/null 2>&1 || true
  docker volume ls -q | grep "^${STACK}_" | xargs -r docker volume rm >/dev/null 2>&1 || true
  [ -n "$HAD_GWBRIDGE" ] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
  [ -z "${SWARM_CLEANUP:-}" ] || "$SWARM_CLEANUP" || true
  exit "$rc"
}
# The node labels stack.yaml and tls-stack.yaml pin the members by.
swarm_label_members() {
  docker node update --label-add raft-kv-00=true --label-add raft-kv-01=true --label-add raft-kv-02=true \
    "$(docker node ls -q)" >/dev/null
}
# Every service of $STACK has all its replicas running, and its three
# members run healthy.
stack_healthy() {
  docker stack services --format '{{.Replicas}}' "$STACK" | awk -F/ '$1 != $2 {bad=1} END {exit bad}' || return 1
  local c ids
  ids=$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK" --filter name=raft-kv-0)
  for c in $ids; do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ] || return 1
  done
  [ "$(echo "$ids" | wc -w)" = 3 ]
}
