//! The simulator's command line.
//!
//! ```text
//! cargo run -p sim --release -- --seeds 0..10000 --members 3
//! cargo run -p sim --release -- --seeds 0..2000 --members mix
//! cargo run -p sim --release -- --seed 17 --members 5 --trace
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sim::{parse_members, parse_seeds, replay_command, run, FaultConfig, Members, SimConfig, TraceLevel};

const USAGE: &str = "usage: sim [--seed N | --seeds A..B] [--members N|mix] [--clients N] [--ops N] [--keys N]
           [--no-faults] [--unsafe-local-reads] [--no-duplicate-proposals] [--lax-keep-alive]
           [--trace | --trace-net] [--jobs N] [--keep-going]

Every run mixes put, get (linearizable and serializable), range, delete, compare-and-swap,
compaction, lease grant/attach/keep-alive/revoke/expiry and watches, under message faults,
partitions, crashes, leader transfers, membership changes (add learner, promote, remove,
re-add), snapshots and tick skew; it checks linearizability, convergence, lost writes, one
leader per term, watches and leases, including that an acknowledged keep-alive grants a
full TTL (--lax-keep-alive drops that check).";

struct Args {
    seeds: std::ops::Range<u64>,
    members: Members,
    cfg: SimConfig,
    jobs: usize,
    keep_going: bool,
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
        keep_going: false,
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
            "--jobs" => args.jobs = number::<usize>("--jobs", it.next())?.max(1),
            "--no-faults" => args.cfg.faults = FaultConfig::none(),
            "--unsafe-local-reads" => args.cfg.unsafe_local_reads = true,
            "--no-duplicate-proposals" => args.cfg.faults.duplicate_proposals = false,
            "--lax-keep-alive" => args.cfg.strict_keep_alive = false,
            "--trace" => args.cfg.trace = TraceLevel::Events,
            "--trace-net" => args.cfg.trace = TraceLevel::Messages,
            "--keep-going" => args.keep_going = true,
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
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let total = args.seeds.end - args.seeds.start;
    let next = AtomicU64::new(args.seeds.start);
    let failed = Mutex::new(Vec::<u64>::new());
    let ops = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(total.max(1) as usize) {
            scope.spawn(|| loop {
                if !args.keep_going && failed.lock().map_or(true, |f| !f.is_empty()) {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= args.seeds.end {
                    return;
                }
                let cfg = SimConfig { members: args.members.for_seed(seed), ..args.cfg.clone() };
                let report = run(seed, &cfg);
                ops.fetch_add(report.stats.ops_ok + report.stats.ops_unknown, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
                if total == 1 {
                    println!(
                        "seed {seed}: members {}, trace hash {:016x}, virtual time {}, {:?}",
                        cfg.members, report.trace_hash, report.sim_time, report.stats
                    );
                }
                if !report.passed() {
                    let mut out = format!("\nFAILED seed {seed} (trace hash {:016x})\n", report.trace_hash);
                    for v in &report.violations {
                        out.push_str(&format!("  {:?}: {}\n", v.kind, v.detail));
                    }
                    out.push_str(&format!("replay: {}\n", replay_command(seed, &cfg)));
                    println!("{out}");
                    if let Ok(mut f) = failed.lock() {
                        f.push(seed);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let done = done.load(Ordering::Relaxed);
    let failed = failed.into_inner().unwrap_or_default();
    println!(
        "{done} seeds in {secs:.1}s ({:.1} seeds/s, {} jobs), {:.1} client ops per run, {} failed{}",
        done as f64 / secs.max(1e-9),
        args.jobs,
        ops.load(Ordering::Relaxed) as f64 / done.max(1) as f64,
        failed.len(),
        if failed.is_empty() { String::new() } else { format!(": {failed:?}") }
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
