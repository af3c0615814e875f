//! Deterministic simulation of a raft-kv cluster, judged by a
//! linearizability checker.
//!
//! One run is a pure function of a `u64` seed and a [`SimConfig`]: N
//! [`raft_kv::Peer`]s over [`raft_kv::MemEngine`]s in one thread, a virtual
//! clock, the simulated network of `transport_mem::sim`, concurrent clients
//! and seeded faults (message loss, duplication, delay and reorder;
//! symmetric, one-way and leader-isolating partitions; crashes that lose
//! unsynced writes, including whole-cluster power loss; leader transfers;
//! membership changes and peer URL updates; data-directory loss; log
//! compaction and snapshot installs over a bounded transport; tick skew and
//! clock jumps; clients cut off from members, retrying under the same
//! request id). The workload also has ranges with every option
//! ([`ranges`]) and multi-op, nested txns ([`txns`]).
//! After the workload the network heals, crashed members restart, and the
//! run checks that members converge (same revision and hash), that no
//! acknowledged write was lost, that no term had two leaders, that the
//! history is linearizable per key ([`checker`]), and the watches and
//! leases (below).
//!
//! **Membership changes** run one at a time, retried until done: add a
//! learner (a fresh member with a new id and an empty engine, started with
//! no initial peers, so it catches up by snapshot), promote it (proposed on
//! the leader, retried while the core answers `LearnerNotReady`), remove a
//! voter — sometimes the leader, which hands leadership over itself — and,
//! after a removal, add a fresh learner again (a re-add: raft ids are never
//! reused). At least 3 voters remain. A removed member is stopped a little
//! later and, from the moment its removal is confirmed, left out of the
//! convergence, lost-write and one-leader-per-term checks (it may lag
//! forever); those checks use the leader's current configuration.
//!
//! ```
//! use sim::{run, SimConfig};
//!
//! let cfg = SimConfig { ops_per_client: 5, ..SimConfig::default() };
//! let a = run(42, &cfg);
//! assert!(a.passed(), "{:?}", a.violations);
//! // Same seed, same run.
//! assert_eq!(a.trace_hash, run(42, &cfg).trace_hash);
//! println!("replay with: {}", replay_command(42, &cfg));
//! # use sim::replay_command;
//! ```
//!
//! The binary runs many seeds: `cargo run -p sim --release -- --seeds
//! 0..10000 --members 3` (`--members mix` alternates 3 and 5), and replays
//! one with `--seed N --trace`.
//!
//! **Watches**: clients open watches of the workload's keys on random
//! members, from now or from a past revision; a watch dies with its member
//! and is re-opened from the last revision it saw + 1. Every member also
//! carries an all-keys *observer* watch. [`watches`] checks that each watch
//! delivered revisions in strictly increasing order, with exactly the
//! events the members applied under its prefix and no gap, against a truth
//! built from the observers and the members' final MVCC history (sources
//! that overlap must agree: a cross-member check of the applied history),
//! and that opening a watch fails with `Compacted` exactly below the
//! compact revision.
//!
//! **Leases**: clients grant leases (TTLs of 2–4 s; a tick is 100 ms of
//! `Config::tick_interval` and [`TICK`] virtual units, so a lease lives
//! 200–400 units and expires within a run), attach fresh keys (`l…`,
//! outside the register model) with `PutRequest::lease`, keep them alive,
//! revoke them, or let them expire (the leader proposes the revoke from its
//! ticks). [`leases`] checks, from every member's observer, that a lease's
//! keys go at one revision on every member, never before the grant time +
//! TTL on the fastest possible clock unless a client revoke was invoked,
//! and that no keep-alive succeeds after they went. `--strict-keep-alive`
//! also counts acknowledged keep-alives as renewals; a known core race
//! fails it (see [`leases`]).

pub mod checker;
pub mod config;
pub mod history;
pub mod leases;
pub mod ranges;
pub mod rng;
pub mod shrink;
pub mod trace;
pub mod txns;
pub mod verdict;
pub mod watches;
pub mod world;

use std::ops::Range;

pub use checker::{Violation, ViolationKind};
pub use config::{FaultConfig, FaultKind, FaultWeights, SimConfig, WorkloadMix, TICK};
pub use trace::TraceLevel;
pub use verdict::{quiet_panics, run_caught};
pub use world::{OpId, RunReport, RunStats, World};

/// Runs one simulation of `cfg` from `seed`.
pub fn run(seed: u64, cfg: &SimConfig) -> RunReport {
    World::new(seed, cfg.clone()).run()
}

/// Cluster sizes a multi-seed run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    /// Always this many.
    Fixed(usize),
    /// 3 members for even seeds, 5 for odd ones.
    Mix,
}

impl Members {
    /// The cluster size for `seed`.
    pub fn for_seed(self, seed: u64) -> usize {
        match self {
            Members::Fixed(n) => n,
            Members::Mix if seed & 1 == 0 => 3,
            Members::Mix => 5,
        }
    }
}

/// Bad command-line input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// A seed range is not `A..B` with `A < B`.
    #[error("bad seed range {0:?}: expected A..B with A < B")]
    SeedRange(String),
    /// A number did not parse.
    #[error("bad number {value:?} for {flag}")]
    Number {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
    },
    /// `--members` is not a positive number or `mix`.
    #[error("bad --members {0:?}: expected a positive number or \"mix\"")]
    Members(String),
}

/// Parses `A..B` (B exclusive).
///
/// ```
/// assert_eq!(sim::parse_seeds("3..7").unwrap(), 3..7);
/// assert!(sim::parse_seeds("7..3").is_err());
/// ```
pub fn parse_seeds(s: &str) -> Result<Range<u64>, ArgError> {
    let bad = || ArgError::SeedRange(s.to_string());
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

/// Parses `--members`: a number or `mix`.
pub fn parse_members(s: &str) -> Result<Members, ArgError> {
    if s == "mix" {
        return Ok(Members::Mix);
    }
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Members::Fixed(n)),
        _ => Err(ArgError::Members(s.to_string())),
    }
}

/// The one command that replays run `seed` of `cfg` exactly.
pub fn replay_command(seed: u64, cfg: &SimConfig) -> String {
    let d = SimConfig::default();
    let mut cmd = format!("cargo run -p sim --release -- --seed {seed} --members {}", cfg.members);
    if cfg.clients != d.clients {
        cmd.push_str(&format!(" --clients {}", cfg.clients));
    }
    if cfg.ops_per_client != d.ops_per_client {
        cmd.push_str(&format!(" --ops {}", cfg.ops_per_client));
    }
    if cfg.keys != d.keys {
        cmd.push_str(&format!(" --keys {}", cfg.keys));
    }
    if !cfg.faults.enabled {
        cmd.push_str(" --no-faults");
    }
    if cfg.faults.enabled && !cfg.faults.duplicate_proposals {
        cmd.push_str(" --no-duplicate-proposals");
    }
    if cfg.unsafe_local_reads {
        cmd.push_str(" --unsafe-local-reads");
    }
    if !cfg.strict_keep_alive {
        cmd.push_str(" --lax-keep-alive");
    }
    if cfg.workload_time != d.workload_time {
        cmd.push_str(&format!(" --workload-time {}", cfg.workload_time));
    }
    if cfg.max_faults != d.max_faults {
        cmd.push_str(&format!(" --max-faults {}", cfg.max_faults));
    }
    cmd
}
