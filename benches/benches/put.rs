#![allow(missing_docs)] // criterion_group! generates undocumented items
//! In-process 3-member cluster on RocksDB: durable puts with 1 and 64
//! concurrent callers. Criterion reports throughput in elements (puts) per
//! second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::Cluster;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn puts(c: &mut Criterion) {
    let b = Cluster::start();
    let value = vec![b'v'; 256];
    let seq = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("cluster3_put_256B");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for callers in [1usize, 64] {
        group.bench_function(format!("{callers}_callers"), |bench| {
            bench.iter_custom(|iters| {
                let per = iters.div_ceil(callers as u64);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..callers {
                        let (node, seq, value) = (b.leader.clone(), Arc::clone(&seq), value.clone());
                        s.spawn(move || {
                            for _ in 0..per {
                                let k = seq.fetch_add(1, Ordering::Relaxed);
                                node.put(format!("k{:08}", k % 100_000), value.clone()).expect("put");
                            }
                        });
                    }
                });
                // Scale to the requested iteration count.
                start.elapsed().mul_f64(iters as f64 / (per * callers as u64) as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, puts);
criterion_main!(benches);
