//! [`RaftLog`]: raft-rs [`Storage`] over an [`Engine`].
//!
//! The log lives in [`Cf::Raft`]: one key per entry (`keys::entry_key`), the
//! hard state, and the truncation point left by log compaction. The conf state
//! and applied index live with the state machine in [`Cf::Meta`] so they move
//! atomically with applied data. Recent entries are cached in memory so the
//! leader never reads the engine to replicate fresh entries.
//!
//! Writes are *staged*: [`RaftLog::append`] and friends update the in-memory
//! view at once (raft-rs must see them) and add the matching operations to a
//! caller's [`WriteBatch`], which the driver persists with one synced write
//! per Ready.
//!
//! raft-rs reads entries back from storage as soon as a Ready is advanced,
//! before its write reached the engine (a follower checks a duplicated
//! append against them, a leader replicates them). So the cache keeps every
//! entry whose write may still be in flight, however far past its limit:
//! [`RaftLog::staged`] ties the entries appended since the last call to
//! their write, [`RaftLog::written`] releases them once the engine has it.

use std::collections::{BTreeMap, VecDeque};

use parking_lot::Mutex;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::core::integrity::Integrity;
use crate::core::snapshot;
use crate::engine::{Cf, Engine, WriteBatch};
use crate::keys::decode_u64;
use crate::{keys, Error, Result};

/// The raft log of one member. See the module docs.
pub struct RaftLog<E: Engine> {
    engine: E,
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last entry removed by compaction (or of the
    /// last snapshot installed); the log starts right after it.
    truncated: (u64, u64),
    last_index: u64,
    /// The newest entries, contiguous, ending at `last_index`.
    cache: VecDeque<Entry>,
    cache_limit: usize,
    /// The lowest index appended since the last [`RaftLog::staged`].
    appended_from: Option<u64>,
    /// Writes that may not have reached the engine yet, oldest first: their
    /// number and the lowest index they append. Those entries stay cached.
    unwritten: VecDeque<(u64, u64)>,
    /// Engine views of snapshots handed to raft, by id, until the peer
    /// streams them (see [`crate::core::snapshot`]).
    outgoing: Mutex<(u64, BTreeMap<u64, E::Snapshot>)>,
    /// Where a corrupt entry read for raft is recorded before raft-rs
    /// panics on it (see [`crate::core::integrity`]).
    integrity: Integrity,
}

/// Snapshot views kept for streaming at most; older ones are dropped.
const MAX_OUTGOING_SNAPSHOTS: usize = 4;

fn storage_err(e: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl<E: Engine> RaftLog<E> {
    /// Loads the log's state from `engine`. `cache_limit` bounds the number of
    /// entries kept in memory.
    pub fn open(engine: E, cache_limit: usize) -> Result<Self> {
        let hard_state = match engine.get(Cf::Raft, keys::HARD_STATE)? {
            Some(v) => HardState::parse_from_bytes(&v)?,
            None => HardState::default(),
        };
        let conf_state = match engine.get(Cf::Meta, keys::CONF_STATE)? {
            Some(v) => ConfState::parse_from_bytes(&v)?,
            None => ConfState::default(),
        };
        let truncated = match engine.get(Cf::Raft, keys::TRUNCATED)? {
            Some(v) if v.len() == 16 => (decode_u64(&v[..8])?, decode_u64(&v[8..])?),
            Some(v) => return Err(Error::Corruption(format!("truncated state of {} bytes", v.len()))),
            None => (0, 0),
        };
        let mut last_index = truncated.0;
        let start = keys::entry_key(truncated.0 + 1);
        let end = [keys::ENTRY_PREFIX + 1];
        // Find the last entry: entries are contiguous after `truncated`.
        let mut expect = truncated.0 + 1;
        let mut gap = None;
        engine.scan(Cf::Raft, &start, Some(&end), &mut |k, _| {
            let idx = k.get(1..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
            if idx == Some(expect) {
                last_index = expect;
                expect += 1;
                true
            } else {
                gap = Some(idx);
                false
            }
        })?;
        if let Some(idx) = gap {
            return Err(Error::Corruption(format!("raft log has a gap: expected entry {expect}, found {idx:?}")));
        }
        Ok(RaftLog {
            engine,
            hard_state,
            conf_state,
            truncated,
            last_index,
            cache: VecDeque::new(),
            cache_limit,
            appended_from: None,
            unwritten: VecDeque::new(),
            outgoing: Mutex::new((0, BTreeMap::new())),
            integrity: Integrity::new(),
        })
    }

    /// Records corrupt entries read for raft in `integrity` (shared with
    /// the peer that owns the log).
    pub fn share_integrity(&mut self, integrity: &Integrity) {
        self.integrity = integrity.clone();
    }

    /// The engine under the log.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Takes the engine view of snapshot `id` for streaming.
    pub fn take_outgoing(&self, id: u64) -> Option<E::Snapshot> {
        self.outgoing.lock().1.remove(&id)
    }

    /// The persisted hard state (as staged).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The conf state as of the last applied entry or snapshot.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Index of the first entry still in the log.
    pub fn first(&self) -> u64 {
        self.truncated.0 + 1
    }

    /// Index of the last entry.
    pub fn last(&self) -> u64 {
        self.last_index
    }

    /// Stages a new hard state.
    pub fn set_hard_state(&mut self, hs: HardState, wb: &mut WriteBatch) -> Result<()> {
        wb.put(Cf::Raft, keys::HARD_STATE.to_vec(), hs.write_to_bytes()?);
        self.hard_state = hs;
        Ok(())
    }

    /// Records a new conf state (the caller writes it with the apply batch).
    pub fn set_conf_state(&mut self, cs: ConfState, wb: &mut WriteBatch) -> Result<()> {
        if !crate::mutation::active("conf-state-not-persisted") {
            wb.put(Cf::Meta, keys::CONF_STATE.to_vec(), cs.write_to_bytes()?);
        }
        self.conf_state = cs;
        Ok(())
    }

    /// Stages `entries`, replacing any conflicting suffix of the log.
    pub fn append(&mut self, entries: &[Entry], wb: &mut WriteBatch) -> Result<()> {
        let Some(first_new) = entries.first().map(|e| e.index) else { return Ok(()) };
        if first_new <= self.truncated.0 {
            return Err(Error::Raft(format!(
                "append at {first_new} overlaps the compacted log (truncated at {})",
                self.truncated.0
            )));
        }
        if first_new > self.last_index + 1 {
            return Err(Error::Raft(format!("append at {first_new} leaves a gap after {}", self.last_index)));
        }
        let new_last = first_new + entries.len() as u64 - 1;
        if new_last < self.last_index {
            wb.delete_range(
                Cf::Raft,
                keys::entry_key(new_last + 1).to_vec(),
                keys::entry_key(self.last_index + 1).to_vec(),
            );
        }
        for e in entries {
            wb.put(Cf::Raft, keys::entry_key(e.index).to_vec(), e.write_to_bytes()?);
        }
        // Keep the cache contiguous and ending at the new last index.
        while self.cache.back().is_some_and(|e| e.index >= first_new) {
            self.cache.pop_back();
        }
        if self.cache.back().is_some_and(|e| e.index + 1 != first_new) {
            self.cache.clear();
        }
        self.cache.extend(entries.iter().cloned());
        self.appended_from = Some(self.appended_from.map_or(first_new, |f| f.min(first_new)));
        self.last_index = new_last;
        self.trim_cache();
        Ok(())
    }

    /// The entries appended since the last call go to the engine with write
    /// `number`: until [`RaftLog::written`] reports it, they stay cached.
    pub fn staged(&mut self, number: u64) {
        if let Some(first) = self.appended_from.take() {
            self.unwritten.push_back((number, first));
        }
    }

    /// Every write up to `number` reached the engine: its entries may leave
    /// the cache.
    pub fn written(&mut self, number: u64) {
        while self.unwritten.pop_front_if(|(n, _)| *n <= number).is_some() {}
        self.trim_cache();
    }

    /// Drops the oldest cached entries past the limit, but none a write in
    /// flight holds.
    fn trim_cache(&mut self) {
        let pinned =
            (self.unwritten.iter().map(|(_, first)| *first)).chain(self.appended_from).min().unwrap_or(u64::MAX);
        while self.cache.len() > self.cache_limit && self.cache.front().is_some_and(|e| e.index < pinned) {
            self.cache.pop_front();
        }
    }

    /// Stages removal of every entry up to and including `index` (which must
    /// be applied). Entries above it stay.
    pub fn compact(&mut self, index: u64, wb: &mut WriteBatch) -> Result<()> {
        if index <= self.truncated.0 {
            return Ok(());
        }
        if index > self.last_index {
            return Err(Error::Raft(format!("compact to {index} beyond last index {}", self.last_index)));
        }
        let term = self.term_of(index)?;
        wb.delete_range(Cf::Raft, keys::entry_key(self.first()).to_vec(), keys::entry_key(index + 1).to_vec());
        wb.put(Cf::Raft, keys::TRUNCATED.to_vec(), truncated_value(index, term));
        self.truncated = (index, term);
        while self.cache.front().is_some_and(|e| e.index <= index) {
            self.cache.pop_front();
        }
        Ok(())
    }

    /// Stages installing a snapshot's log position: the whole log is replaced
    /// by the snapshot's index and term (the state-machine part is staged by
    /// the caller).
    pub fn apply_snapshot_meta(&mut self, meta: &SnapshotMetadata, wb: &mut WriteBatch) -> Result<()> {
        // Every stored entry goes: one range delete, however long the log.
        wb.delete_range(Cf::Raft, vec![keys::ENTRY_PREFIX], vec![keys::ENTRY_PREFIX + 1]);
        wb.put(Cf::Raft, keys::TRUNCATED.to_vec(), truncated_value(meta.index, meta.term));
        self.truncated = (meta.index, meta.term);
        self.last_index = meta.index;
        self.cache.clear();
        let mut hs = self.hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        self.set_hard_state(hs, wb)?;
        self.set_conf_state(meta.get_conf_state().clone(), wb)
    }

    fn term_of(&self, idx: u64) -> Result<u64> {
        if idx == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        Ok(self.entry(idx)?.term)
    }

    fn entry(&self, idx: u64) -> Result<Entry> {
        if let Some(front) = self.cache.front() {
            if idx >= front.index {
                if let Some(e) = self.cache.get((idx - front.index) as usize) {
                    return Ok(e.clone());
                }
            }
        }
        match self.engine.get(Cf::Raft, &keys::entry_key(idx))? {
            Some(v) => Ok(Entry::parse_from_bytes(&v)?),
            None => Err(Error::Corruption(format!("raft log entry {idx} missing"))),
        }
    }

    fn read_entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        // Takes `e` unless it would push the batch over `max_size` (the first
        // entry is always taken, as raft-rs expects).
        let mut take = |e: Entry, out: &mut Vec<Entry>| {
            size += u64::from(e.compute_size());
            if max_size.is_some_and(|m| size > m) && !out.is_empty() {
                return false;
            }
            out.push(e);
            true
        };
        let cache_start = self.cache.front().map_or(u64::MAX, |e| e.index);
        if low < cache_start {
            let stop = high.min(cache_start);
            let mut result = Ok(());
            let mut full = false;
            self.engine.scan(Cf::Raft, &keys::entry_key(low), Some(&keys::entry_key(stop)), &mut |_, v| {
                match Entry::parse_from_bytes(v) {
                    Ok(e) => {
                        full = !take(e, &mut out);
                        !full
                    }
                    Err(e) => {
                        result = Err(Error::from(e));
                        false
                    }
                }
            })?;
            result?;
            if full {
                return Ok(out);
            }
            if (out.len() as u64) < stop - low {
                return Err(Error::Corruption(format!("raft log entries {low}..{stop} incomplete")));
            }
        }
        for idx in low.max(cache_start)..high {
            if !take(self.cache[(idx - cache_start) as usize].clone(), &mut out) {
                break;
            }
        }
        Ok(out)
    }
}

fn truncated_value(index: u64, term: u64) -> Vec<u8> {
    let mut v = index.to_be_bytes().to_vec();
    v.extend_from_slice(&term.to_be_bytes());
    v
}

impl<E: Engine> Storage for RaftLog<E> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.integrity.check(self.read_entries(low, high, max_size.into())).map_err(storage_err)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.integrity.check(self.term_of(idx)).map_err(storage_err)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let view = self.engine.snapshot();
        let mut out = self.outgoing.lock();
        out.0 += 1;
        let id = out.0;
        let snap = snapshot::descriptor(&view, id).map_err(storage_err)?;
        if snap.get_metadata().index < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        out.1.insert(id, view);
        while out.1.len() > MAX_OUTGOING_SNAPSHOTS {
            out.1.pop_first();
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MemEngine;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, data: vec![index as u8; 10].into(), ..Default::default() }
    }

    fn persist(log: &mut RaftLog<MemEngine>, f: impl FnOnce(&mut RaftLog<MemEngine>, &mut WriteBatch)) {
        let mut wb = WriteBatch::new();
        f(log, &mut wb);
        log.engine().write(wb, true).unwrap();
    }

    #[test]
    fn entries_of_a_write_in_flight_stay_readable_past_the_cache_limit() {
        let engine = MemEngine::new();
        let mut log = RaftLog::open(engine.clone(), 2).unwrap();
        // Write 1 appends 1..=5 and is still in flight (not in the engine):
        // raft-rs may read every one of them back at once.
        let mut wb = WriteBatch::new();
        log.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>(), &mut wb).unwrap();
        log.staged(1);
        let all = log.entries(1, 6, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(all.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert_eq!(log.term(1).unwrap(), 1);
        // Once written, the cache shrinks to its limit and the rest is read
        // from the engine.
        engine.write(wb, true).unwrap();
        log.written(1);
        assert_eq!(log.cache.len(), 2);
        let all = log.entries(1, 6, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn append_overwrite_compact_and_reopen() {
        let engine = MemEngine::new();
        let mut log = RaftLog::open(engine.clone(), 3).unwrap();
        persist(&mut log, |l, wb| l.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>(), wb).unwrap());
        assert_eq!((log.first(), log.last()), (1, 5));
        // Conflicting suffix from a new leader replaces 4..=5 with 4 only.
        persist(&mut log, |l, wb| l.append(&[entry(4, 2)], wb).unwrap());
        assert_eq!(log.last(), 4);
        assert_eq!(log.term(4).unwrap(), 2);
        assert_eq!(log.term(3).unwrap(), 1);
        let ents = log.entries(1, 5, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(ents.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), vec![(1, 1), (2, 1), (3, 1), (4, 2)]);
        persist(&mut log, |l, wb| l.compact(2, wb).unwrap());
        assert_eq!(log.first(), 3);
        assert_eq!(log.term(2).unwrap(), 1);
        assert!(matches!(log.term(1), Err(raft::Error::Store(StorageError::Compacted))));
        assert!(matches!(
            log.entries(2, 4, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            log.entries(3, 6, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
        let hs = HardState { term: 2, commit: 4, ..Default::default() };
        persist(&mut log, |l, wb| l.set_hard_state(hs.clone(), wb).unwrap());

        let reopened = RaftLog::open(engine, 3).unwrap();
        assert_eq!((reopened.first(), reopened.last()), (3, 4));
        assert_eq!(reopened.hard_state(), &hs);
        let ents = reopened.entries(3, 5, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(ents, vec![entry(3, 1), entry(4, 2)]);
    }

    #[test]
    fn entries_respect_max_size_but_return_at_least_one() {
        let engine = MemEngine::new();
        let mut log = RaftLog::open(engine.clone(), 2).unwrap();
        persist(&mut log, |l, wb| l.append(&(1..=6).map(|i| entry(i, 1)).collect::<Vec<_>>(), wb).unwrap());
        let one = log.entries(1, 7, Some(1), GetEntriesContext::empty(false)).unwrap();
        assert_eq!(one.len(), 1);
        let all = log.entries(1, 7, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(all.len(), 6);
        // Part from the engine, part from the cache.
        let mixed = log.entries(3, 7, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(mixed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    }

    #[test]
    fn crash_loses_unsynced_append() {
        let engine = MemEngine::new();
        let mut log = RaftLog::open(engine.clone(), 10).unwrap();
        persist(&mut log, |l, wb| l.append(&[entry(1, 1)], wb).unwrap());
        let mut wb = WriteBatch::new();
        log.append(&[entry(2, 1)], &mut wb).unwrap();
        engine.write(wb, false).unwrap();
        engine.crash();
        assert_eq!(RaftLog::open(engine, 10).unwrap().last(), 1);
    }
}
