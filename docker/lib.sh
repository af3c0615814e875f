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
