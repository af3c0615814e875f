#!/usr/bin/env bash
# Build the raft-kv image (FROM scratch) from the static binaries.
#
# Usage: docker/build-image.sh [IMAGE]     (default raft-kv:latest)
#   SKIP_CARGO=1  use the binaries already in target/static (no cargo run)
#   FORCE=1       build even if the image was built from the same sources
#
# Cache: the image carries a label with a hash of everything that goes into
# it (committed sources of the crates it builds from, Cargo.lock, docker/,
# the compiler version). When the working tree is clean and an image with
# the same hash exists, nothing is built: a CI run on a fresh clone then
# skips the release build (minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-raft-kv:latest}
BIN=${STATIC_TARGET_DIR:-target/static}/x86_64-unknown-linux-gnu/release
LABEL=org.raft-kv.source
INPUTS=(Cargo.toml Cargo.lock .cargo raft-kv transport-tcp transport-mem examples docker)

source_hash() {
  { rustc -V; git ls-files -s -- "${INPUTS[@]}"; } | sha256sum | cut -c1-32
}
HASH=
if git diff --quiet HEAD -- "${INPUTS[@]}" 2>/dev/null &&
   [ -z "$(git ls-files --others --exclude-standard -- "${INPUTS[@]}")" ]; then
  HASH=$(source_hash)
fi
if [ -n "$HASH" ] && [ "${FORCE:-0}" != 1 ] &&
   [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$HASH" ]; then
  echo "image $IMAGE is up to date with the sources ($HASH; FORCE=1 to rebuild)"
  exit 0
fi

[ "${SKIP_CARGO:-0}" = 1 ] || docker/build-static.sh

# A small build context: the binaries and the few files the image needs.
CTX=$(mktemp -d /tmp/raft-kv-image.XXXXXX)
trap 'rm -rf "$CTX"' EXIT
cp docker/Dockerfile "$CTX/"
cp -r docker/rootfs "$CTX/rootfs"
mkdir "$CTX/empty"
mkdir "$CTX/bin"
cp "$BIN/raft-kv-server" "$BIN/raft-kv-healthcheck" "$CTX/bin/"
chmod 0755 "$CTX/bin/raft-kv-server" "$CTX/bin/raft-kv-healthcheck"
# `etcd` on PATH runs raft-kv-server (command lines written for etcd's image).
ln -s raft-kv-server "$CTX/bin/etcd"
chmod 0644 "$CTX"/rootfs/etc/*

# An image built from uncommitted changes gets no hash, so it is never reused.
docker build -q --label "$LABEL=$HASH" -t "$IMAGE" "$CTX" >/dev/null
echo "built $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
