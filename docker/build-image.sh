#!/usr/bin/env bash
# Build the raft-kv image (FROM scratch) from the static binaries.
#
# Usage: docker/build-image.sh [IMAGE]     (default raft-kv:latest)
#   SKIP_CARGO=1  use the binaries already in target/static (no cargo run)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-raft-kv:latest}
BIN=${STATIC_TARGET_DIR:-target/static}/x86_64-unknown-linux-gnu/release

[ "${SKIP_CARGO:-0}" = 1 ] || docker/build-static.sh

# A small build context: the binaries and the few files the image needs.
CTX=$(mktemp -d /tmp/raft-kv-image.XXXXXX)
trap 'rm -rf "$CTX"' EXIT
cp docker/Dockerfile "$CTX/"
cp -r docker/rootfs "$CTX/rootfs"
mkdir "$CTX/empty"
cp "$BIN/raft-kv-server" "$BIN/raft-kv-healthcheck" "$CTX/"
chmod 0755 "$CTX/raft-kv-server" "$CTX/raft-kv-healthcheck"
chmod 0644 "$CTX"/rootfs/etc/*

docker build -q -t "$IMAGE" "$CTX" >/dev/null
echo "built $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
