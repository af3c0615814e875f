#!/usr/bin/env bash
# Certificates for the TLS variants of the Docker deployment (`make
# docker-certs`), made with Debian's openssl: a CA, one member certificate
# (server and client use; SANs raft-kv-00..03, localhost, 127.0.0.1; CN
# raft-kv-member, which the members require of each other with
# --peer-cert-allowed-cn) and a client certificate (CN root).
#
# Usage: docker/tls-certs.sh [DIR]   (default docker/tls; kept if present,
#        FORCE=1 remakes)
# The keys are left world-readable (0644) so that the container, which runs
# as root like etcd's, reads them through the bind mount even where its root
# is not the host's (rootless or user-namespaced engines); for production,
# hand them in as secrets (see tls-stack.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-docker/tls}
if [ -f "$DIR/ca.pem" ] && [ "${FORCE:-0}" != 1 ]; then echo "certificates in $DIR (FORCE=1 remakes)"; exit 0; fi
command -v openssl >/dev/null || { echo "openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
# `sign NAME CN EXTENSIONS`: a leaf signed by the CA, valid 825 days.
sign() {
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
key ca
printf '[req]\ndistinguished_name=dn\n[dn]\n[ext]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' >ca.cnf
openssl req -x509 -new -key ca.key -subj "/CN=raft-kv docker CA" -days 3650 -sha256 \
  -config ca.cnf -extensions ext -out ca.pem
rm -f ca.cnf
leaf='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\n'
sign member raft-kv-member "${leaf}extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:raft-kv-00,DNS:raft-kv-01,DNS:raft-kv-02,DNS:raft-kv-03,DNS:localhost,IP:127.0.0.1\n"
sign client root "${leaf}extendedKeyUsage=clientAuth\n"
chmod 0644 ./*.pem member.key client.key
chmod 0600 ca.key
rm -f ca.srl
echo "certificates in $PWD: ca.pem member.pem/.key client.pem/.key"
