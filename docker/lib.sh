# Helpers shared by docker/test.sh and docker/swarm-test.sh (sourced).
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
