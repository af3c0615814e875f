//! MVCC micro-benchmarks, on the public API of `raft_kv::mvcc`:
//!
//! * `mvcc_key`: the engine-key encoding `escape(key) ‖ 0x00 0x01 ‖
//!   BE(!revision)` ([`encode_key`] / [`decode_key`]) for 8- and 64-byte keys;
//! * `mvcc_apply_put64`: one apply batch of 64 puts of 256-byte values
//!   ([`Mvcc::apply`] each, [`Mvcc::take_events`], then one unsynced
//!   [`Mvcc::commit`]), as the peer applies a committed batch, over a
//!   [`MemEngine`] and over a [`RocksEngine`] in a temp dir;
//! * `mvcc_range100`: [`Mvcc::range`] of 100 keys from a store of 10 000 keys
//!   (each with 4 versions), at the current revision (served from the
//!   in-memory index plus a value read per key) and at an older revision (a
//!   scan of the engine's history).
//!
//! On RocksDB the populated store is small enough to sit in the memtable, so
//! the range figures are memtable reads, not SST reads.

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use raft_kv::core::mvcc::encoding::{decode_key, encode_key};
use raft_kv::core::mvcc::Mvcc;
use raft_kv::engine::WriteBatch;
use raft_kv::{Engine, MemEngine, Op, PutRequest, RangeRequest, RocksEngine};

/// Puts per apply batch.
const BATCH: usize = 64;
/// Bytes per value.
const VALUE_LEN: usize = 256;
/// Distinct keys the apply benchmark cycles through.
const APPLY_KEYS: u64 = 4096;
/// Live keys in the store the range benchmark reads.
const RANGE_KEYS: u64 = 10_000;
/// Versions written per key in the range benchmark's store.
const RANGE_VERSIONS: u64 = 4;
/// Keys per range read.
const RANGE_LEN: u64 = 100;

/// The user key for sequence number `n` (9 bytes: `k` and 8 digits).
fn key(n: u64) -> String {
    format!("k{n:08}")
}

/// A fresh engine, plus the temp dir that must outlive it (if any).
type EngineFactory<E> = fn() -> (E, Option<tempfile::TempDir>);

/// A fresh in-memory engine.
fn mem_engine() -> (MemEngine, Option<tempfile::TempDir>) {
    (MemEngine::new(), None)
}

/// A fresh RocksDB engine in a new temp dir.
fn rocks_engine() -> (RocksEngine, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = RocksEngine::open(dir.path()).expect("open RocksEngine");
    (engine, Some(dir))
}

/// Encoding and decoding of MVCC engine keys.
fn key_encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("mvcc_key");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    // A short key, and an etcd-registry-like one padded to 64 bytes.
    let short = b"k0001234".to_vec();
    let mut long = b"/registry/pods/default/web-frontend-7d9f8c6b5-".to_vec();
    long.resize(64, b'x');
    for user_key in [short, long] {
        let len = user_key.len();
        let encoded = encode_key(&user_key, 123_456);
        group.bench_with_input(BenchmarkId::new("encode", format!("{len}B")), &user_key, |b, k| {
            b.iter(|| encode_key(black_box(k), black_box(123_456)))
        });
        group.bench_with_input(BenchmarkId::new("decode", format!("{len}B")), &encoded, |b, k| {
            b.iter(|| decode_key(black_box(k)).expect("decode_key"))
        });
    }
    group.finish();
}

/// The apply path of one committed batch of 64 puts, on each engine.
fn apply_puts(c: &mut Criterion) {
    let mut group = c.benchmark_group("mvcc_apply_put64");
    group.throughput(Throughput::Elements(BATCH as u64));
    // Every sample runs the same number of batches on its own fresh store.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("mem", |b| b.iter_custom(|iters| timed_apply_batches(mem_engine, iters)));
    group.bench_function("rocks", |b| b.iter_custom(|iters| timed_apply_batches(rocks_engine, iters)));
    group.finish();
}

/// Applies and commits `iters` batches of [`BATCH`] puts to a fresh store
/// and returns the time spent applying and committing (building the
/// operations and opening the store are not timed). A fresh store per sample
/// bounds the history (and a `MemEngine`'s memory) a sample runs against.
fn timed_apply_batches<E: Engine>(make: EngineFactory<E>, iters: u64) -> Duration {
    let (engine, _dir) = make();
    let mut mvcc = Mvcc::open(engine).expect("open Mvcc");
    let value = vec![b'v'; VALUE_LEN];
    let mut seq = 0u64;
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let ops: Vec<Op> = (0..BATCH)
            .map(|_| {
                seq += 1;
                Op::Put(PutRequest::new(key(seq % APPLY_KEYS), value.clone()))
            })
            .collect();
        let start = Instant::now();
        for op in &ops {
            black_box(mvcc.apply(op).expect("apply put"));
        }
        black_box(mvcc.take_events());
        mvcc.commit(WriteBatch::new()).expect("commit");
        total += start.elapsed();
    }
    total
}

/// A store of [`RANGE_KEYS`] keys, each written [`RANGE_VERSIONS`] times,
/// committed in batches of [`BATCH`]. Returns it and the revision at which
/// the first round of writes had completed.
fn populated<E: Engine>(engine: E) -> (Mvcc<E>, i64) {
    let mut mvcc = Mvcc::open(engine).expect("open Mvcc");
    let value = vec![b'v'; VALUE_LEN];
    let mut first_round = 0;
    for round in 0..RANGE_VERSIONS {
        for n in 0..RANGE_KEYS {
            mvcc.apply(&Op::Put(PutRequest::new(key(n), value.clone()))).expect("apply put");
            if (n + 1) % BATCH as u64 == 0 {
                mvcc.take_events();
                mvcc.commit(WriteBatch::new()).expect("commit");
            }
        }
        mvcc.take_events();
        mvcc.commit(WriteBatch::new()).expect("commit");
        if round == 0 {
            first_round = mvcc.revision();
        }
    }
    (mvcc, first_round)
}

/// Range reads of 100 keys from a populated store, on each engine.
fn range_reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("mvcc_range100");
    group.throughput(Throughput::Elements(RANGE_LEN));
    group.sample_size(50);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    bench_ranges(&mut group, "mem", mem_engine);
    bench_ranges(&mut group, "rocks", rocks_engine);
    group.finish();
}

/// Benchmarks a 100-key range read at the current revision and at the
/// revision after the first round of writes, on a store populated on first
/// use (so a filter that skips both costs nothing).
fn bench_ranges<E: Engine>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, make: EngineFactory<E>) {
    let store = OnceCell::new();
    let start = RANGE_KEYS / 2;
    let current = RangeRequest::range(key(start), key(start + RANGE_LEN));
    for historical in [false, true] {
        let label = if historical { "historical" } else { "current" };
        group.bench_function(BenchmarkId::new(label, name), |b| {
            let (mvcc, old, _dir) = store.get_or_init(|| {
                let (engine, dir) = make();
                let (mvcc, old) = populated(engine);
                (mvcc, old, dir)
            });
            let req = if historical { current.clone().at_revision(*old) } else { current.clone() };
            let kvs = mvcc.range(&req).expect("range").kvs;
            assert_eq!(kvs.len() as u64, RANGE_LEN, "{label}/{name}: range size");
            b.iter(|| mvcc.range(black_box(&req)).expect("range"))
        });
    }
}

/// The criterion harness, in a private module: `criterion_group!` generates
/// an undocumented public function. Plots are off by default (they take
/// seconds per benchmark); `-- --plotting-backend plotters` turns them on.
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = criterion::Criterion::default().without_plots();
        targets = super::key_encoding, super::apply_puts, super::range_reads
    }
}

criterion_main!(harness::benches);
