//! The replicated state machine: an etcd-style multi-version key-value store.
//!
//! [`Mvcc`] keeps every version of every key in [`Cf::Kv`] (layout in
//! [`encoding`]) and an in-memory index of the live keys. The store has one
//! *revision* counter, 1 for an empty store, that every change advances by
//! one; all writes of a transaction share one revision. Reads are served at
//! the current revision from the index, or at a past revision from the
//! history, down to the *compact revision* below which history was dropped.
//!
//! Writes are applied in memory first: [`Mvcc::apply`] stages them in an
//! overlay that reads (and later applies) see, and [`Mvcc::commit`] writes the
//! overlay, the revision counters and the caller's metadata to the engine in
//! one atomic batch.
//!
//! Compaction is logical when applied (the compact revision moves; reads
//! below it fail) and physical later: [`Mvcc::take_compaction`] hands out a
//! [`Compaction`] job that deletes the dropped versions from a snapshot view,
//! off the applying thread, so a large compaction never stalls writes. Until
//! it has run, the dropped versions are invisible: every read at or above the
//! compact revision resolves to a kept version, and [`Mvcc::hash`] skips
//! them by the same rule (`KeepRule`).

pub mod encoding;

mod compaction;
mod index;
mod read;
#[cfg(test)]
mod tests;
mod validate;
mod view;
mod write;

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::api::{Event, KeyValue};
use crate::engine::{Cf, Engine, ReadView, WriteBatch};
use crate::keys;
use crate::{Error, Result};

use encoding::{decode_key, key_prefix, Record};
use index::LiveKeys;

pub use compaction::Compaction;
pub(crate) use compaction::KeepRule;
pub use view::MvccView;

/// The revision of an empty store.
const INITIAL_REVISION: i64 = 1;

/// The index entry of a live key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyMeta {
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

impl KeyMeta {
    /// The key-value for `key` with this metadata and an empty value.
    fn to_kv(self, key: Bytes) -> KeyValue {
        KeyValue {
            key,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: Bytes::new(),
            lease: self.lease,
        }
    }
}

/// A staged change, remembered so a failed apply can be undone.
#[derive(Debug)]
enum Undo {
    /// The index entry of the key before the change.
    Index(Bytes, Option<KeyMeta>),
    /// The overlay entry of the encoded key before the change.
    Overlay(Vec<u8>, Option<Option<Vec<u8>>>),
}

/// A user-key range `[start, end)`; `end == None` means unbounded.
#[derive(Debug, Clone)]
pub(crate) struct KeyRange {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl KeyRange {
    /// The range of a request's `key` and `range_end` (etcd's rules: no end
    /// is the single key, `"\0"` is every key `>= key`).
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> Self {
        let end = match range_end {
            [] => {
                // The smallest key after `key` is `key ‖ 0x00`.
                let mut end = Vec::with_capacity(key.len() + 1);
                end.extend_from_slice(key);
                end.push(0);
                Some(end)
            }
            [0] => None,
            end => Some(end.to_vec()),
        };
        KeyRange { start: key.to_vec(), end }
    }

    fn is_empty(&self) -> bool {
        self.end.as_deref().is_some_and(|end| end <= &self.start[..])
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        key >= &self.start[..] && self.end.as_deref().is_none_or(|end| key < end)
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let end = match &self.end {
            Some(end) => Bound::Excluded(&end[..]),
            None => Bound::Unbounded,
        };
        (Bound::Included(&self.start[..]), end)
    }

    /// The key, when the range is that one key.
    fn single_key(&self) -> Option<&[u8]> {
        let end = self.end.as_deref()?;
        (end.len() == self.start.len() + 1 && end.starts_with(&self.start) && end.last() == Some(&0))
            .then_some(&self.start[..])
    }

    /// The range of engine keys holding every version of the range's keys.
    fn encoded(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        (key_prefix(&self.start), self.end.as_deref().map(key_prefix))
    }
}

/// The etcd-style multi-version key-value state machine over an [`Engine`].
///
/// Not thread-safe by itself: the owner serializes access (reads take `&self`,
/// applies `&mut self`).
pub struct Mvcc<E: Engine> {
    engine: E,
    /// Live keys at the current revision, staged writes included.
    index: LiveKeys,
    /// Staged `Cf::Kv` changes not yet committed: `Some` puts, `None` deletes.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Current revision, staged writes included.
    revision: i64,
    /// Current compact revision, staged compactions included.
    compact_revision: i64,
    /// The revision as last written to the engine.
    committed_revision: i64,
    /// The compact revision as last written to the engine.
    committed_compact_revision: i64,
    /// Changes made by the operation being applied, newest last.
    undo: Vec<Undo>,
    /// Events of applied operations not yet taken by [`Mvcc::take_events`].
    events: Vec<Event>,
    /// Whether events carry the previous value (costs a read per write).
    prev_values: bool,
    /// The most key and value bytes one range may return (see
    /// [`Mvcc::set_max_response_bytes`]).
    max_response_bytes: usize,
    /// Shared with every view handed out (see [`Mvcc::share_integrity`]).
    pub(super) integrity: crate::core::integrity::Integrity,
    /// A compaction applied (and, after the next commit, durable) whose
    /// physical deletion has not been handed out yet.
    pending_compaction: Option<i64>,
}

impl<E: Engine> std::fmt::Debug for Mvcc<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mvcc")
            .field("revision", &self.revision)
            .field("compact_revision", &self.compact_revision)
            .field("keys", &self.index.len())
            .field("staged", &self.overlay.len())
            .finish()
    }
}

impl<E: Engine> Mvcc<E> {
    /// Loads revision/compact revision from Cf::Meta (defaults: revision 1,
    /// compact 0) and rebuilds the in-memory index by scanning Cf::Kv.
    pub fn open(engine: E) -> Result<Self> {
        let revision = read_i64(&engine, keys::REVISION)?.unwrap_or(INITIAL_REVISION);
        let compact_revision = read_i64(&engine, keys::COMPACT_REVISION)?.unwrap_or(0);
        if revision < INITIAL_REVISION || compact_revision < 0 || compact_revision > revision {
            return Err(Error::Corruption(format!(
                "mvcc revision {revision} / compact revision {compact_revision} are inconsistent"
            )));
        }
        let mut index = LiveKeys::default();
        let mut newest_seen = 0;
        let mut group: Option<Vec<u8>> = None;
        engine.try_scan(Cf::Kv, b"", None, &mut |k, v| {
            let (user, rev) = decode_key(k)?;
            newest_seen = newest_seen.max(rev);
            if group.as_deref() == Some(&user[..]) {
                return Ok(true);
            }
            // The first entry of a key group is its newest version.
            let rec = Record::decode(v)?;
            if !rec.tombstone {
                let meta = KeyMeta {
                    create_revision: rec.create_revision,
                    mod_revision: rev,
                    version: rec.version,
                    lease: rec.lease,
                };
                index.insert(&user, meta);
            }
            group = Some(user);
            Ok(true)
        })?;
        if newest_seen > revision {
            return Err(Error::Corruption(format!(
                "mvcc history holds revision {newest_seen} beyond the stored revision {revision}"
            )));
        }
        Ok(Mvcc {
            engine,
            index,
            overlay: BTreeMap::new(),
            revision,
            compact_revision,
            committed_revision: revision,
            committed_compact_revision: compact_revision,
            undo: Vec::new(),
            events: Vec::new(),
            prev_values: false,
            max_response_bytes: usize::MAX,
            integrity: Default::default(),
            pending_compaction: None,
        })
    }

    /// The current revision (staged writes included).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compact revision: the oldest revision still readable (0 before the
    /// first compaction).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Number of live keys.
    pub fn key_count(&self) -> usize {
        self.index.len()
    }

    /// The events of every operation applied since the last call, in
    /// revision order (writes of one transaction in the order applied).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Bounds the key and value bytes a range ([`Mvcc::range`]) may gather:
    /// past `max` it stops reading and fails with
    /// [`Error::ResponseTooLarge`], so one read holds at most about that much
    /// in memory. A transaction's ranges are not bounded (every member must
    /// apply an entry alike, whatever its settings).
    pub fn set_max_response_bytes(&mut self, max: usize) {
        self.max_response_bytes = max;
    }

    /// Views taken from now on ([`Mvcc::view`]) record a corrupt read in
    /// `integrity` (see [`crate::core::integrity`]).
    pub fn share_integrity(&mut self, integrity: &crate::core::integrity::Integrity) {
        self.integrity = integrity.clone();
    }

    /// Whether events' `prev_kv` carry values (a read per write) or only the
    /// previous metadata (key, revisions, version, lease).
    pub fn set_prev_values(&mut self, on: bool) {
        self.prev_values = on;
    }

    /// Writes all staged writes plus `extra` (the caller's applied-index
    /// metadata) to the engine in one batch with `sync = false`, then clears
    /// the staging overlay. On `Err` the staged writes are gone: the caller
    /// must stop using this `Mvcc` (a member stops).
    pub fn commit(&mut self, extra: WriteBatch) -> Result<()> {
        let batch = self.take_batch(extra);
        if !batch.is_empty() {
            self.engine.write(batch, false)?;
        }
        Ok(())
    }

    /// [`Mvcc::commit`] for a driver that writes the batch itself: returns
    /// the staged writes, revision counters and `extra` as one batch and
    /// clears the overlay. The caller must write it (unsynced) before the
    /// next read or apply, which would otherwise miss the staged writes.
    pub fn take_batch(&mut self, extra: WriteBatch) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for (key, value) in &self.overlay {
            match value {
                Some(value) => batch.put(Cf::Kv, key.clone(), value.clone()),
                None => batch.delete(Cf::Kv, key.clone()),
            }
        }
        if self.revision != self.committed_revision {
            batch.put(Cf::Meta, keys::REVISION, self.revision.to_be_bytes());
        }
        if self.compact_revision != self.committed_compact_revision {
            batch.put(Cf::Meta, keys::COMPACT_REVISION, self.compact_revision.to_be_bytes());
        }
        batch.extend(extra);
        self.overlay.clear();
        self.committed_revision = self.revision;
        self.committed_compact_revision = self.compact_revision;
        batch
    }

    /// Every live key that has a lease, with its lease.
    pub fn leased_keys(&self) -> Vec<(Bytes, i64)> {
        self.index.iter().filter(|(_, m)| m.lease != 0).map(|(k, m)| (Bytes::copy_from_slice(k), m.lease)).collect()
    }
}

/// Reads an `i64` (big-endian) from `Cf::Meta`.
fn read_i64(engine: &impl ReadView, key: &[u8]) -> Result<Option<i64>> {
    engine
        .get(Cf::Meta, key)?
        .map(|v| {
            let bytes: [u8; 8] = v.as_slice().try_into().map_err(|_| {
                Error::Corruption(format!(
                    "meta key {:?}: expected 8 bytes, got {}",
                    String::from_utf8_lossy(key),
                    v.len()
                ))
            })?;
            Ok(i64::from_be_bytes(bytes))
        })
        .transpose()
}
