#!/usr/bin/env bash
# The seed's etcd-stack.yml on a throwaway single-node swarm (part of
# `make docker-test`), with the two changes this engine needs
# (docker/seed/etcd-stack.local.yml; docker/README.md): swarm init, stack
# deploy with only the image names changed, the seed's Python etcd3 test
# through nginx, then stack rm and swarm leave --force, always. Refuses to
# run on an engine that is already in a swarm.
#
# Environment: ETCD_IMAGE (raft-kv:latest), NGINX_IMAGE (raft-kv/nginx:local),
# SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export ETCD_IMAGE=${ETCD_IMAGE:-raft-kv:latest}
export NGINX_IMAGE=${NGINX_IMAGE:-raft-kv/nginx:local}
STACK=raft-kv-seed
VENV=$PWD/target/py-etcd3
T0=$(date +%s)
. docker/lib.sh

state=$(docker info -f '{{.Swarm.LocalNodeState}}')
[ "$state" = inactive ] || fail "this engine is already in a swarm ($state); not touching it"
build_images "$ETCD_IMAGE" "$NGINX_IMAGE"
py_etcd3_venv "$VENV"

HAD_GWBRIDGE=$(docker network ls -q --filter name=^docker_gwbridge$)
teardown() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    echo "--- seed swarm test failed (exit $rc)" >&2
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
  exit "$rc"
}
trap teardown EXIT

step "single-node swarm"
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
step "stack deploy docker/seed/etcd-stack.local.yml"
docker stack deploy -c docker/seed/etcd-stack.local.yml "$STACK"
wait_for 180 "the seed's Python test through nginx" seed_client "$VENV/bin/python"
seed_client "$VENV/bin/python"
docker stack services "$STACK"
step "PASS (total $(( $(date +%s) - T0 )) s)"
