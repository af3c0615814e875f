# raft-kv — the two commands a new machine needs:
#   make run    start a local 3-member cluster (in-process, RocksDB under ./data)
#   make test   format check, clippy, and every test
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := librocksdb-dev libclang-dev clang

.PHONY: deps run test lint bench fmt

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
	$(CARGO) run --release -p examples --bin local-cluster

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint
	$(CARGO) test --workspace

bench: deps
	$(CARGO) bench -p benches

fmt:
	$(CARGO) fmt --all
