//! Where a raft log's fsync should live (issue 17): the latency of one
//! durable log append — one `raft::eraftpb::Entry` of 256 B or 2 KiB payload,
//! protobuf-encoded as a real put's entry is — on each candidate store, each
//! in a temp dir on the real disk (under the target dir, not tmpfs):
//!
//! * `shared-rocksdb`: today's layout, the log and the state machine in one
//!   [`RocksEngine`]: [`RaftLog::append`] plus the synced engine write that
//!   persists it, as the node thread does for a Ready;
//! * `separate-rocksdb`: the same, on a second [`RocksEngine`] that holds only
//!   the log;
//! * `raft-engine`: TiKV's `raft-engine` crate, one entry per `LogBatch`,
//!   written with `sync`;
//! * `prealloc-file`: the fsync cost floor, not a real WAL: length-prefixed
//!   encoded entries written at increasing offsets of a 64 MiB segment
//!   preallocated with `fallocate(2)` (as etcd's WAL preallocates its
//!   segments), each followed by `sync_data`, wrapping to offset 0 when full;
//! * `zeroed-file`: the same on a segment already written with zeros and
//!   synced, so the appends overwrite allocated, initialised blocks (no
//!   unwritten-extent conversion in the journal).
//!
//! Groups `logstore_append_256B` and `logstore_append_2KiB` run each store
//! `idle` and with a `sm-writer`: a background thread doing unsynced
//! state-machine-like writes (batches of 16 keys × 256 B into the `Kv`
//! family, one batch per 200 µs, about 20 MB/s) — into the log's own engine
//! for `shared-rocksdb`, where every log fsync also syncs those bytes from the
//! shared WAL, and into a separate [`RocksEngine`] in the same temp dir for
//! the others. Before each benchmark an untimed pass of [`PASS_APPENDS`]
//! appends prints the mean, p50 and p99 to stderr.
//!
//! Group `logstore_append_256B_8way` runs 8 appenders at once (8 raft groups
//! writing to one store, so the store may commit them together): the time is
//! the latency of one append while the other 7 appenders are also appending;
//! 8 appends complete per that time.
//!
//! Log compaction (untimed) keeps each log bounded.
//!
//! The `raft-engine` rows need the benches' `raft-engine` feature (its
//! build is kept out of the workspace's default builds and CI):
//! `cargo bench -p benches --bench logstore --features raft-engine`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use protobuf::Message as _;
use raft::eraftpb::Entry;
use raft_kv::core::raftlog::RaftLog;
use raft_kv::engine::{Cf, WriteBatch};
use raft_kv::{Engine, RocksEngine};
use tempfile::TempDir;

/// The entry payloads measured, with their names in the group names.
const PAYLOADS: [(usize, &str); 2] = [(256, "256B"), (2048, "2KiB")];
/// Entries cached in memory by [`RaftLog`]: the default of
/// `Config::log_cache_entries`.
const CACHE_ENTRIES: usize = 4096;
/// A log is compacted (untimed) down to [`CACHE_ENTRIES`] once it holds more
/// entries than this.
const COMPACT_ABOVE: u64 = 2 * CACHE_ENTRIES as u64;
/// The preallocated segment's size: etcd's WAL segment size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Keys per state-machine batch.
const SM_KEYS: usize = 16;
/// Bytes per state-machine value.
const SM_VALUE_LEN: usize = 256;
/// Distinct state-machine keys: the writer overwrites them round robin, so
/// the state machine stays a bounded size as a store under puts to existing
/// keys does.
const SM_KEY_SPACE: u64 = 1 << 16;
/// The state-machine writer's pace: one batch per this period.
const SM_PERIOD: Duration = Duration::from_micros(200);
/// Appends in the untimed pass that prints the percentiles.
const PASS_APPENDS: usize = 500;
/// Unrecorded appends before the percentile pass.
const PASS_WARM_UP: usize = 50;
/// Concurrent appenders in the group-commit group.
const APPENDERS: u64 = 8;

/// The parent of every temp dir: the target dir's scratch space on the real
/// disk (`/tmp` may be a tmpfs, where fsync costs nothing).
fn scratch_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir under the target dir")
}

/// The entry at `index` (term 1) with a `payload`-byte command, as a put
/// proposes it: no context, the encoded command as data.
fn entry(index: u64, payload: usize) -> Entry {
    Entry { index, term: 1, data: vec![b'e'; payload].into(), ..Default::default() }
}

/// A durable raft log under test.
trait LogStore {
    /// Appends `entry` and returns once it is durable.
    fn append(&mut self, entry: &Entry);
    /// The index the next appended entry gets.
    fn next_index(&self) -> u64;
    /// Untimed housekeeping after an append: log compaction.
    fn maintain(&mut self) {}
}

/// [`RaftLog`] on a [`RocksEngine`], persisted as the node thread persists a
/// Ready's entries: one synced engine write.
struct RocksLog {
    /// The log.
    log: RaftLog<RocksEngine>,
}

impl RocksLog {
    /// Opens a log on `engine`.
    fn new(engine: RocksEngine) -> Self {
        RocksLog { log: RaftLog::open(engine, CACHE_ENTRIES).expect("open RaftLog") }
    }
}

impl LogStore for RocksLog {
    fn append(&mut self, entry: &Entry) {
        let mut wb = WriteBatch::new();
        self.log.append(std::slice::from_ref(entry), &mut wb).expect("append");
        self.log.engine().write(wb, true).expect("synced write");
    }

    fn next_index(&self) -> u64 {
        self.log.last() + 1
    }

    fn maintain(&mut self) {
        if self.log.last() - self.log.first() + 1 > COMPACT_ABOVE {
            let mut wb = WriteBatch::new();
            self.log.compact(self.log.last() - CACHE_ENTRIES as u64, &mut wb).expect("compact");
            self.log.engine().write(wb, true).expect("synced write");
        }
    }
}

/// raft-engine's view of a raft entry: how it reads an entry's index.
#[cfg(feature = "raft-engine")]
struct EntryExt;

#[cfg(feature = "raft-engine")]
impl raft_engine::MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// The raft group every single-appender benchmark writes to raft-engine.
#[cfg(feature = "raft-engine")]
const GROUP: u64 = 1;

/// A raft-engine log of one raft group.
#[cfg(feature = "raft-engine")]
struct RaftEngineLog {
    /// The engine.
    engine: raft_engine::Engine,
    /// The batch reused for every append (a write drains it).
    batch: raft_engine::LogBatch,
    /// The index of the next entry.
    next: u64,
}

/// Opens raft-engine in `dir` with its default configuration.
#[cfg(feature = "raft-engine")]
fn open_raft_engine(dir: &Path) -> raft_engine::Engine {
    let cfg = raft_engine::Config { dir: dir.to_str().expect("UTF-8 temp dir").to_owned(), ..Default::default() };
    raft_engine::Engine::open(cfg).expect("open raft-engine")
}

#[cfg(feature = "raft-engine")]
impl RaftEngineLog {
    /// Opens raft-engine in `dir`.
    fn new(dir: &Path) -> Self {
        RaftEngineLog { engine: open_raft_engine(dir), batch: raft_engine::LogBatch::default(), next: 1 }
    }
}

#[cfg(feature = "raft-engine")]
impl LogStore for RaftEngineLog {
    fn append(&mut self, entry: &Entry) {
        self.batch.add_entries::<EntryExt>(GROUP, std::slice::from_ref(entry)).expect("add entry");
        self.engine.write(&mut self.batch, true).expect("synced raft-engine write");
        self.next += 1;
    }

    fn next_index(&self) -> u64 {
        self.next
    }

    fn maintain(&mut self) {
        let first = self.engine.first_index(GROUP).unwrap_or(self.next);
        if self.next - first > COMPACT_ABOVE {
            self.engine.compact_to(GROUP, self.next - CACHE_ENTRIES as u64);
        }
    }
}

/// How a [`SegmentFile`]'s segment is prepared.
#[derive(Clone, Copy)]
enum Prealloc {
    /// `fallocate(2)`: allocated but unwritten extents.
    Fallocate,
    /// Written with zeros and synced.
    Zeroed,
}

/// The fsync floor: length-prefixed encoded entries at increasing offsets of
/// one preallocated segment, each synced with `sync_data`.
struct SegmentFile {
    /// The segment.
    file: File,
    /// Where the next record goes.
    offset: u64,
    /// The index of the next entry.
    next: u64,
    /// The record being written (reused).
    buf: Vec<u8>,
}

impl SegmentFile {
    /// Creates a [`SEGMENT_BYTES`] segment in `dir`, prepared as `how` says.
    fn new(dir: &Path, how: Prealloc) -> Self {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join("segment.wal"))
            .expect("create segment");
        match how {
            Prealloc::Fallocate => {
                let len = libc::off_t::try_from(SEGMENT_BYTES).expect("segment size fits off_t");
                // SAFETY: fallocate reads no memory; the descriptor is open for
                // writing and lives as long as `file`.
                let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
                assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
            }
            Prealloc::Zeroed => {
                let zeros = vec![0u8; 1 << 20];
                for chunk in 0..SEGMENT_BYTES / zeros.len() as u64 {
                    file.write_all_at(&zeros, chunk * zeros.len() as u64).expect("zero segment");
                }
            }
        }
        file.sync_all().expect("sync segment");
        // The new file's directory entry, as a WAL makes a new segment durable.
        File::open(dir).expect("open dir").sync_all().expect("sync dir");
        SegmentFile { file, offset: 0, next: 1, buf: Vec::new() }
    }
}

impl LogStore for SegmentFile {
    fn append(&mut self, entry: &Entry) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        entry.write_to_vec(&mut self.buf).expect("encode entry");
        let len = u32::try_from(self.buf.len() - 4).expect("entry under 4 GiB");
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        if self.offset + self.buf.len() as u64 > SEGMENT_BYTES {
            self.offset = 0;
        }
        self.file.write_all_at(&self.buf, self.offset).expect("write record");
        self.file.sync_data().expect("sync_data");
        self.offset += self.buf.len() as u64;
        self.next += 1;
    }

    fn next_index(&self) -> u64 {
        self.next
    }
}

/// The background state-machine writer: unsynced batches of [`SM_KEYS`]
/// puts of [`SM_VALUE_LEN`] bytes into [`Cf::Kv`], one per [`SM_PERIOD`]
/// (catching up after a stall of up to 10 periods, then dropping the rest).
/// Stops and reports its achieved rate when dropped.
struct SmWriter {
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread; it returns the batches it wrote.
    thread: Option<JoinHandle<u64>>,
    /// When it started.
    started: Instant,
}

impl SmWriter {
    /// Starts writing into `engine`.
    fn start(engine: RocksEngine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let value = vec![b's'; SM_VALUE_LEN];
            let mut batches = 0u64;
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let mut wb = WriteBatch::new();
                for k in 0..SM_KEYS as u64 {
                    let key = (batches * SM_KEYS as u64 + k) % SM_KEY_SPACE;
                    wb.put(Cf::Kv, format!("sm/{key:08}").into_bytes(), value.clone());
                }
                engine.write(wb, false).expect("state-machine write");
                batches += 1;
                next += SM_PERIOD;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > 10 * SM_PERIOD {
                    next = now;
                }
            }
            batches
        });
        SmWriter { stop, thread: Some(thread), started: Instant::now() }
    }
}

impl Drop for SmWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let batches = thread.join().expect("state-machine writer thread");
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!("  sm-writer: {batches} batches in {secs:.1} s ({:.0}/s)", batches as f64 / secs);
        }
    }
}

/// The stores, by name (`raft-engine` with the benches' `raft-engine`
/// feature only: see benches/Cargo.toml).
const STORES: &[&str] = &[
    "shared-rocksdb",
    "separate-rocksdb",
    #[cfg(feature = "raft-engine")]
    "raft-engine",
    "prealloc-file",
    "zeroed-file",
];

/// Opens store `name` in `dir` and, if `sm_writer`, starts the state-machine
/// writer into the engine that store layout gives it.
fn open_store(name: &str, dir: &Path, sm_writer: bool) -> (Box<dyn LogStore>, Option<SmWriter>) {
    let sm_dir = dir.join("sm");
    let log_dir = dir.join("log");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let separate_sm = || sm_writer.then(|| SmWriter::start(RocksEngine::open(&sm_dir).expect("open state machine")));
    match name {
        "shared-rocksdb" => {
            let engine = RocksEngine::open(&log_dir).expect("open RocksEngine");
            let sm = sm_writer.then(|| SmWriter::start(engine.clone()));
            (Box::new(RocksLog::new(engine)), sm)
        }
        "separate-rocksdb" => {
            let sm = separate_sm();
            (Box::new(RocksLog::new(RocksEngine::open(&log_dir).expect("open RocksEngine"))), sm)
        }
        #[cfg(feature = "raft-engine")]
        "raft-engine" => {
            let sm = separate_sm();
            (Box::new(RaftEngineLog::new(&log_dir)), sm)
        }
        "prealloc-file" => {
            let sm = separate_sm();
            (Box::new(SegmentFile::new(&log_dir, Prealloc::Fallocate)), sm)
        }
        "zeroed-file" => {
            let sm = separate_sm();
            (Box::new(SegmentFile::new(&log_dir, Prealloc::Zeroed)), sm)
        }
        other => unreachable!("unknown store {other}"),
    }
}

/// Times one append of a `payload`-byte entry to `store`, then maintains it
/// (untimed).
fn timed_append(store: &mut dyn LogStore, payload: usize) -> Duration {
    let e = entry(store.next_index(), payload);
    let start = Instant::now();
    store.append(&e);
    let took = start.elapsed();
    store.maintain();
    took
}

/// Prints the mean, p50 and p99 of [`PASS_APPENDS`] appends, after
/// [`PASS_WARM_UP`] unrecorded ones.
fn print_percentiles(label: &str, store: &mut dyn LogStore, payload: usize) {
    for _ in 0..PASS_WARM_UP {
        timed_append(store, payload);
    }
    let mut times: Vec<Duration> = (0..PASS_APPENDS).map(|_| timed_append(store, payload)).collect();
    times.sort_unstable();
    let mean = times.iter().sum::<Duration>() / PASS_APPENDS as u32;
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    eprintln!(
        "logstore {label}: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs (n={PASS_APPENDS})",
        mean.as_secs_f64() * 1e6,
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
    );
}

/// Applies the settings shared by every group: synced writes are slow, so
/// flat sampling and few samples keep the run short.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
}

/// One durable append per iteration, per payload, store and background load.
fn appends(c: &mut Criterion) {
    for (payload, payload_name) in PAYLOADS {
        let group_name = format!("logstore_append_{payload_name}");
        let mut group = c.benchmark_group(&group_name);
        configure(&mut group);
        for &store_name in STORES {
            for (sm_writer, load) in [(false, "idle"), (true, "sm-writer")] {
                let dir = scratch_dir();
                let (mut store, sm) = open_store(store_name, dir.path(), sm_writer);
                print_percentiles(&format!("{group_name}/{store_name}/{load}"), &mut *store, payload);
                group.bench_function(BenchmarkId::new(store_name, load), |b| {
                    b.iter_custom(|iters| (0..iters).map(|_| timed_append(&mut *store, payload)).sum())
                });
                drop(sm);
            }
        }
        group.finish();
    }
}

/// A store that [`APPENDERS`] threads append to at once, each as its own raft
/// group.
trait SharedLog: Sync {
    /// Appends `entry` to raft group `group` and returns once it is durable.
    fn append(&self, group: u64, entry: &Entry);
}

/// One [`RocksEngine`]: each append is one synced write of the encoded entry
/// under a per-group key in the `Raft` family (a [`RaftLog`] is one group's
/// and single-threaded).
impl SharedLog for RocksEngine {
    fn append(&self, group: u64, entry: &Entry) {
        let mut key = group.to_be_bytes().to_vec();
        key.extend_from_slice(&entry.index.to_be_bytes());
        let mut wb = WriteBatch::new();
        wb.put(Cf::Raft, key, entry.write_to_bytes().expect("encode entry"));
        self.write(wb, true).expect("synced write");
    }
}

/// raft-engine: each append is one synced `LogBatch`; concurrent writers
/// join one write group and share its fsync.
#[cfg(feature = "raft-engine")]
impl SharedLog for raft_engine::Engine {
    fn append(&self, group: u64, entry: &Entry) {
        let mut batch = raft_engine::LogBatch::default();
        batch.add_entries::<EntryExt>(group, std::slice::from_ref(entry)).expect("add entry");
        self.write(&mut batch, true).expect("synced raft-engine write");
    }
}

/// Runs `iters` appends of 256-byte entries on each of [`APPENDERS`] threads
/// at once, starting at entry index `first`, and returns the wall time.
fn concurrent_appends(log: &dyn SharedLog, first: u64, iters: u64) -> Duration {
    let barrier = Barrier::new(APPENDERS as usize + 1);
    std::thread::scope(|s| {
        for group in 1..=APPENDERS {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for index in first..first + iters {
                    log.append(group, &entry(index, 256));
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins the appenders before it returns.
        start
    })
    .elapsed()
}

/// Opens shared store `name` in `dir` and, if `sm_writer`, starts the
/// state-machine writer: into the same RocksDB for `shared-rocksdb`, into a
/// separate one for raft-engine.
fn open_shared(name: &str, dir: &Path, sm_writer: bool) -> (Box<dyn SharedLog>, Option<SmWriter>) {
    let log_dir = dir.join("log");
    match name {
        "shared-rocksdb" => {
            let engine = RocksEngine::open(&log_dir).expect("open RocksEngine");
            let sm = sm_writer.then(|| SmWriter::start(engine.clone()));
            (Box::new(engine), sm)
        }
        #[cfg(feature = "raft-engine")]
        "raft-engine" => {
            let sm = sm_writer.then(|| SmWriter::start(RocksEngine::open(dir.join("sm")).expect("open state machine")));
            (Box::new(open_raft_engine(&log_dir)), sm)
        }
        other => unreachable!("unknown shared store {other}"),
    }
}

/// [`APPENDERS`] concurrent appenders, on one shared RocksDB (idle and with
/// the state-machine writer into it) and on raft-engine (idle and with the
/// writer into a separate RocksDB).
fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("logstore_append_256B_8way");
    configure(&mut group);
    for store_name in [
        "shared-rocksdb",
        #[cfg(feature = "raft-engine")]
        "raft-engine",
    ] {
        for (sm_writer, load) in [(false, "idle"), (true, "sm-writer")] {
            let dir = scratch_dir();
            let (log, sm) = open_shared(store_name, dir.path(), sm_writer);
            let mut next = 1;
            group.bench_function(BenchmarkId::new(store_name, load), |b| {
                b.iter_custom(|iters| {
                    let took = concurrent_appends(&*log, next, iters);
                    next += iters;
                    took
                })
            });
            drop(sm);
        }
    }
    group.finish();
}

/// The criterion harness, in a private module: `criterion_group!` generates
/// an undocumented public function. Plots are off by default (they take
/// seconds per benchmark); `-- --plotting-backend plotters` turns them on.
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = criterion::Criterion::default().without_plots();
        targets = super::appends, super::group_commit
    }
}

criterion_main!(harness::benches);
