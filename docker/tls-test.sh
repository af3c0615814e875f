#!/usr/bin/env bash
# The TLS variant of the Docker test (`make docker-test` runs it after
# test.sh): docker/tls-compose.yaml (3 members with mutual TLS on both
# ports + nginx forwarding TLS), certificates from docker/tls-certs.sh.
# Through nginx: etcdctl and the Python etcd3 client with --cacert/--cert/
# --key; refusals of a client without a certificate and of cleartext; a
# leader kill under a TLS writer with no acknowledged write lost; a member
# refusing a peer whose certificate is from another CA. Tears down on exit.
#
# Environment: RAFT_KV_IMAGE (raft-kv:latest), NGINX_IMAGE
# (raft-kv/nginx:local), TEST_PORT (default 23791), SKIP_BUILD=1, KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

T0=$(date +%s)
. docker/lib.sh
compose_prologue raft-kv-tls-test 23791
export RAFT_KV_CLUSTER_TOKEN=raft-kv-docker-tls-test
export RAFT_KV_TLS_DIR=$WORK/tls
compose() { "${COMPOSE_BIN[@]}" -f docker/tls-compose.yaml -p "$PROJECT" "$@"; }
TLS=(--cacert="$RAFT_KV_TLS_DIR/ca.pem" --cert="$RAFT_KV_TLS_DIR/client.pem" --key="$RAFT_KV_TLS_DIR/client.key")
lb() { etcdctl_ --endpoints="https://$ENDPOINT" "${TLS[@]}" "$@"; }
# -v: the image declares a VOLUME; the intruder's anonymous one goes too.
remove_intruder() { docker rm -f -v "$PROJECT-intruder" >/dev/null 2>&1; }
COMPOSE_CLEANUP=remove_intruder

# The leader's service name. Members are reached by container IP, which
# their certificate does not name: verification is skipped for this query
# only (the client certificate is still presented).
leader_name() {
  local m ip
  for m in "${MEMBERS[@]}"; do
    ip=$(ip_of "$m"); [ -n "$ip" ] || continue
    etcdctl_ --endpoints="https://$ip:2379" "${TLS[@]}" --insecure-skip-tls-verify endpoint status -w json 2>/dev/null |
      python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["Status"]
sys.exit(0 if s["header"]["member_id"] == s.get("leader") else 1)' && { echo "$m"; return; }
  done
}


build_images "$RAFT_KV_IMAGE" "$NGINX_IMAGE"
step "certificates (docker/tls-certs.sh)"
docker/tls-certs.sh "$RAFT_KV_TLS_DIR"
py_etcd3_venv "$VENV"
PY=("$VENV/bin/python" "$ROOT/docker/etcd_client.py")
export ETCD_CACERT=$RAFT_KV_TLS_DIR/ca.pem ETCD_CERT=$RAFT_KV_TLS_DIR/client.pem ETCD_KEY=$RAFT_KV_TLS_DIR/client.key

step "start the TLS cluster"
compose down -v --remove-orphans >/dev/null 2>&1 || true
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then fail "127.0.0.1:$PORT is in use; set TEST_PORT"; fi
compose up -d
wait_for 120 "3 healthy members" all_healthy "${MEMBERS[@]}"
wait_for 30 "etcdctl over TLS through nginx" lb endpoint health

step "clients over TLS through nginx"
"${PY[@]}" smoke "$ENDPOINT"
lb put /tls/etcdctl 'over tls'
[ "$(lb get --print-value-only /tls/etcdctl)" = 'over tls' ] || fail "etcdctl get over TLS"
lb member list -w table
lb member list | grep 'https://raft-kv-00:2379' >/dev/null || fail "member list lacks the https client URL"

step "refusals: no client certificate, cleartext"
if etcdctl_ --endpoints="https://$ENDPOINT" --cacert="$RAFT_KV_TLS_DIR/ca.pem" get /tls/etcdctl >/dev/null 2>&1; then
  fail "a client without a certificate was served"
fi
if etcdctl_ --endpoints="$ENDPOINT" get /tls/etcdctl >/dev/null 2>&1; then fail "a cleartext client was served"; fi
if ETCD_CERT= ETCD_KEY= "${PY[@]}" smoke "$ENDPOINT" >/dev/null 2>&1; then fail "python etcd3 without a certificate was served"; fi

step "a member with a certificate from another CA cannot join"
docker/tls-certs.sh "$WORK/other" >/dev/null
chmod 0644 "$WORK/other/member.key"
docker run -d --name "$PROJECT-intruder" --network "${PROJECT}_raft-kv" --hostname raft-kv-03 \
  -v "$WORK/other:/etc/raft-kv/tls:ro" "$RAFT_KV_IMAGE" raft-kv-server \
  --name=raft-kv-03 --data-dir=/var/lib/raft-kv --listen-client-urls=https://0.0.0.0:2379 \
  --advertise-client-urls=https://raft-kv-03:2379 --listen-peer-urls=https://0.0.0.0:2380 \
  --initial-advertise-peer-urls=https://raft-kv-03:2380 \
  --initial-cluster=raft-kv-00=https://raft-kv-00:2380,raft-kv-03=https://raft-kv-03:2380 \
  --initial-cluster-state=new --initial-cluster-token="$RAFT_KV_CLUSTER_TOKEN" \
  --cert-file=/etc/raft-kv/tls/member.pem --key-file=/etc/raft-kv/tls/member.key \
  --peer-cert-file=/etc/raft-kv/tls/member.pem --peer-key-file=/etc/raft-kv/tls/member.key \
  --peer-trusted-ca-file=/etc/raft-kv/tls/ca.pem --peer-client-cert-auth >/dev/null
# The intruder dials raft-kv-00 once it is up; wait (bounded) for the refusal.
intruder_refused() { compose logs --no-color raft-kv-00 | grep 'rejected peer connection' >/dev/null; }
wait_for 60 "raft-kv-00 to refuse the intruder's TLS" intruder_refused
remove_intruder
lb put /tls/after-intruder ok >/dev/null

step "kill the leader while a TLS client writes through nginx"
ACKED=$WORK/acked STOP=$WORK/stop
: >"$ACKED"
"${PY[@]}" writer "$ENDPOINT" "$ACKED" "$STOP" 2>"$WORK/writer.err" &
WRITER_PID=$!
wait_for 20 "first acknowledged writes" lines_ge "$ACKED" 20
LEADER=$(leader_name); [ -n "$LEADER" ] || fail "no leader found"
docker kill "$(container "$LEADER")" >/dev/null
echo "killed leader $LEADER after $(wc -l <"$ACKED") acknowledged writes"
wait_for 30 "a new leader" other_leader "$LEADER"
before=$(wc -l <"$ACKED")
wait_for 30 "writes to resume" lines_ge "$ACKED" $(( before + 10 ))
docker start "$(container "$LEADER")" >/dev/null
wait_for 60 "$LEADER healthy again" all_healthy "$LEADER"
touch "$STOP"; wait "$WRITER_PID" || fail "writer exited with an error"; WRITER_PID=
"${PY[@]}" verify "$ENDPOINT" "$ACKED"

step "no private key in the logs"
if compose logs --no-color | grep 'PRIVATE KEY' >/dev/null; then fail "a private key reached the logs"; fi

step "PASS (TLS) in $(( $(date +%s) - T0 )) s"
