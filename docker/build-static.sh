#!/usr/bin/env bash
# Build a fully static raft-kv-server (glibc, +crt-static) for the FROM-scratch
# image, linking Debian's librocksdb.a and the static C++ runtime.
#
# Why the lib folder: librocksdb-sys asks for `dylib=stdc++`. With crt-static
# that would drag libstdc++.so into an otherwise static binary (it then
# crashes at start-up in an empty root). ld searches each -L directory for
# `.so` then `.a`, so a folder holding only `.a` files, searched first,
# makes every `-lstdc++`, `-lsnappy`, ... resolve to the static archive.
#
# Usage: docker/build-static.sh [extra cargo args]
# Output: target/static/x86_64-unknown-linux-gnu/release/raft-kv-server
#         target/static/x86_64-unknown-linux-gnu/release/raft-kv-healthcheck
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
MULTIARCH=/usr/lib/x86_64-linux-gnu
LIBDIR=$PWD/target/static-libs

# Locate gcc's directory (libstdc++.a, libgcc_eh.a live there, not in MULTIARCH).
GCC_DIR=$(dirname "$(gcc -print-file-name=libstdc++.a)")
[ -f "$GCC_DIR/libstdc++.a" ] || { echo "libstdc++.a not found (install g++)" >&2; exit 1; }

mkdir -p "$LIBDIR"
for a in "$GCC_DIR/libstdc++.a" "$GCC_DIR/libgcc_eh.a" \
         "$MULTIARCH/librocksdb.a" "$MULTIARCH/libsnappy.a" "$MULTIARCH/liblz4.a" \
         "$MULTIARCH/libzstd.a" "$MULTIARCH/libbz2.a" "$MULTIARCH/libz.a"; do
  [ -f "$a" ] || { echo "missing $a (apt-get install librocksdb-dev g++)" >&2; exit 1; }
  ln -sf "$a" "$LIBDIR/"
done

# The compression libraries RocksDB was built with (Debian enables all of
# them); the rocksdb crate has its own compression features off, so nothing
# else names them. link-arg puts them after librocksdb.a on the link line.
LATE_LIBS=""
for l in snappy lz4 zstd bz2 z stdc++; do LATE_LIBS+=" -C link-arg=-l$l"; done

# No debug info in the image binary: smaller, and faster to build.
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo
export ROCKSDB_STATIC=1
export ROCKSDB_LIB_DIR=$LIBDIR
export RUSTFLAGS="-C target-feature=+crt-static -L native=$LIBDIR$LATE_LIBS ${RUSTFLAGS_EXTRA:-}"

# A target directory of its own: these RUSTFLAGS would otherwise rebuild what
# the host build caches, and a shared workspace's builds don't wait on one lock.
OUT=${STATIC_TARGET_DIR:-target/static}
cargo build --release --target "$TARGET" --target-dir "$OUT" \
  -p examples -p raft-kv-healthcheck --bin raft-kv-server --bin raft-kv-healthcheck "$@"

for b in raft-kv-server raft-kv-healthcheck; do
  f=$OUT/$TARGET/release/$b
  [ -x "$f" ] || { echo "error: $f was not built" >&2; exit 1; }
  # A dynamic binary would print its interpreter; refuse it.
  if file "$f" | grep 'interpreter' >/dev/null; then
    echo "error: $f is dynamically linked:" >&2; file "$f" >&2; exit 1
  fi
  echo "static: $(file -b "$f" | cut -d, -f1-2) $(du -h "$f" | cut -f1) $f"
done
