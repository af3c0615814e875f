//! [`RocksEngine`]: the production engine on RocksDB.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, ColumnFamilyDescriptor, CompactOptions, DBCompressionType,
    DBRawIteratorWithThreadMode, Options, ReadOptions, SliceTransform, SnapshotWithThreadMode, WriteOptions, DB,
};

use super::{checksum, prefix_end, Cf, DbSize, Engine, Maintain, ReadView, WriteBatch, WriteOp};
use crate::core::mvcc::encoding::version_group;
use crate::{Error, Result};

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(crate::error::StorageError::new("rocksdb", e))
    }
}

/// The production [`Engine`]: one RocksDB database with a column family per
/// [`Cf`]. All families share one write-ahead log, so a synced batch is
/// atomic across them and makes earlier unsynced batches durable too.
///
/// ```
/// use raft_kv::engine::{Cf, Engine, ReadView, RocksEngine, WriteBatch};
/// let dir = tempfile::tempdir().unwrap();
/// let engine = RocksEngine::open(dir.path()).unwrap();
/// let mut batch = WriteBatch::new();
/// batch.put(Cf::Kv, b"k".to_vec(), b"v".to_vec());
/// engine.write(batch, true).unwrap();
/// assert_eq!(engine.get(Cf::Kv, b"k").unwrap(), Some(b"v".to_vec()));
/// ```
#[derive(Clone)]
pub struct RocksEngine {
    db: Arc<DB>,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine").field("path", &self.db.path()).finish()
    }
}

/// The memtable memory of all column families together, per engine.
const MEMTABLE_BUDGET: usize = 96 << 20;

impl RocksEngine {
    /// Opens (creating if missing) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_total_wal_size(256 << 20);
        // One budget for every column family's memtables: without it each
        // family may hold two 64 MiB buffers, and a member's RSS under a
        // steady load climbed for 8 minutes to ~340 MiB before levelling off
        // (`make bench-soak`). With it the largest family flushes first.
        db_opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        db_opts.increase_parallelism(2);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            match cf {
                // Raft log entries are written once, read rarely and deleted
                // after compaction: no compression, a large write buffer.
                Cf::Raft => {
                    o.set_compression_type(DBCompressionType::None);
                    o.set_write_buffer_size(64 << 20);
                }
                Cf::Kv => {
                    o.set_write_buffer_size(64 << 20);
                    filter_by_version_group(&mut o);
                }
                Cf::Meta | Cf::Lease => o.set_write_buffer_size(4 << 20),
                Cf::Staging => o.set_compression_type(DBCompressionType::None),
            }
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        Ok(RocksEngine { db: Arc::new(db) })
    }

    fn handle(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        cf_handle(&self.db, cf)
    }
}

/// Bits per key of the `Cf::Kv` filters (RocksDB's usual choice: ~1% false
/// positives).
const FILTER_BITS_PER_KEY: f64 = 10.0;

/// Gives the `Cf::Kv` family bloom filters over whole keys (a point `get`
/// of one version) and over version groups (every version of one user key,
/// [`version_group`]). A point range scans one group; without the filters
/// its seek consulted every memtable, every level-0 file and every level,
/// and a serializable point read after 300,000 puts served ~15% fewer reads
/// a second than on a fresh store (issue 17).
fn filter_by_version_group(o: &mut Options) {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(FILTER_BITS_PER_KEY, false);
    table.set_whole_key_filtering(true);
    o.set_block_based_table_factory(&table);
    o.set_prefix_extractor(SliceTransform::create("raft-kv.version-group", group_of, Some(has_group)));
}

/// The prefix-filter key of a `Cf::Kv` key: its version group (RocksDB asks
/// only for keys [`has_group`] accepts; any other key is its own prefix).
fn group_of(key: &[u8]) -> &[u8] {
    version_group(key).unwrap_or(key)
}

/// Whether a `Cf::Kv` key belongs to a version group (is a version key).
fn has_group(key: &[u8]) -> bool {
    version_group(key).is_some()
}

/// The size of the write-ahead log files (`*.log`) in the database
/// directory `dir` (0 if it cannot be read).
fn wal_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn cf_handle(db: &DB, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
    db.cf_handle(cf.name()).ok_or_else(|| Error::storage(format!("column family {} missing", cf.name())))
}

/// Scans `[start, end)` of `cf` with `opts` (which may pin a snapshot).
///
/// A scan of `Cf::Kv` whose bounds lie inside one version group seeks with
/// the group filters; every other scan seeks in total order (a prefix seek
/// may skip files holding keys past the seek key's group).
fn scan_with(
    db: &DB,
    cf: Cf,
    mut opts: ReadOptions,
    start: &[u8],
    end: Option<&[u8]>,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    if let Some(e) = end {
        if e <= start {
            return Ok(());
        }
        opts.set_iterate_upper_bound(e.to_vec());
    }
    if within_one_group(cf, start, end) {
        opts.set_prefix_same_as_start(true);
    } else {
        opts.set_total_order_seek(true);
    }
    let mut it = db.raw_iterator_cf_opt(cf_handle(db, cf)?, opts);
    visit_from(&mut it, start, None, visit)
}

/// Seeks `it` to `start` and hands `visit` each key-value from there until
/// `visit` says stop, the iterator ends, or a key reaches `end` (for an
/// iterator without an upper bound of its own).
fn visit_from(
    it: &mut DBRawIteratorWithThreadMode<'_, DB>,
    start: &[u8],
    end: Option<&[u8]>,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    it.seek(start);
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
        if end.is_some_and(|end| k >= end) || !visit(k, v) {
            break;
        }
        it.next();
    }
    it.status()?;
    Ok(())
}

/// The operations of a batch in the order they are inserted into the
/// memtables: each run of puts and deletes (up to a range delete) sorted by
/// family and key, stably, so operations on one key keep their order and
/// the batch leaves the same state. An apply batch's versions arrive in
/// the clients' random key order, and each insert searched a 64 MiB skip
/// list from its top (`FindSpliceForLevel`: 14% of the members' CPU under
/// 64-client puts); in key order, RocksDB starts each search from where
/// the previous insert ended, at the lowest level that still brackets the
/// key.
fn in_insert_order(ops: &[WriteOp]) -> Vec<&WriteOp> {
    let mut ordered: Vec<&WriteOp> = ops.iter().collect();
    for run in ordered.split_mut(|op| point_key(op).is_none()) {
        run.sort_by(|a, b| point_key(a).cmp(&point_key(b)));
    }
    ordered
}

/// The family and key a put or delete writes (`None` for a range delete).
fn point_key(op: &WriteOp) -> Option<(Cf, &[u8])> {
    match op {
        WriteOp::Put { cf, key, .. } | WriteOp::Delete { cf, key } => Some((*cf, key.as_slice())),
        WriteOp::DeleteRange { .. } => None,
    }
}

/// True when every key of `[start, end)` in `cf` starts with `start`'s
/// version group: the scan then sees the same keys with or without the
/// group filters.
fn within_one_group(cf: Cf, start: &[u8], end: Option<&[u8]>) -> bool {
    if cf != Cf::Kv {
        return false;
    }
    let (Some(group), Some(end)) = (version_group(start), end) else { return false };
    // Every key in `[group, prefix_end(group))` starts with `group`.
    prefix_end(group).is_some_and(|group_end| end <= &group_end[..])
}

impl ReadView for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        checksum::unseal_owned(cf, key, self.db.get_cf(self.handle(cf)?, key)?)
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        checksum::scan_unsealed(cf, visit, |v| scan_with(&self.db, cf, ReadOptions::default(), start, end, v))
    }
}

impl Engine for RocksEngine {
    type Snapshot = RocksSnapshot;

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        // Each value is sealed (checksum appended) as it is copied in.
        let mut scratch = Vec::new();
        // Column family handles, looked up once per batch rather than per op.
        let mut handles: [Option<&rocksdb::ColumnFamily>; Cf::ALL.len()] = [None; Cf::ALL.len()];
        let mut handle = |cf: Cf| -> Result<&rocksdb::ColumnFamily> {
            let slot = &mut handles[cf as usize];
            match slot {
                Some(h) => Ok(*h),
                None => Ok(*slot.insert(self.handle(cf)?)),
            }
        };
        for op in in_insert_order(batch.ops()) {
            match op {
                WriteOp::Put { cf, key, value } => wb.put_cf(handle(*cf)?, key, checksum::sealed(value, &mut scratch)),
                WriteOp::Delete { cf, key } => wb.delete_cf(handle(*cf)?, key),
                WriteOp::DeleteRange { cf, start, end } => wb.delete_range_cf(handle(*cf)?, start, end),
            }
        }
        // A synced write is an unsynced write and then a WAL sync: the fsync
        // then runs outside RocksDB's write queue, so the node thread's
        // apply writes go on while the log writer waits for the disk
        // (`WriteOptions::sync` would hold every later writer behind it).
        // The sync covers this write and every earlier one, as the engine
        // contract says.
        self.db.write_opt(wb, &WriteOptions::default())?;
        if sync {
            self.db.flush_wal(true)?;
        }
        Ok(())
    }

    fn snapshot(&self) -> RocksSnapshot {
        let snap = self.db.snapshot();
        // SAFETY: the snapshot borrows the DB, which lives in `db` (an Arc kept
        // in the same struct). Fields drop in declaration order, so `snap` is
        // released before the Arc; the DB therefore outlives the snapshot.
        let snap: SnapshotWithThreadMode<'static, DB> = unsafe { std::mem::transmute(snap) };
        RocksSnapshot { group_iters: Mutex::new(Vec::new()), snap, db: Arc::clone(&self.db) }
    }
}

impl RocksEngine {
    /// The sum of one integer property over every column family (a family
    /// whose property is unavailable counts 0).
    fn property_sum(&self, name: &str) -> u64 {
        Cf::ALL.iter().filter_map(|cf| self.db.property_int_value_cf(self.handle(*cf).ok()?, name).ok()?).sum()
    }
}

/// The estimates are what the store occupies on disk, from RocksDB's own
/// accounting: `total` is every SST file still on disk, summed over the
/// column families (`rocksdb.total-sst-files-size`, which counts files an
/// older version still pins), plus the write-ahead log files that hold what
/// the memtables have not flushed yet; `in_use` is RocksDB's estimate of
/// the live data in those SST files (`rocksdb.estimate-live-data-size`,
/// which leaves out overwritten and deleted records not yet compacted
/// away) plus the same WAL. The memtables' own property
/// (`rocksdb.cur-size-all-mem-tables`) is not used: it counts arena blocks
/// as allocated, ~2 MB after a few small writes, which says nothing about
/// the data.
impl Maintain for RocksEngine {
    fn db_size(&self) -> DbSize {
        let wal = wal_bytes(self.db.path());
        let total = self.property_sum("rocksdb.total-sst-files-size") + wal;
        let in_use = (self.property_sum("rocksdb.estimate-live-data-size") + wal).min(total);
        DbSize { total, in_use }
    }

    /// Flushes each column family's memtables and compacts its whole key
    /// range down to the last level, forcing the last level too, so
    /// tombstones and dropped versions are gone from the rewritten files.
    fn defragment(&self) -> Result<()> {
        let mut opts = CompactOptions::default();
        opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        opts.set_exclusive_manual_compaction(false);
        for cf in Cf::ALL {
            let h = self.handle(cf)?;
            self.db.flush_cf(h)?;
            self.db.compact_range_cf_opt(h, None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }
}

/// A point-in-time view of a [`RocksEngine`] (a RocksDB snapshot).
pub struct RocksSnapshot {
    // Fields drop in declaration order: the pooled iterators (which read
    // `snap` and borrow `db`) first, then the snapshot, then the DB.
    group_iters: Mutex<Vec<GroupIter>>,
    snap: SnapshotWithThreadMode<'static, DB>,
    db: Arc<DB>,
}

/// The group-scan iterators one snapshot keeps for reuse, at most.
const POOLED_ITERATORS: usize = 8;

/// An iterator over `Cf::Kv` at a snapshot, seeking with the group filters
/// and without an upper bound (the scan checks its end itself), so any
/// group scan of that snapshot can reuse it ([`RocksSnapshot::scan_group`]).
struct GroupIter(DBRawIteratorWithThreadMode<'static, DB>);

// SAFETY: a RocksDB iterator may be used from any thread, one at a time;
// the pool hands each to one scan at a time.
unsafe impl Send for GroupIter {}

impl RocksSnapshot {
    fn read_opts(&self) -> ReadOptions {
        let mut o = ReadOptions::default();
        o.set_snapshot(&self.snap);
        o
    }

    /// Scans `[start, end)` of `Cf::Kv`, bounds inside one version group
    /// ([`within_one_group`]), with an iterator of the pool.
    ///
    /// A view published by the node serves every serializable range until
    /// the next apply. Creating and destroying an iterator per point read
    /// was 3.3% of a member's samples under 64 clients' serializable
    /// ranges, RocksDB's share 9.3% in all; with the pool, 0.2% and 5.4%
    /// (issue 17, `perf`). A reused iterator only seeks again; it reads the
    /// same snapshot, so it sees what a new one would.
    fn scan_group(&self, start: &[u8], end: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let pooled = self.group_iters.lock().pop();
        let mut it = match pooled {
            Some(it) => it,
            None => {
                let mut opts = self.read_opts();
                opts.set_prefix_same_as_start(true);
                let it = self.db.raw_iterator_cf_opt(cf_handle(&self.db, Cf::Kv)?, opts);
                // SAFETY: the iterator borrows the DB, which `db` keeps alive
                // (an Arc in the same struct, dropped after the pool), and
                // reads `snap`, also dropped after the pool.
                GroupIter(unsafe {
                    std::mem::transmute::<DBRawIteratorWithThreadMode<'_, DB>, DBRawIteratorWithThreadMode<'static, DB>>(
                        it,
                    )
                })
            }
        };
        visit_from(&mut it.0, start, Some(end), visit)?;
        let mut pool = self.group_iters.lock();
        if pool.len() < POOLED_ITERATORS {
            pool.push(it);
        }
        Ok(())
    }
}

impl ReadView for RocksSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        checksum::unseal_owned(cf, key, self.snap.get_cf(cf_handle(&self.db, cf)?, key)?)
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        match end {
            Some(end) if within_one_group(cf, start, Some(end)) && start < end => {
                checksum::scan_unsealed(cf, visit, |v| self.scan_group(start, end, v))
            }
            _ => checksum::scan_unsealed(cf, visit, |v| scan_with(&self.db, cf, self.read_opts(), start, end, v)),
        }
    }
}

// SAFETY: a RocksDB snapshot is an immutable handle that RocksDB allows to be
// used from any thread; the DB itself is Send + Sync.
unsafe impl Send for RocksSnapshot {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_get_scan_snapshot_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = RocksEngine::open(dir.path()).unwrap();
            let mut b = WriteBatch::new();
            for k in [b"a", b"b", b"c"] {
                b.put(Cf::Kv, k.to_vec(), k.to_vec());
            }
            b.put(Cf::Meta, b"m".to_vec(), b"1".to_vec());
            e.write(b, true).unwrap();
            let snap = e.snapshot();
            let mut b = WriteBatch::new();
            b.delete_range(Cf::Kv, b"a".to_vec(), b"c".to_vec());
            e.write(b, true).unwrap();
            let mut seen = Vec::new();
            e.scan(Cf::Kv, b"", None, &mut |k, _| {
                seen.push(k.to_vec());
                true
            })
            .unwrap();
            assert_eq!(seen, vec![b"c".to_vec()]);
            let mut old = Vec::new();
            snap.scan(Cf::Kv, b"a", Some(b"c"), &mut |k, _| {
                old.push(k.to_vec());
                true
            })
            .unwrap();
            assert_eq!(old, vec![b"a".to_vec(), b"b".to_vec()]);
            assert_eq!(snap.get(Cf::Kv, b"a").unwrap(), Some(b"a".to_vec()));
        }
        let e = RocksEngine::open(dir.path()).unwrap();
        assert_eq!(e.get(Cf::Meta, b"m").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(Cf::Kv, b"a").unwrap(), None);
        assert_eq!(e.get(Cf::Kv, b"c").unwrap(), Some(b"c".to_vec()));
    }

    #[test]
    fn group_filters_skip_nothing_a_scan_should_see() {
        use crate::core::mvcc::encoding::{encode_key, group_end, key_prefix};
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(dir.path()).unwrap();
        let keys: [&[u8]; 4] = [b"a", b"a\0", b"b", b"c"];
        // Each key's versions in files of their own, so the filters of
        // every file but one say "not here" for a group.
        for (i, key) in keys.iter().enumerate() {
            let mut b = WriteBatch::new();
            for rev in [10 * i as i64 + 1, 10 * i as i64 + 2] {
                b.put(Cf::Kv, encode_key(key, rev), rev.to_be_bytes().to_vec());
            }
            e.write(b, true).unwrap();
            e.db.flush_cf(e.handle(Cf::Kv).unwrap()).unwrap();
        }
        let scan = |view: &dyn ReadView, start: &[u8], end: Option<&[u8]>| {
            let mut seen = Vec::new();
            view.scan(Cf::Kv, start, end, &mut |k, _| {
                seen.push(k.to_vec());
                true
            })
            .unwrap();
            seen
        };
        let snap = e.snapshot();
        for view in [&e as &dyn ReadView, &snap] {
            for (i, key) in keys.iter().enumerate() {
                let newest = encode_key(key, 10 * i as i64 + 2);
                let older = encode_key(key, 10 * i as i64 + 1);
                // A point read: inside the key's group.
                assert!(within_one_group(Cf::Kv, &newest, Some(&group_end(key))));
                assert_eq!(scan(view, &newest, Some(&group_end(key))), vec![newest.clone(), older.clone()]);
                // From a version key onwards, past its group: every later key.
                let rest = scan(view, &older, None);
                assert_eq!(rest.len(), 1 + 2 * (keys.len() - 1 - i), "{key:?}");
                // A range of user keys starts at a bare prefix.
                assert_eq!(scan(view, &key_prefix(key), Some(&key_prefix(b"c"))).len(), 2 * (3 - i.min(3)));
            }
            // A group nothing was written to.
            assert!(scan(view, &encode_key(b"bb", 5), Some(&group_end(b"bb"))).is_empty());
        }
    }

    #[test]
    fn pooled_group_iterators_read_their_snapshot_and_nothing_later() {
        use crate::core::mvcc::encoding::{encode_key, group_end};
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(dir.path()).unwrap();
        let put = |key: &[u8], rev: i64| {
            let mut b = WriteBatch::new();
            b.put(Cf::Kv, encode_key(key, rev), rev.to_be_bytes().to_vec());
            e.write(b, true).unwrap();
        };
        let revs = |view: &dyn ReadView, key: &[u8]| {
            let mut seen = Vec::new();
            view.scan(Cf::Kv, &encode_key(key, i64::MAX), Some(&group_end(key)), &mut |_, v| {
                seen.push(i64::from_be_bytes(v.try_into().unwrap()));
                true
            })
            .unwrap();
            seen
        };
        put(b"k", 1);
        let snap = e.snapshot();
        assert_eq!(revs(&snap, b"k"), vec![1]);
        assert_eq!(snap.group_iters.lock().len(), 1, "the scan's iterator went back to the pool");
        // Later writes, in the memtable and in a file, stay out of the
        // snapshot's scans, whichever pooled iterator serves them.
        put(b"k", 2);
        put(b"j", 3);
        e.db.flush_cf(e.handle(Cf::Kv).unwrap()).unwrap();
        assert_eq!(revs(&snap, b"k"), vec![1]);
        assert!(revs(&snap, b"j").is_empty());
        assert_eq!(revs(&e.snapshot(), b"k"), vec![2, 1]);
        // A scan its visitor stops still returns its iterator, and scans on
        // many threads at once each get their own.
        snap.scan(Cf::Kv, &encode_key(b"k", 9), Some(&group_end(b"k")), &mut |_, _| false).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        assert_eq!(revs(&snap, b"k"), vec![1]);
                        assert!(revs(&snap, b"j").is_empty());
                    }
                });
            }
        });
        assert!(snap.group_iters.lock().len() <= POOLED_ITERATORS);
    }

    #[test]
    fn a_batch_is_inserted_in_key_order_and_leaves_the_state_its_order_gives() {
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, b"b".to_vec(), b"1".to_vec());
        b.put(Cf::Meta, b"m".to_vec(), b"1".to_vec());
        b.put(Cf::Kv, b"a".to_vec(), b"1".to_vec());
        b.delete(Cf::Kv, b"b".to_vec());
        b.put(Cf::Kv, b"b".to_vec(), b"2".to_vec());
        b.delete_range(Cf::Kv, b"a".to_vec(), b"b".to_vec());
        b.put(Cf::Kv, b"c".to_vec(), b"1".to_vec());
        b.put(Cf::Kv, b"a".to_vec(), b"3".to_vec());
        let order: Vec<String> = in_insert_order(b.ops())
            .iter()
            .map(|op| match op {
                WriteOp::Put { cf, key, value } => {
                    format!("put {} {}={}", cf.name(), String::from_utf8_lossy(key), String::from_utf8_lossy(value))
                }
                WriteOp::Delete { cf, key } => format!("delete {} {}", cf.name(), String::from_utf8_lossy(key)),
                WriteOp::DeleteRange { .. } => "range".to_string(),
            })
            .collect();
        // Runs sorted by family and key, one key's operations in their
        // order, nothing moved across the range delete.
        assert_eq!(
            order,
            [
                "put kv a=1",
                "put kv b=1",
                "delete kv b",
                "put kv b=2",
                "put meta m=1",
                "range",
                "put kv a=3",
                "put kv c=1"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(dir.path()).unwrap();
        e.write(b, true).unwrap();
        assert_eq!(e.get(Cf::Kv, b"a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(e.get(Cf::Kv, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(e.get(Cf::Kv, b"c").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(Cf::Meta, b"m").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn defragment_gives_back_deleted_space() {
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(dir.path()).unwrap();
        let value = vec![7u8; 4096];
        for chunk in 0..20 {
            let mut b = WriteBatch::new();
            for i in 0..100u32 {
                b.put(Cf::Kv, (chunk * 100 + i).to_be_bytes().to_vec(), value.clone());
            }
            e.write(b, true).unwrap();
        }
        let full = e.db_size();
        assert!(full.total > 4_000_000 && full.in_use <= full.total, "{full:?}");
        let mut b = WriteBatch::new();
        b.delete_range(Cf::Kv, 0u32.to_be_bytes().to_vec(), u32::MAX.to_be_bytes().to_vec());
        e.write(b, true).unwrap();
        e.defragment().unwrap();
        let after = e.db_size();
        assert!(after.total < full.total / 10, "{full:?} -> {after:?}");
        assert!(after.in_use <= after.total);
        assert_eq!(e.get(Cf::Kv, &5u32.to_be_bytes()).unwrap(), None);
    }
}
