//! Raft log storage micro-benchmarks, on the public API of
//! `raft_kv::raftlog`:
//!
//! * `raftlog_append_256B_sync`: [`RaftLog::append`] of 1, 64 and 1024
//!   entries of 256-byte payload plus the synced engine write that persists
//!   them (one Ready's log write), on a [`MemEngine`] and on a [`RocksEngine`]
//!   in a temp dir;
//! * `raftlog_entries64`: [`Storage::entries`] of 64 entries served from the
//!   log's cache of recent entries and from the engine (entries old enough to
//!   have been evicted from the cache).
//!
//! Building the entries and the untimed log compaction that keeps the log
//! bounded are excluded from the timings. On RocksDB the log is small enough
//! to sit in the memtable, so the engine reads are memtable reads.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use raft::eraftpb::Entry;
use raft::{GetEntriesContext, Storage};
use raft_kv::core::raftlog::RaftLog;
use raft_kv::engine::WriteBatch;
use raft_kv::{Engine, MemEngine, RocksEngine};

/// Bytes of payload per entry.
const PAYLOAD_LEN: usize = 256;
/// Entries cached in memory: the default of `Config::log_cache_entries`.
const CACHE_ENTRIES: usize = 4096;
/// The append benchmark compacts the log (untimed) once it holds more
/// entries than this.
const COMPACT_ABOVE: u64 = 2 * CACHE_ENTRIES as u64;
/// Entries per read.
const READ_LEN: u64 = 64;

/// `count` entries of term 1 with [`PAYLOAD_LEN`]-byte payloads, starting at
/// index `first`.
fn entries(first: u64, count: u64) -> Vec<Entry> {
    (first..first + count)
        .map(|index| Entry { index, term: 1, data: vec![b'e'; PAYLOAD_LEN].into(), ..Default::default() })
        .collect()
}

/// Appends `batch` to `log` and persists it with one synced write.
fn append_synced<E: Engine>(log: &mut RaftLog<E>, batch: &[Entry]) {
    let mut wb = WriteBatch::new();
    log.append(batch, &mut wb).expect("append");
    log.engine().write(wb, true).expect("synced write");
}

/// Synced appends of 1, 64 and 1024 entries, on each engine.
fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("raftlog_append_256B_sync");
    // Synced writes take milliseconds on RocksDB: flat sampling keeps the
    // sample count within the measurement time.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for count in [1u64, 64, 1024] {
        group.throughput(Throughput::Elements(count));
        bench_append(&mut group, "mem", MemEngine::new(), count);
        let dir = tempfile::tempdir().expect("tempdir");
        bench_append(&mut group, "rocks", RocksEngine::open(dir.path()).expect("open RocksEngine"), count);
    }
    group.finish();
}

/// Benchmarks synced appends of `count` entries to a log on `engine`.
fn bench_append<E: Engine>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, engine: E, count: u64) {
    let mut log = RaftLog::open(engine, CACHE_ENTRIES).expect("open RaftLog");
    group.bench_function(BenchmarkId::new(name, count), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = entries(log.last() + 1, count);
                let start = Instant::now();
                append_synced(&mut log, &batch);
                total += start.elapsed();
                if log.last() - log.first() + 1 > COMPACT_ABOVE {
                    let mut wb = WriteBatch::new();
                    log.compact(log.last() - CACHE_ENTRIES as u64, &mut wb).expect("compact");
                    log.engine().write(wb, true).expect("synced write");
                }
            }
            total
        })
    });
}

/// Reads of 64 entries from the cache and from the engine, on each engine.
fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("raftlog_entries64");
    group.throughput(Throughput::Elements(READ_LEN));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    bench_reads(&mut group, "mem", MemEngine::new());
    let dir = tempfile::tempdir().expect("tempdir");
    bench_reads(&mut group, "rocks", RocksEngine::open(dir.path()).expect("open RocksEngine"));
    group.finish();
}

/// Fills a log on `engine` with twice the cache's worth of entries, then
/// benchmarks reading the newest 64 (cached) and the oldest 64 (evicted from
/// the cache, so read from the engine).
fn bench_reads<E: Engine>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, engine: E) {
    let mut log = RaftLog::open(engine, CACHE_ENTRIES).expect("open RaftLog");
    while log.last() < 2 * CACHE_ENTRIES as u64 {
        let batch = entries(log.last() + 1, 1024);
        append_synced(&mut log, &batch);
    }
    let newest = log.last() + 1 - READ_LEN;
    for (source, low) in [("cache", newest), ("engine", log.first())] {
        let read = || log.entries(low, low + READ_LEN, raft::NO_LIMIT, GetEntriesContext::empty(false));
        assert_eq!(read().expect("entries").len() as u64, READ_LEN, "{source}/{name}: entries read");
        group.bench_function(BenchmarkId::new(source, name), |b| b.iter(|| black_box(read().expect("entries"))));
    }
}

/// The criterion harness, in a private module: `criterion_group!` generates
/// an undocumented public function. Plots are off by default (they take
/// seconds per benchmark); `-- --plotting-backend plotters` turns them on.
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = criterion::Criterion::default().without_plots();
        targets = super::appends, super::reads
    }
}

criterion_main!(harness::benches);
