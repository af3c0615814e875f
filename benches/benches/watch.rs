#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Watch fan-out: 100 watchers on one member, puts from 64 callers; the
//! figure is events delivered per second (puts × 100 watchers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::Cluster;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_kv::{WatchMessage, WatchRequest};

const WATCHERS: u64 = 100;
const CALLERS: u64 = 64;

fn fan_out(c: &mut Criterion) {
    let cluster = Cluster::start();
    let seq = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("watch_fan_out");
    group.throughput(Throughput::Elements(WATCHERS));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("100_watchers", |bench| {
        bench.iter_custom(|iters| {
            let node = cluster.nodes[0].clone();
            let rev = node.status().expect("status").state.revision;
            let watchers: Vec<_> = (0..WATCHERS)
                .map(|_| node.watch(WatchRequest::prefix("w/").start_revision(rev + 1)).expect("watch"))
                .collect();
            let per = iters.div_ceil(CALLERS);
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..CALLERS {
                    let (leader, seq) = (cluster.leader.clone(), Arc::clone(&seq));
                    s.spawn(move || {
                        for _ in 0..per {
                            let k = seq.fetch_add(1, Ordering::Relaxed);
                            leader.put(format!("w/{:06}", k % 10_000), "v").expect("put");
                        }
                    });
                }
                // Every watcher drains every event.
                for mut w in watchers {
                    s.spawn(move || {
                        let mut seen = 0;
                        while seen < per * CALLERS {
                            match w.recv_timeout(Duration::from_secs(30)) {
                                Some(WatchMessage::Events { events, .. }) => seen += events.len() as u64,
                                Some(WatchMessage::Canceled { reason, .. }) => panic!("watch canceled: {reason}"),
                                Some(_) => {}
                                None => panic!("watch stalled"),
                            }
                        }
                    });
                }
            });
            start.elapsed().mul_f64(iters as f64 / (per * CALLERS) as f64)
        })
    });
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
