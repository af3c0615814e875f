#!/usr/bin/env bash
# The seed's docker-compose.yml (docker/seed/), written for etcd 3.5's image,
# run with only the image names changed (part of `make docker-test`):
# members etcd-00..02 started with `command: [etcd, ...]` and a relative
# --data-dir on fresh named volumes, the seed's nginx.conf unchanged on the
# local nginx image, then the seed's Python etcd3 test through nginx must
# print `hey key1` and `hey key2`. Also: the data lands in the volumes and
# survives `restart` of every service; and a fresh volume mounted elsewhere
# than /data.etcd works with --data-dir absolute inside it or relative from
# / (one-member runs with `docker run`). Tears down on exit, even on failure.
#
# Environment: ETCD_IMAGE (raft-kv:latest), NGINX_IMAGE (raft-kv/nginx:local),
# SKIP_BUILD=1, KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export ETCD_IMAGE=${ETCD_IMAGE:-raft-kv:latest}
export NGINX_IMAGE=${NGINX_IMAGE:-raft-kv/nginx:local}
PROJECT=raft-kv-seed
VENV=$PWD/target/py-etcd3
T0=$(date +%s)
. docker/lib.sh
if docker compose version >/dev/null 2>&1; then COMPOSE_BIN=(docker compose); else COMPOSE_BIN=(docker-compose); fi
compose() { "${COMPOSE_BIN[@]}" -f docker/seed/docker-compose.yml -p "$PROJECT" "$@"; }
lb() { etcdctl_ --endpoints=127.0.0.1:2379 "$@"; }

teardown() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    echo "--- seed test failed (exit $rc); recent logs:" >&2
    compose logs --no-color --tail=30 >&2 2>&1 || true
  fi
  [ "${KEEP:-0}" = 1 ] || compose down -v --remove-orphans >/dev/null 2>&1 || true
  volume_data_dirs_cleanup
  exit "$rc"
}
trap teardown EXIT

build_images "$ETCD_IMAGE" "$NGINX_IMAGE"
py_etcd3_venv "$VENV"

step "the seed's docker-compose.yml with ETCD_IMAGE=$ETCD_IMAGE NGINX_IMAGE=$NGINX_IMAGE"
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d
# restart: always brings nginx back until the members resolve; the client
# is retried until the cluster serves it.
wait_for 120 "the seed's Python test through nginx" seed_client "$VENV/bin/python"
seed_client "$VENV/bin/python"
lb member list -w table
[ "$(lb member list | grep -c 'etcd-0[0-2], http://etcd-0[0-2]:2380, http://etcd-0[0-2]:2379')" = 3 ] ||
  fail "member list does not name etcd-00..02 with their URLs"

step "the data is in the named volumes (relative --data-dir from /)"
for m in etcd-00 etcd-01 etcd-02; do
  # The nginx image has ls; raft-kv's is empty but for the binary.
  docker run --rm -v "${PROJECT}_$m:/v:ro" "$NGINX_IMAGE" ls /v | grep -x member >/dev/null ||
    fail "volume ${PROJECT}_$m holds no member directory"
done
echo "each volume holds its member's data"

step "restart every service: data survives"
compose restart
wait_for 120 "the cluster after restart" lb get /test/key1
[ "$(lb get --print-value-only /test/key2)" = 'hey key2' ] || fail "/test/key2 after restart"
seed_client "$VENV/bin/python" >/dev/null

step "a fresh volume at another path: --data-dir absolute inside it, or relative from /"
volume_data_dirs "$ETCD_IMAGE"

step "PASS (total $(( $(date +%s) - T0 )) s)"
