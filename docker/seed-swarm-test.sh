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
VENV=$PWD/target/py-etcd3
T0=$(date +%s)
. docker/lib.sh

build_images "$ETCD_IMAGE" "$NGINX_IMAGE"
py_etcd3_venv "$VENV"
swarm_up raft-kv-seed
step "stack deploy docker/seed/etcd-stack.local.yml"
docker stack deploy -c docker/seed/etcd-stack.local.yml "$STACK"
wait_for 180 "the seed's Python test through nginx" seed_client "$VENV/bin/python"
seed_client "$VENV/bin/python"
docker stack services "$STACK"
step "PASS (total $(( $(date +%s) - T0 )) s)"
