//! The simulator's command line.
//!
//! ```text
//! cargo run -p sim --release -- --seeds 0..10000 --members mix
//! cargo run -p sim --release -- --seed 17 --members 5 --trace
//! cargo run -p sim --release -- --seed 17 --members 5 --shrink
//! RUSTFLAGS="--cfg raft_kv_mutations" cargo run -p sim --release -- --mutations --seeds 0..200
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use raft_kv::mutation;
use sim::shrink::shrink;
use sim::{
    parse_members, parse_seeds, quiet_panics, replay_command, run_caught, FaultConfig, Members, RunReport, SimConfig,
    TraceLevel, ViolationKind,
};

const USAGE: &str = "usage: sim [--seed N | --seeds A..B] [--members N|mix] [--clients N] [--ops N] [--keys N]
           [--long] [--workload-time T] [--no-faults] [--max-faults N] [--unsafe-local-reads] [--no-duplicate-proposals]
           [--lax-keep-alive] [--trace | --trace-net] [--jobs N] [--fail-fast] [--shrink]
           [--mutation NAME | --mutations [--min-caught PERCENT]]

Every run mixes put, get (linearizable and serializable), ranges with every option (limit,
sort, count_only, keys_only, revision filters, past revisions), single and multi-key deletes,
compare-and-swap, multi-op and nested txns, compaction, lease grant/attach/keep-alive/revoke/
expiry and watches (filters, prev_kv, progress), under message faults, partitions, clients cut
off from members (with retries under the same request id), crashes (also torn log tails and
power loss between any two writes, inside a step or while opening), failed writes and fsyncs,
data-directory loss, leader transfers, membership changes (add learner, promote, remove,
re-add, peer URL updates), snapshots over a bounded transport, tick skew and clock jumps; it checks
linearizability (an undecided search fails), convergence of all replicated state, lost
writes, one leader per term, watches and leases on every seed.

A panic in any member fails its seed (reported with the replay command) and the sweep goes
on; --fail-fast stops at the first failed seed. The exit code is 1 if any seed failed.
--shrink reduces each failed seed to fewer operations, faults and clients.
--long runs four times the operations on twice the keys.
--mutation NAME plants one deliberate bug and --mutations runs the suite (a build with
RUSTFLAGS=\"--cfg raft_kv_mutations\"; `make sim-mutations`): it prints, per mutation, the
first seed a checker caught it on and the seeds caught, and fails if one is caught on fewer
than --min-caught percent (5) of the seeds.";

struct Args {
    seeds: std::ops::Range<u64>,
    members: Members,
    cfg: SimConfig,
    jobs: usize,
    fail_fast: bool,
    shrink: bool,
    mutation: Option<String>,
    suite: bool,
    min_caught: f64,
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T> {
    let value = value.with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
    value.parse().map_err(|_| anyhow::anyhow!(sim::ArgError::Number { flag: flag.into(), value }))
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        seeds: 0..100,
        members: Members::Fixed(3),
        cfg: SimConfig::default(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fail_fast: false,
        shrink: false,
        mutation: None,
        suite: false,
        min_caught: 5.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seed" => {
                let s: u64 = number("--seed", it.next())?;
                args.seeds = s..s.saturating_add(1);
            }
            "--seeds" => args.seeds = parse_seeds(&it.next().context("--seeds needs A..B")?)?,
            "--members" => args.members = parse_members(&it.next().context("--members needs a value")?)?,
            "--clients" => args.cfg.clients = number("--clients", it.next())?,
            "--ops" => args.cfg.ops_per_client = number("--ops", it.next())?,
            "--keys" => args.cfg.keys = number("--keys", it.next())?,
            "--long" => {
                args.cfg.ops_per_client *= 4;
                args.cfg.keys *= 2;
                args.cfg.workload_time *= 4;
            }
            "--workload-time" => args.cfg.workload_time = number("--workload-time", it.next())?,
            "--jobs" => args.jobs = number::<usize>("--jobs", it.next())?.max(1),
            "--no-faults" => args.cfg.faults = FaultConfig::none(),
            "--max-faults" => args.cfg.max_faults = number("--max-faults", it.next())?,
            "--unsafe-local-reads" => args.cfg.unsafe_local_reads = true,
            "--no-duplicate-proposals" => args.cfg.faults.duplicate_proposals = false,
            "--lax-keep-alive" => args.cfg.strict_keep_alive = false,
            "--trace" => args.cfg.trace = TraceLevel::Events,
            "--trace-net" => args.cfg.trace = TraceLevel::Messages,
            "--fail-fast" => args.fail_fast = true,
            // The old spelling of the default.
            "--keep-going" => args.fail_fast = false,
            "--shrink" => args.shrink = true,
            "--mutation" => args.mutation = Some(it.next().context("--mutation needs a name")?),
            "--mutations" => args.suite = true,
            "--min-caught" => args.min_caught = number("--min-caught", it.next())?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.cfg.trace != TraceLevel::Off {
        args.jobs = 1;
    }
    if (args.mutation.is_some() || args.suite) && !mutation::ENABLED {
        bail!("this build carries no mutations: build with RUSTFLAGS=\"--cfg raft_kv_mutations\" (make sim-mutations)");
    }
    if let Some(name) = &args.mutation {
        if !mutation::select(Some(name)) {
            let names: Vec<&str> = mutation::ALL.iter().map(|(n, _)| *n).collect();
            bail!("unknown mutation {name:?}; known: {}", names.join(", "));
        }
    }
    Ok(args)
}

/// The result of one sweep.
struct Sweep {
    done: u64,
    secs: f64,
    ops: u64,
    /// Failed seeds, in seed order, with their reports and configurations.
    failed: Vec<(u64, SimConfig, RunReport)>,
}

/// Runs every seed of `args` on `args.jobs` threads.
fn sweep(args: &Args, quiet: bool) -> Sweep {
    let total = args.seeds.end - args.seeds.start;
    let next = AtomicU64::new(args.seeds.start);
    let failed = Mutex::new(Vec::new());
    let ops = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(total.max(1) as usize) {
            scope.spawn(|| loop {
                if args.fail_fast && failed.lock().map_or(true, |f: std::sync::MutexGuard<Vec<_>>| !f.is_empty()) {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= args.seeds.end {
                    return;
                }
                let cfg = SimConfig { members: args.members.for_seed(seed), ..args.cfg.clone() };
                let report = run_caught(seed, &cfg);
                ops.fetch_add(report.stats.ops_ok + report.stats.ops_unknown, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
                if total == 1 && !quiet {
                    println!(
                        "seed {seed}: members {}, trace hash {:016x}, virtual time {}, {:?}",
                        cfg.members, report.trace_hash, report.sim_time, report.stats
                    );
                }
                if !report.passed() {
                    if !quiet {
                        println!("{}", describe(seed, &cfg, &report, args.mutation.as_deref()));
                    }
                    if let Ok(mut f) = failed.lock() {
                        f.push((seed, cfg, report));
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_default();
    failed.sort_by_key(|f| f.0);
    Sweep {
        done: done.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
        ops: ops.load(Ordering::Relaxed),
        failed,
    }
}

/// The replay command, with the mutation if one is planted.
fn replay(seed: u64, cfg: &SimConfig, mutation: Option<&str>) -> String {
    match mutation {
        Some(m) => format!("RUSTFLAGS=\"--cfg raft_kv_mutations\" {} --mutation {m}", replay_command(seed, cfg)),
        None => replay_command(seed, cfg),
    }
}

fn describe(seed: u64, cfg: &SimConfig, report: &RunReport, mutation: Option<&str>) -> String {
    let mut out = format!("\nFAILED seed {seed} (trace hash {:016x})\n", report.trace_hash);
    for v in &report.violations {
        out.push_str(&format!("  {:?}: {}\n", v.kind, v.detail));
    }
    out.push_str(&format!("replay: {}\n", replay(seed, cfg, mutation)));
    out
}

/// The mutation suite: every mutation over the seeds, one table.
fn suite(args: &mut Args) -> Result<()> {
    let total = args.seeds.end - args.seeds.start;
    println!("{:<32} {:>18} {:>16} {:>8}  verdicts", "mutation", "first failing seed", "failures/seeds", "panics");
    let mut weak = Vec::new();
    let started = Instant::now();
    for (name, what) in mutation::ALL {
        mutation::select(Some(name));
        args.mutation = Some(name.to_string());
        let s = sweep(args, true);
        // A checker verdict: any violation but a bare panic.
        let caught: Vec<&(u64, SimConfig, RunReport)> =
            s.failed.iter().filter(|(_, _, r)| r.violations.iter().any(|v| v.kind != ViolationKind::Panic)).collect();
        let panics = s.failed.len() - caught.len();
        let mut kinds: Vec<String> =
            caught.iter().flat_map(|(_, _, r)| r.violations.iter().map(|v| format!("{:?}", v.kind))).collect();
        kinds.sort();
        kinds.dedup();
        let first = caught.first().map_or("-".to_string(), |f| f.0.to_string());
        println!("{name:<32} {first:>18} {:>16} {panics:>8}  {}", format!("{}/{total}", caught.len()), kinds.join(","));
        if (caught.len() as f64) < args.min_caught / 100.0 * total as f64 {
            weak.push(format!("{name} ({what}): caught on {} of {total} seeds", caught.len()));
        }
    }
    mutation::select(None);
    println!("{} mutations x {total} seeds in {:.1}s", mutation::ALL.len(), started.elapsed().as_secs_f64());
    if !weak.is_empty() {
        println!("caught on fewer than {}% of seeds:\n  {}", args.min_caught, weak.join("\n  "));
        std::process::exit(1);
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut args = parse_args()?;
    quiet_panics();
    if args.suite {
        return suite(&mut args);
    }
    let s = sweep(&args, false);
    let seeds: Vec<u64> = s.failed.iter().map(|f| f.0).collect();
    println!(
        "{} seeds in {:.1}s ({:.1} seeds/s, {} jobs), {:.1} client ops per run, {} failed{}",
        s.done,
        s.secs,
        s.done as f64 / s.secs.max(1e-9),
        args.jobs,
        s.ops as f64 / s.done.max(1) as f64,
        seeds.len(),
        if seeds.is_empty() { String::new() } else { format!(": {seeds:?}") }
    );
    if args.shrink {
        for (seed, cfg, report) in &s.failed {
            let shrunk = shrink(*seed, cfg, report);
            println!(
                "\nseed {seed} shrunk in {} runs: {} -> {} history records, {} -> {} faults, {} -> {} clients",
                shrunk.runs,
                report.history.len(),
                shrunk.report.history.len(),
                report.stats.faults,
                shrunk.report.stats.faults,
                cfg.clients,
                shrunk.cfg.clients
            );
            print!("{}", describe(*seed, &shrunk.cfg, &shrunk.report, args.mutation.as_deref()));
        }
    }
    if !s.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
