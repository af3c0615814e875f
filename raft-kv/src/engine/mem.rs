//! [`MemEngine`]: an in-memory engine that models what a crash loses.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{checksum, Cf, DbSize, Engine, Maintain, ReadView, WriteBatch, WriteOp};
use crate::{keys, Result};

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

/// The column families of one store state.
#[derive(Debug, Clone, Default)]
struct Trees([Tree; 5]);

impl Trees {
    fn cf(&self, cf: Cf) -> &Tree {
        &self.0[cf as usize]
    }

    fn apply(&mut self, batch: &WriteBatch) {
        for op in batch.ops() {
            match op {
                WriteOp::Put { cf, key, value } => {
                    self.0[*cf as usize].insert(key.clone(), value.clone());
                }
                WriteOp::Delete { cf, key } => {
                    self.0[*cf as usize].remove(key);
                }
                WriteOp::DeleteRange { cf, start, end } => {
                    let tree = &mut self.0[*cf as usize];
                    if start < end {
                        let doomed: Vec<Vec<u8>> = tree
                            .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in doomed {
                            tree.remove(&k);
                        }
                    }
                }
            }
        }
    }

    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        if let Some(e) = end {
            if e <= start {
                return;
            }
        }
        for (k, v) in self.cf(cf).range::<[u8], _>((Bound::Included(start), upper)) {
            if !visit(k, v) {
                break;
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// What reads see: every write so far. Shared with the snapshots taken
    /// since the last write (copied on the next write only while one is
    /// alive), so a snapshot costs no copy of the store.
    visible: Arc<Trees>,
    /// What survives a crash: every write up to the last synced one.
    durable: Trees,
    /// Writes since the last synced one, oldest first.
    unsynced: Vec<WriteBatch>,
    /// A fault armed for the next write it applies to.
    armed: Option<DiskFault>,
    /// Injected faults that fired (a write or fsync that returned an error).
    fired: u64,
    /// Power is off ([`DiskFault::CrashAfter`] fired): every write fails
    /// until the crash is carried out.
    powered_off: bool,
    /// A value reads see with a flipped bit ([`MemEngine::corrupt_read`]).
    corrupted: Option<Corrupted>,
    /// The write power was lost in ([`DiskFault::CrashAfter`]): it failed,
    /// and a crash may tear it ([`MemEngine::crash_torn`]).
    in_flight: Option<WriteBatch>,
}

/// A stored value reads see with a flipped bit: column family, key, the
/// true stored bytes and the wrong ones.
type Corrupted = (Cf, Vec<u8>, Vec<u8>, Vec<u8>);

/// A disk fault [`MemEngine::arm`] plants for the next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// The next write fails and changes nothing.
    FailWrite,
    /// The next synced write reaches the page cache (reads see it) but its
    /// fsync fails: it is not durable, and neither is anything before it
    /// that was not synced already, even after a later successful fsync.
    /// After a failed fsync the only safe course for the caller is to stop.
    FailSync,
    /// Power is lost after this many more writes succeed: the next write
    /// and every one after it fail until [`MemEngine::crash_keeping`] (or a
    /// sibling) carries the crash out. Lets a crash fall between any two
    /// writes, also between two synced writes of one step or inside
    /// `Peer::open`.
    CrashAfter(u32),
}

/// An in-memory [`Engine`] for the simulator and for tests.
///
/// It keeps synced and unsynced writes apart: [`MemEngine::crash`] drops every
/// write made since the last synced one, as a power loss would with RocksDB
/// (whose write-ahead log is shared by all column families, so a synced write
/// also makes earlier unsynced writes durable — modelled here the same way).
///
/// ```
/// use raft_kv::engine::{Cf, Engine, MemEngine, ReadView, WriteBatch};
/// let engine = MemEngine::new();
/// let mut b = WriteBatch::new();
/// b.put(Cf::Kv, b"durable".to_vec(), b"1".to_vec());
/// engine.write(b, true).unwrap();
/// let mut b = WriteBatch::new();
/// b.put(Cf::Kv, b"volatile".to_vec(), b"2".to_vec());
/// engine.write(b, false).unwrap();
/// engine.crash();
/// assert!(engine.get(Cf::Kv, b"durable").unwrap().is_some());
/// assert!(engine.get(Cf::Kv, b"volatile").unwrap().is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemEngine {
    state: Arc<Mutex<State>>,
}

impl MemEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash or power loss: every write not yet made durable by
    /// a synced write is lost.
    pub fn crash(&self) {
        self.crash_keeping(0);
    }

    /// Simulates a crash in which the first `keep` unsynced batches happened
    /// to reach the disk before power was lost (a write-ahead log persists a
    /// prefix of its writes, never a hole).
    pub fn crash_keeping(&self, keep: usize) {
        let mut st = self.state.lock();
        let keep = keep.min(st.unsynced.len());
        let kept: Vec<WriteBatch> = st.unsynced.drain(..keep).collect();
        for b in &kept {
            st.durable.apply(b);
        }
        st.unsynced.clear();
        st.visible = Arc::new(st.durable.clone());
        st.armed = None;
        st.powered_off = false;
        st.corrupted = None;
        st.in_flight = None;
    }

    /// Simulates a crash during the write of unsynced batch `keep` (0-based;
    /// one past the last: the write power was lost in): the batches before
    /// it reached the disk, and the first `torn_ops` operations of that one
    /// were half-written at the log's tail. Like
    /// RocksDB's write-ahead log, whose records carry checksums, recovery
    /// detects the torn record and drops it with everything after it, so a
    /// batch survives whole or not at all.
    pub fn crash_torn(&self, keep: usize, torn_ops: usize) {
        let st = self.state.lock();
        let keep = keep.min(st.unsynced.len());
        let torn = st.unsynced.get(keep).or(st.in_flight.as_ref()).cloned();
        drop(st);
        self.crash_keeping(keep);
        if let Some(torn) = torn.filter(|_| crate::mutation::active("crash-keeps-torn-write")) {
            let mut partial = WriteBatch::new();
            for op in torn.ops().iter().take(torn_ops) {
                match op.clone() {
                    WriteOp::Put { cf, key, value } => partial.put(cf, key, value),
                    WriteOp::Delete { cf, key } => partial.delete(cf, key),
                    WriteOp::DeleteRange { cf, start, end } => partial.delete_range(cf, start, end),
                }
            }
            let mut st = self.state.lock();
            st.durable.apply(&partial);
            st.visible = Arc::new(st.durable.clone());
        }
    }

    /// Number of batches that a crash would lose right now.
    pub fn unsynced_batches(&self) -> usize {
        self.state.lock().unsynced.len()
    }

    /// Operations in unsynced batch `i` (one past the last: the write power
    /// was lost in; 0 if there is none).
    pub fn unsynced_ops(&self, i: usize) -> usize {
        let st = self.state.lock();
        let batch = if i == st.unsynced.len() { st.in_flight.as_ref() } else { st.unsynced.get(i) };
        batch.map_or(0, |b| b.len())
    }

    /// Arms `fault` for the next write it applies to (replacing one armed
    /// before and not yet fired). A crash disarms it.
    pub fn arm(&self, fault: DiskFault) {
        self.state.lock().armed = Some(fault);
    }

    /// Makes reads return wrong bytes, as a bad disk or cable does: one bit
    /// of one stored value flips in what reads and later snapshots see, not
    /// in what is durable, until a crash or [`MemEngine::repair`]. Its
    /// checksum no longer matches, so reads of it fail with
    /// [`crate::Error::Corruption`]. `pick` picks the value: one time in
    /// four a raft log entry, otherwise the newest stored version of an MVCC
    /// key (the versions reads meet most). False if there is no such value
    /// or one is corrupted already.
    pub fn corrupt_read(&self, pick: u64) -> bool {
        let mut st = self.state.lock();
        if st.corrupted.is_some() {
            return false; // one at a time, so that repair finds it
        }
        let (cf, candidates): (Cf, Vec<&Vec<u8>>) = if (pick >> 24).is_multiple_of(4) {
            let entries = st.visible.cf(Cf::Raft).keys().filter(|k| k.len() == 9 && k[0] == keys::ENTRY_PREFIX);
            (Cf::Raft, entries.collect())
        } else {
            // The first (newest) stored version of each user key (the part
            // before the first 0 byte).
            let mut versions: Vec<&Vec<u8>> = Vec::new();
            let mut last_user: Option<&[u8]> = None;
            for k in st.visible.cf(Cf::Kv).keys() {
                let user = k.split(|&b| b == 0).next().unwrap_or(k);
                if last_user != Some(user) {
                    versions.push(k);
                    last_user = Some(user);
                }
            }
            (Cf::Kv, versions)
        };
        let Some(key) = candidates.get((pick % candidates.len().max(1) as u64) as usize).map(|k| k.to_vec()) else {
            return false;
        };
        let found = st.visible.cf(cf).get_key_value(&key);
        let Some((key, stored)) = found.map(|(k, v)| (k.clone(), v.clone())) else { return false };
        let payload = stored.len().saturating_sub(checksum::CHECKSUM_BYTES).max(1);
        let mut bad = stored.clone();
        // A low bit of one of the last bytes: in an MVCC version, most often
        // a digit of the value turned into another (wrong but well-formed).
        let byte = payload.saturating_sub(1 + (pick >> 16) as usize % 2).min(bad.len().saturating_sub(1));
        if let Some(b) = bad.get_mut(byte) {
            *b ^= 1 << ((pick >> 8) % 3);
        }
        Arc::make_mut(&mut st.visible).0[cf as usize].insert(key.clone(), bad.clone());
        st.corrupted = Some((cf, key, stored, bad));
        true
    }

    /// Undoes [`MemEngine::corrupt_read`] for later reads (unless the value
    /// was rewritten since); snapshots taken before keep the wrong bytes.
    pub fn repair(&self) {
        let mut st = self.state.lock();
        let Some((cf, key, good, bad)) = st.corrupted.clone() else { return };
        if st.visible.cf(cf).get(&key) == Some(&bad) {
            Arc::make_mut(&mut st.visible).0[cf as usize].insert(key, good);
        }
    }

    /// True from a [`MemEngine::corrupt_read`] to the next crash: a read
    /// (or a snapshot) may meet the wrong bytes.
    pub fn corrupted(&self) -> bool {
        self.state.lock().corrupted.is_some()
    }

    /// How many armed faults have fired so far.
    pub fn faults_fired(&self) -> u64 {
        self.state.lock().fired
    }
}

impl ReadView for MemEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        checksum::unseal_owned(cf, key, self.state.lock().visible.cf(cf).get(key).cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        // Copy out the range first so the visitor may call back into the engine.
        let mut items = Vec::new();
        self.state.lock().visible.scan(cf, start, end, &mut |k, v| {
            items.push((k.to_vec(), v.to_vec()));
            true
        });
        checksum::scan_unsealed(cf, visit, |visit| {
            for (k, v) in items {
                if !visit(&k, &v) {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// A frozen copy of a [`MemEngine`]'s visible state.
#[derive(Debug, Clone)]
pub struct MemSnapshot {
    trees: Arc<Trees>,
}

impl ReadView for MemSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        checksum::unseal_owned(cf, key, self.trees.cf(cf).get(key).cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        checksum::scan_unsealed(cf, visit, |visit| {
            self.trees.scan(cf, start, end, visit);
            Ok(())
        })
    }
}

impl Engine for MemEngine {
    type Snapshot = MemSnapshot;

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let batch = checksum::seal_batch(batch);
        let mut st = self.state.lock();
        if st.powered_off {
            return Err(crate::Error::storage("injected fault: power lost"));
        }
        match st.armed {
            Some(DiskFault::CrashAfter(0)) => {
                st.armed = None;
                st.fired += 1;
                st.powered_off = true;
                st.in_flight = Some(batch);
                return Err(crate::Error::storage("injected fault: power lost"));
            }
            Some(DiskFault::CrashAfter(n)) => st.armed = Some(DiskFault::CrashAfter(n - 1)),
            Some(DiskFault::FailWrite) => {
                st.armed = None;
                st.fired += 1;
                return Err(crate::Error::storage("injected fault: write failed"));
            }
            Some(DiskFault::FailSync) if sync => {
                st.armed = None;
                st.fired += 1;
                // As with Linux after a failed fsync, the dirty pages are
                // dropped from the write-back queue: reads still see them,
                // a later fsync does not make them durable, a crash loses
                // them (a hole behind later synced writes).
                Arc::make_mut(&mut st.visible).apply(&batch);
                st.unsynced.clear();
                return Err(crate::Error::storage("injected fault: fsync failed"));
            }
            _ => {}
        }
        Arc::make_mut(&mut st.visible).apply(&batch);
        st.unsynced.push(batch);
        if sync && !crate::mutation::active("fsync-noop") {
            let pending = std::mem::take(&mut st.unsynced);
            for b in &pending {
                st.durable.apply(b);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> MemSnapshot {
        MemSnapshot { trees: Arc::clone(&self.state.lock().visible) }
    }
}

/// A map holds no dead data: both sizes are the live keys and values, and
/// defragmenting has nothing to do.
impl Maintain for MemEngine {
    fn db_size(&self) -> DbSize {
        let st = self.state.lock();
        let live = st.visible.0.iter().flat_map(|t| t.iter()).map(|(k, v)| (k.len() + v.len()) as u64).sum();
        DbSize { total: live, in_use: live }
    }

    fn defragment(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(e: &MemEngine, k: &[u8], sync: bool) {
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, k.to_vec(), b"v".to_vec());
        e.write(b, sync).unwrap();
    }

    fn keys(e: &impl ReadView) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        e.scan(Cf::Kv, b"", None, &mut |k, _| {
            out.push(k.to_vec());
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn crash_drops_only_unsynced_writes() {
        let e = MemEngine::new();
        put(&e, b"a", true);
        put(&e, b"b", false);
        assert_eq!(keys(&e), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(e.unsynced_batches(), 1);
        e.crash();
        assert_eq!(keys(&e), vec![b"a".to_vec()]);
        assert_eq!(e.unsynced_batches(), 0);
    }

    #[test]
    fn synced_write_makes_earlier_unsynced_writes_durable() {
        let e = MemEngine::new();
        put(&e, b"a", false);
        put(&e, b"b", false);
        put(&e, b"c", true);
        put(&e, b"d", false);
        e.crash();
        assert_eq!(keys(&e), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn crash_keeping_persists_a_prefix_of_unsynced_batches() {
        let e = MemEngine::new();
        put(&e, b"a", false);
        put(&e, b"b", false);
        put(&e, b"c", false);
        e.crash_keeping(2);
        assert_eq!(keys(&e), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn crash_undoes_unsynced_deletes() {
        let e = MemEngine::new();
        put(&e, b"a", true);
        let mut b = WriteBatch::new();
        b.delete_range(Cf::Kv, b"a".to_vec(), b"z".to_vec());
        e.write(b, false).unwrap();
        assert!(keys(&e).is_empty());
        e.crash();
        assert_eq!(keys(&e), vec![b"a".to_vec()]);
    }

    fn try_put(e: &MemEngine, k: &[u8], sync: bool) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, k.to_vec(), b"v".to_vec());
        e.write(b, sync)
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let e = MemEngine::new();
        e.arm(DiskFault::FailWrite);
        assert!(try_put(&e, b"a", true).is_err());
        assert!(keys(&e).is_empty());
        assert_eq!(e.faults_fired(), 1);
        put(&e, b"b", true);
        assert_eq!(keys(&e), vec![b"b".to_vec()]);
    }

    #[test]
    fn a_failed_fsync_leaves_a_hole_a_crash_exposes() {
        let e = MemEngine::new();
        put(&e, b"a", false);
        e.arm(DiskFault::FailSync);
        put(&e, b"b", false); // unsynced writes do not trip it
        assert!(try_put(&e, b"c", true).is_err());
        assert_eq!(keys(&e).len(), 3, "reads still see the page cache");
        put(&e, b"d", true);
        e.crash();
        assert_eq!(keys(&e), vec![b"d".to_vec()], "a later fsync did not save what the failed one lost");
    }

    #[test]
    fn power_loss_after_n_writes_fails_every_later_write_until_the_crash() {
        let e = MemEngine::new();
        e.arm(DiskFault::CrashAfter(1));
        put(&e, b"a", true);
        assert!(try_put(&e, b"b", true).is_err());
        assert!(try_put(&e, b"c", false).is_err());
        assert_eq!(e.faults_fired(), 1);
        e.crash();
        put(&e, b"d", true);
        assert_eq!(keys(&e), vec![b"a".to_vec(), b"d".to_vec()]);
    }

    #[test]
    fn a_torn_batch_is_dropped_whole() {
        let e = MemEngine::new();
        put(&e, b"a", false);
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, b"b".to_vec(), b"v".to_vec());
        b.put(Cf::Kv, b"c".to_vec(), b"v".to_vec());
        e.write(b, false).unwrap();
        assert_eq!(e.unsynced_ops(1), 2);
        e.crash_torn(1, 1);
        assert_eq!(keys(&e), vec![b"a".to_vec()]);
    }

    #[test]
    fn snapshot_is_frozen() {
        let e = MemEngine::new();
        put(&e, b"a", false);
        let snap = e.snapshot();
        put(&e, b"b", false);
        assert_eq!(keys(&snap), vec![b"a".to_vec()]);
        assert_eq!(keys(&e).len(), 2);
    }

    #[test]
    fn scan_respects_bounds_and_early_stop() {
        let e = MemEngine::new();
        for k in [b"a", b"b", b"c", b"d"] {
            put(&e, k, false);
        }
        let mut seen = Vec::new();
        e.scan(Cf::Kv, b"b", Some(b"d"), &mut |k, _| {
            seen.push(k.to_vec());
            true
        })
        .unwrap();
        assert_eq!(seen, vec![b"b".to_vec(), b"c".to_vec()]);
        let mut n = 0;
        e.scan(Cf::Kv, b"", None, &mut |_, _| {
            n += 1;
            n < 2
        })
        .unwrap();
        assert_eq!(n, 2);
    }
}
