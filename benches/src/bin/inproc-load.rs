//! In-process load: a 3-member cluster on RocksDB (temp dirs) over
//! transport-mem, `CALLERS` threads issuing durable 256-byte puts through the
//! leader. Prints one JSON line with ops/s and latency percentiles.
//!
//! Usage: `inproc-load [CALLERS] [TOTAL_OPS]` (defaults 64 and 100000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let callers: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let total: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cluster = benches::Cluster::start();
    let leader = cluster.leader.clone();
    let next = Arc::new(AtomicU64::new(0));
    let value = vec![b'v'; 256];
    let start = Instant::now();
    let mut lat: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                let (node, next, value) = (leader.clone(), Arc::clone(&next), value.clone());
                s.spawn(move || {
                    let mut lat = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let k = next.load(Ordering::Relaxed) % 100_000;
                        let t = Instant::now();
                        node.put(format!("k{k:08}"), value.clone()).expect("put");
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    lat
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("caller")).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{{\"callers\":{callers},\"ops\":{},\"ops_per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        lat.len(),
        lat.len() as f64 / secs,
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    drop(cluster);
}
