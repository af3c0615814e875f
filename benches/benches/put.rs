#![allow(missing_docs)] // criterion_group! generates undocumented items
//! In-process 3-member cluster on RocksDB: durable puts with 1 and 64
//! concurrent callers. Criterion reports throughput in elements (puts) per
//! second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_kv::{Config, Node, RocksEngine};
use transport_mem::MemNetwork;

struct Bench {
    _dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Node>,
    leader: Node,
}

fn cluster() -> Bench {
    let net = MemNetwork::new(1);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let nodes: Vec<Node> = (1..=3u64)
        .map(|id| {
            let b = Node::builder(Config::new(id).peers(vec![1, 2, 3]))
                .engine(RocksEngine::open(dirs[(id - 1) as usize].path()).expect("engine"));
            let t = net.join(id, b.mailbox());
            b.transport(t).start().expect("start")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(l) = nodes.iter().find(|n| n.status().map(|s| s.leader == n.id()).unwrap_or(false)) {
            break l.clone();
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(20));
    };
    Bench { _dirs: dirs, nodes, leader }
}

fn puts(c: &mut Criterion) {
    let b = cluster();
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
    drop(b.nodes);
}

criterion_group!(benches, puts);
criterion_main!(benches);
