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
ENDPOINT=127.0.0.1:$RAFT_KV_SWARM_PORT
T0=$(date +%s)
. docker/lib.sh
lb() { etcdctl_ --endpoints="$ENDPOINT" "$@"; }

build_images "$RAFT_KV_IMAGE" "$NGINX_IMAGE"
swarm_up raft-kv-swarm-test
swarm_label_members

step "stack deploy"
t=$(date +%s)
docker stack deploy -c docker/stack.yaml "$STACK"

wait_for 180 "all stack services up and healthy" stack_healthy
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
