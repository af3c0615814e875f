//! Shared helpers for the raft-kv benchmarks.
