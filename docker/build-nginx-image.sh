#!/usr/bin/env bash
# Build an nginx image without a registry: a minimal Debian root filesystem
# made with debootstrap (packages come from Debian's mirror), with Debian's
# nginx and its stream (TCP proxy) module, imported with `docker import`.
#
# Users with a registry don't need this: the Compose file defaults to
# nginx:alpine. This exists for machines whose Docker engine can't pull.
#
# Usage: docker/build-nginx-image.sh [IMAGE]   (default raft-kv/nginx:local)
#   FORCE=1     rebuild even if the image exists
#   MIRROR=URL  Debian mirror (default http://deb.debian.org/debian)
# Needs root (debootstrap chroots) and the debootstrap package.
set -euo pipefail

IMAGE=${1:-raft-kv/nginx:local}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

# The label marks images that load the stream module from the command line
# (below); an older image without it is rebuilt.
LABEL=org.raft-kv.nginx-stream=cli
if [ "${FORCE:-0}" != 1 ] && [ "$(docker image inspect -f '{{index .Config.Labels "org.raft-kv.nginx-stream"}}' "$IMAGE" 2>/dev/null)" = cli ]; then
  echo "nginx image $IMAGE exists (FORCE=1 to rebuild)"
  exit 0
fi

SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
  echo "installing debootstrap"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debootstrap
fi

ROOT=$(mktemp -d /tmp/raft-kv-nginx-root.XXXXXX)
# The root holds device nodes and root-owned files: remove it as root.
trap '$SUDO rm -rf "$ROOT"' EXIT

start=$(date +%s)
echo "debootstrap $SUITE (minbase + nginx) into $ROOT"
$SUDO /usr/sbin/debootstrap --variant=minbase --include=nginx,libnginx-mod-stream \
  "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -30 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"

# Slim the root: package caches and lists, docs, man pages, locales.
$SUDO chroot "$ROOT" apt-get clean
$SUDO rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
  "$ROOT"/usr/share/locale/* "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/log/*.log
# The stock site is an HTTP server on :80; the load balancer needs none.
$SUDO rm -f "$ROOT"/etc/nginx/sites-enabled/default

# The stream (TCP proxy) module is loaded from the command line rather
# than from the main nginx.conf's modules-enabled include, so a mounted
# nginx.conf without a load_module line (written for nginx:alpine, where the
# module is built in) works unchanged. nginx reads -g before the file.
$SUDO rm -f "$ROOT"/etc/nginx/modules-enabled/*stream*.conf
[ -f "$ROOT/usr/lib/nginx/modules/ngx_stream_module.so" ] || { echo "no ngx_stream_module.so in the root" >&2; exit 1; }

# The official image's command, plus the module. (docker import can't set
# STOPSIGNAL; the Compose and stack files set SIGQUIT, nginx's graceful stop.)
$SUDO tar -C "$ROOT" -c . | docker import \
  --change 'CMD ["nginx", "-g", "daemon off; load_module /usr/lib/nginx/modules/ngx_stream_module.so;"]' \
  --change 'EXPOSE 2379' \
  --change "LABEL $LABEL" \
  - "$IMAGE" >/dev/null
echo "built $IMAGE in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
