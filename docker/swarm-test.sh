#!/usr/bin/env bash
# Check docker/stack.yaml on a single-node swarm (`make swarm-test`):
# swarm init, label the node for the three members, stack deploy, wait until
# every service runs and is healthy, talk to the cluster through nginx on
# the published port, then stack rm and leave the swarm — always, even on
# failure. Refuses to run on an engine that is already in a swarm.
#
# Environment: RAFT_KV_IMAGE (raft-kv:latest), NGINX_IMAGE
# (raft-kv/nginx:local), RAFT_KV_SWARM_PORT (23790),
# RAFT_KV_SWARM_PUBLISH_MODE (host; or ingress), NGINX_REPLICAS (1), SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

export RAFT_KV_IMAGE=${RAFT_KV_IMAGE:-raft-kv:latest}
export NGINX_IMAGE=${NGINX_IMAGE:-raft-kv/nginx:local}
# Swarm publishes on every interface; the test only connects through
# 127.0.0.1, on a port apart from the Compose test's.
export RAFT_KV_SWARM_PORT=${RAFT_KV_SWARM_PORT:-23790}
export RAFT_KV_CLUSTER_TOKEN=raft-kv-swarm-test
# The routing mesh (ingress) does not deliver connections on the CI engine;
# host-mode publishing does, with one nginx per node.
export RAFT_KV_SWARM_PUBLISH_MODE=${RAFT_KV_SWARM_PUBLISH_MODE:-host}
export NGINX_REPLICAS=${NGINX_REPLICAS:-1}
STACK=raft-kv-swarm-test
ENDPOINT=127.0.0.1:$RAFT_KV_SWARM_PORT
T0=$(date +%s)
. docker/lib.sh
lb() { etcdctl_ --endpoints="$ENDPOINT" "$@"; }

state=$(docker info -f '{{.Swarm.LocalNodeState}}')
[ "$state" = inactive ] || fail "this engine is already in a swarm ($state); not touching it"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "build images"
  docker/build-image.sh "$RAFT_KV_IMAGE"
  [ "$NGINX_IMAGE" != raft-kv/nginx:local ] || docker/build-nginx-image.sh "$NGINX_IMAGE"
fi

HAD_GWBRIDGE=$(docker network ls -q --filter name=^docker_gwbridge$)
teardown() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    echo "--- swarm test failed (exit $rc)" >&2
    docker stack ps --no-trunc "$STACK" >&2 2>&1 || true
    for s in $(docker stack services -q "$STACK" 2>/dev/null); do
      docker service logs --tail 20 "$s" >&2 2>&1 || true
    done
  fi
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  # Task containers go away asynchronously; wait (bounded) so the volumes
  # are no longer in use.
  for _ in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  docker swarm leave --force >/dev/null 2>&1 || true
  # The members' volumes (named <stack>_<volume>), and the bridge that
  # `swarm init` created, if it did.
  docker volume ls -q | grep "^${STACK}_" | xargs -r docker volume rm >/dev/null || true
  [ -n "$HAD_GWBRIDGE" ] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
  exit "$rc"
}
trap teardown EXIT

step "single-node swarm"
# Advertise on loopback: a one-node swarm needs no reachable address.
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
node=$(docker node ls -q)
docker node update --label-add raft-kv-00=true --label-add raft-kv-01=true --label-add raft-kv-02=true "$node" >/dev/null

step "stack deploy"
t=$(date +%s)
docker stack deploy -c docker/stack.yaml "$STACK"

# Every service has all its replicas running, and every member is healthy.
services_up() {
  docker stack services --format '{{.Replicas}}' "$STACK" | awk -F/ '$1 != $2 {bad=1} END {exit bad}' || return 1
  local c
  for c in $(docker ps -q --filter "label=com.docker.stack.namespace=$STACK" --filter name=raft-kv-0); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ] || return 1
  done
  [ "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK" --filter name=raft-kv-0 | wc -l)" = 3 ]
}
wait_for 180 "all stack services up and healthy" services_up
docker stack services "$STACK"
wait_for 60 "etcdctl through nginx on $ENDPOINT" lb endpoint health
echo "stack healthy in $(( $(date +%s) - t )) s"

step "client through nginx"
lb put /swarm/key 'hello swarm'
[ "$(lb get --print-value-only /swarm/key)" = 'hello swarm' ] || fail "get /swarm/key"
lb member list -w table
# The members' network is the encrypted, internal overlay.
docker network inspect -f 'network {{.Name}}: driver={{.Driver}} internal={{.Internal}} encrypted={{index .Options "encrypted"}}' "${STACK}_raft-kv"

step "PASS (total $(( $(date +%s) - T0 )) s)"
