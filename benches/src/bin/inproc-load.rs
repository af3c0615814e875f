//! In-process load: a 3-member cluster on RocksDB (temp dirs) over
//! transport-mem, with `CALLERS` durable 256-byte puts in flight through the
//! leader. Prints one JSON line with ops/s, CPU per op and latency
//! percentiles.
//!
//! Usage: `inproc-load [CALLERS] [TOTAL_OPS] [threads|callbacks]` (defaults
//! 64, 100000, threads).
//!
//! - `threads`: `CALLERS` threads, each calling the blocking `Node::put`.
//! - `callbacks`: one thread keeps `CALLERS` puts in flight with
//!   `Node::propose_with`, as an async server does; no thread per caller, so
//!   the figure is the library's, not the OS scheduler's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use raft_kv::{Node, Op, PutRequest};

/// mimalloc, as raft-kv-server uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let callers: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let total: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mode = args.next().unwrap_or_else(|| "threads".to_string());
    let cluster = benches::Cluster::start();
    let leader = cluster.leader.clone();
    let cpu_start = cpu_secs();
    let start = Instant::now();
    let mut lat = match mode.as_str() {
        "callbacks" => with_callbacks(&leader, callers, total),
        _ => with_threads(&leader, callers, total),
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_start;
    // Per member: synced writes (one per Ready with new entries) and their
    // mean latency, and the unsynced apply writes.
    let members: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| {
            let (f, a) = (n.metrics().fsync.snapshot(), n.metrics().apply_write.snapshot());
            format!(
                "{{\"id\":{},\"fsyncs\":{},\"fsync_mean_us\":{:.0},\"apply_writes\":{},\"apply_mean_us\":{:.0}}}",
                n.id(),
                f.count,
                f.sum_seconds * 1e6 / f.count.max(1) as f64,
                a.count,
                a.sum_seconds * 1e6 / a.count.max(1) as f64
            )
        })
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{{\"mode\":\"{mode}\",\"callers\":{callers},\"ops\":{},\"ops_per_sec\":{:.0},\"cpu_us_per_op\":{:.1},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"members\":[{}]}}",
        lat.len(),
        lat.len() as f64 / secs,
        cpu * 1e6 / lat.len() as f64,
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1],
        members.join(",")
    );
    drop(cluster);
}

/// The key of the `n`th put: 100,000 distinct keys, overwritten in turn.
fn key(n: u64) -> String {
    format!("k{:08}", n % 100_000)
}

/// `callers` threads doing blocking puts; returns latencies in µs.
fn with_threads(leader: &Node, callers: u64, total: u64) -> Vec<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let value = bytes::Bytes::from(vec![b'v'; 256]);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                let (node, next, value) = (leader.clone(), Arc::clone(&next), value.clone());
                s.spawn(move || {
                    let mut lat = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            break lat;
                        }
                        let t = Instant::now();
                        node.put(key(n), value.clone()).expect("put");
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("caller")).collect()
    })
}

/// One thread keeping `callers` puts in flight through callbacks; returns
/// latencies in µs.
fn with_callbacks(leader: &Node, callers: u64, total: u64) -> Vec<u64> {
    let value = bytes::Bytes::from(vec![b'v'; 256]);
    let (tx, rx) = crossbeam_channel::unbounded::<Instant>();
    let submit = |n: u64| {
        let tx = tx.clone();
        let t = Instant::now();
        let op = Op::Put(PutRequest::new(key(n), value.clone()));
        leader.propose_with(
            op,
            Box::new(move |res| {
                res.expect("put");
                let _ = tx.send(t);
            }),
        );
    };
    let mut sent = 0;
    while sent < callers.min(total) {
        submit(sent);
        sent += 1;
    }
    let mut lat = Vec::with_capacity(total as usize);
    while (lat.len() as u64) < total {
        let t = rx.recv().expect("completion");
        lat.push(t.elapsed().as_micros() as u64);
        if sent < total {
            submit(sent);
            sent += 1;
        }
    }
    lat
}

/// CPU time (user + system) this process has used, from /proc/self/stat
/// (Linux; 0 elsewhere). CPU per op is steadier than ops/s on a shared
/// machine.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}
