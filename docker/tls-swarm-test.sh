#!/usr/bin/env bash
# docker/tls-stack.yaml on a throwaway single-node swarm (part of `make
# docker-test`): certificates from tls-certs.sh handed in as Swarm secrets,
# stack deploy, every service up and healthy, then through nginx over TLS
# (client certificate): the seed's Python etcd3 check (put /test/key1 and
# /test/key2, get_prefix('/test'), as docker/seed/test.py), etcdctl, and the
# refusal of a cleartext client and of one without a certificate. The
# stack, swarm, volumes and certificates go away on exit, always. Refuses to
# run on an engine that is already in a swarm.
#
# Environment: RAFT_KV_IMAGE (raft-kv:latest), NGINX_IMAGE
# (raft-kv/nginx:local), RAFT_KV_SWARM_PORT (23792),
# RAFT_KV_SWARM_PUBLISH_MODE (host; or ingress), NGINX_REPLICAS (1), SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

export RAFT_KV_IMAGE=${RAFT_KV_IMAGE:-raft-kv:latest}
export NGINX_IMAGE=${NGINX_IMAGE:-raft-kv/nginx:local}
export RAFT_KV_SWARM_PORT=${RAFT_KV_SWARM_PORT:-23792}
export RAFT_KV_CLUSTER_TOKEN=raft-kv-swarm-tls-test
# As swarm-test.sh: host-mode publishing, one nginx.
export RAFT_KV_SWARM_PUBLISH_MODE=${RAFT_KV_SWARM_PUBLISH_MODE:-host}
export NGINX_REPLICAS=${NGINX_REPLICAS:-1}
ENDPOINT=127.0.0.1:$RAFT_KV_SWARM_PORT
VENV=$PWD/target/py-etcd3
WORK=$(mktemp -d /tmp/raft-kv-swarm-tls-test.XXXXXX)
export RAFT_KV_TLS_DIR=$WORK/tls
T0=$(date +%s)
. docker/lib.sh
TLS=(--cacert="$RAFT_KV_TLS_DIR/ca.pem" --cert="$RAFT_KV_TLS_DIR/client.pem" --key="$RAFT_KV_TLS_DIR/client.key")
lb() { etcdctl_ --endpoints="https://$ENDPOINT" "${TLS[@]}" "$@"; }
remove_work() { rm -rf "$WORK"; }
trap remove_work EXIT
SWARM_CLEANUP=remove_work
# The seed's check over TLS: etcd_client.py smoke is docker/seed/test.py
# with the client certificate (ETCD_CACERT, ETCD_CERT, ETCD_KEY).
seed_check_tls() {
  ETCD_CACERT=$RAFT_KV_TLS_DIR/ca.pem ETCD_CERT=$RAFT_KV_TLS_DIR/client.pem ETCD_KEY=$RAFT_KV_TLS_DIR/client.key \
    timeout 30 "$VENV/bin/python" docker/etcd_client.py smoke "$ENDPOINT"
}

build_images "$RAFT_KV_IMAGE" "$NGINX_IMAGE"
py_etcd3_venv "$VENV"
step "certificates (docker/tls-certs.sh)"
docker/tls-certs.sh "$RAFT_KV_TLS_DIR" >/dev/null
swarm_up raft-kv-swarm-tls
swarm_label_members

step "stack deploy docker/tls-stack.yaml"
t=$(date +%s)
docker stack deploy -c docker/tls-stack.yaml "$STACK"
wait_for 180 "all stack services up and healthy" stack_healthy
docker stack services "$STACK"
wait_for 60 "etcdctl over TLS through nginx on $ENDPOINT" lb endpoint health
echo "stack healthy in $(( $(date +%s) - t )) s"

step "the seed's Python etcd3 check over TLS through nginx"
seed_check_tls
lb put /swarm/tls 'over tls'
[ "$(lb get --print-value-only /swarm/tls)" = 'over tls' ] || fail "etcdctl get over TLS"
lb member list | grep 'https://raft-kv-00:2379' >/dev/null || fail "member list lacks the https client URL"

step "refusals: cleartext, no client certificate"
if etcdctl_ --endpoints="$ENDPOINT" get /swarm/tls >/dev/null 2>&1; then fail "a cleartext client was served"; fi
if etcdctl_ --endpoints="https://$ENDPOINT" --cacert="$RAFT_KV_TLS_DIR/ca.pem" get /swarm/tls >/dev/null 2>&1; then
  fail "a client without a certificate was served"
fi

step "PASS (TLS swarm, total $(( $(date +%s) - T0 )) s)"
