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
//! them by the same rule ([`KeepRule`]).

pub mod encoding;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;

use crate::api::{
    compare::TargetUnion, request_op, response_op, CompactionRequest, CompactionResponse, Compare, CompareResult,
    CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};
use crate::api::{Event, EventType};
use crate::command::{Op, Response};
use crate::engine::{Cf, Engine, ReadView, WriteBatch};
use crate::error::InvalidRequest;
use crate::keys;
use crate::{Error, Result};

use encoding::{decode_key, encode_key, key_prefix, Record};

/// The revision of an empty store.
const INITIAL_REVISION: i64 = 1;
/// The deepest transaction nesting accepted.
const MAX_TXN_DEPTH: usize = 64;

/// A fallible scan visitor: gets each key and value, returns `Ok(false)` to
/// stop.
type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

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
    fn to_kv(self, key: &Bytes) -> KeyValue {
        KeyValue {
            key: key.clone(),
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

/// The write context of one applied operation: all its writes share `rev`.
#[derive(Debug)]
struct Exec {
    /// The revision the operation's writes get.
    rev: i64,
    /// True once the operation has changed something.
    changed: bool,
}

impl Exec {
    /// The newest revision visible to reads made inside the operation.
    fn visible(&self) -> i64 {
        if self.changed {
            self.rev
        } else {
            self.rev - 1
        }
    }
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
    index: BTreeMap<Bytes, KeyMeta>,
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
        let mut index = BTreeMap::new();
        let mut newest_seen = 0;
        let mut group: Option<Vec<u8>> = None;
        scan_fallible(&engine, Cf::Kv, b"", None, &mut |k, v| {
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
                index.insert(Bytes::copy_from_slice(&user), meta);
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

    /// Serves a read against the current state (committed and staged).
    /// Validates the request first.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        validate_range(req)?;
        let mut resp = self.range_at(req, self.revision)?;
        resp.header = crate::api::header(self.revision);
        Ok(resp)
    }

    /// Applies one replicated operation, staging its writes in memory. On
    /// `Err` nothing is staged and the revision is unchanged.
    pub fn apply(&mut self, op: &Op) -> Result<Response> {
        Self::validate(op)?;
        let saved = (self.revision, self.compact_revision);
        let saved_events = self.events.len();
        self.undo.clear();
        let result = self.apply_op(op);
        if result.is_err() {
            self.rollback();
            self.events.truncate(saved_events);
            (self.revision, self.compact_revision) = saved;
        }
        self.undo.clear();
        result
    }

    /// The events of every operation applied since the last call, in
    /// revision order (writes of one transaction in the order applied).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Whether events' `prev_kv` carry values (a read per write) or only the
    /// previous metadata (key, revisions, version, lease).
    pub fn set_prev_values(&mut self, on: bool) {
        self.prev_values = on;
    }

    /// Every event on keys of `[key, range_end)` (etcd range rules) with
    /// revision `>= from`, oldest first, each with its previous key-value.
    /// `from` must not be below the compact revision.
    pub fn history(&self, key: &[u8], range_end: &[u8], from: i64) -> Result<Vec<Event>> {
        self.history_until(key, range_end, from, i64::MAX)
    }

    /// Like [`Mvcc::history`], but only the events with revision `<= until`
    /// (so a caller reading a window holds only that window in memory).
    pub fn history_until(&self, key: &[u8], range_end: &[u8], from: i64, until: i64) -> Result<Vec<Event>> {
        if from < self.compact_revision {
            return Err(Error::Compacted { requested: from, compact_revision: self.compact_revision });
        }
        let range = KeyRange::new(key, range_end);
        let mut events = Vec::new();
        if range.is_empty() {
            return Ok(events);
        }
        let (start, end) = range.encoded();
        // Versions come newest first per key: an event's previous version is
        // the next record of the same key.
        let mut pending: Option<(Vec<u8>, Event)> = None;
        self.scan_history(&start, end.as_deref(), &mut |k, v| {
            let (user, rev) = decode_key(k)?;
            let rec = Record::decode(v)?;
            let kv = KeyValue {
                key: Bytes::copy_from_slice(&user),
                create_revision: rec.create_revision,
                mod_revision: rev,
                version: rec.version,
                value: Bytes::from(rec.value),
                lease: rec.lease,
            };
            if let Some((pkey, mut ev)) = pending.take() {
                if pkey == user && !rec.tombstone {
                    ev.prev_kv = Some(kv.clone());
                }
                events.push(ev);
            }
            if rev >= from && rev <= until {
                let ev = if rec.tombstone {
                    let kv = KeyValue { key: kv.key, mod_revision: rev, ..Default::default() };
                    Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: None }
                } else {
                    Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None }
                };
                pending = Some((user, ev));
            }
            Ok(true)
        })?;
        events.extend(pending.map(|(_, ev)| ev));
        events.sort_by_key(|e| e.revision());
        Ok(events)
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

    /// The physical part of the compactions committed so far, if any: a job
    /// to run on any thread (see [`Compaction`]). Its deletes come after the
    /// commit that recorded the compact revision, so a crash can never keep
    /// them without it.
    pub fn take_compaction(&mut self) -> Option<Compaction<E>> {
        if self.overlay.is_empty() && self.committed_compact_revision == self.compact_revision {
            let revision = self.pending_compaction.take()?;
            return Some(Compaction { engine: self.engine.clone(), view: self.engine.snapshot(), revision });
        }
        None
    }

    /// A hash of all key-value history at or below `revision` (0: the
    /// current revision), for cross-member consistency checks like etcd's
    /// HashKV: 64-bit FNV-1a over every stored version's encoded key and
    /// value, in key order. Members that applied the same operations agree,
    /// whether or not they have committed them.
    pub fn hash(&self, revision: i64) -> Result<u64> {
        let revision = self.check_read_revision(revision, self.revision)?;
        let revision = if revision == 0 { self.revision } else { revision };
        let mut hash = Fnv64::new();
        // Versions compaction dropped may still be stored: skip them, so
        // members agree however far their physical compaction got.
        let mut keep = KeepRule::new(self.compact_revision);
        self.scan_history(b"", None, &mut |k, v| {
            let (user, rev) = decode_key(k)?;
            if keep.drops(&user, rev, v)? {
                return Ok(true);
            }
            if rev <= revision {
                hash.write(&(k.len() as u64).to_be_bytes());
                hash.write(k);
                hash.write(&(v.len() as u64).to_be_bytes());
                hash.write(v);
            }
            Ok(true)
        })?;
        Ok(hash.finish())
    }

    /// Checks an operation without looking at the store's state: empty keys,
    /// bad ranges, negative limits or revisions, unknown enum values,
    /// mismatched compare operands, duplicate keys in a transaction branch.
    pub fn validate(op: &Op) -> Result<()> {
        match op {
            Op::Put(req) => validate_put(req),
            Op::DeleteRange(req) => validate_delete(req),
            Op::Txn(req) => validate_txn(req, 0),
            Op::Compact(req) => validate_compact(req),
            // Not key-value operations: checked by their own modules.
            _ => Ok(()),
        }
    }

    /// Checks a range request without looking at the store's state.
    pub fn validate_range(req: &RangeRequest) -> Result<()> {
        validate_range(req)
    }

    /// Every live key that has a lease, with its lease.
    pub fn leased_keys(&self) -> Vec<(Bytes, i64)> {
        self.index.iter().filter(|(_, m)| m.lease != 0).map(|(k, m)| (k.clone(), m.lease)).collect()
    }

    // ---- applying -------------------------------------------------------

    fn apply_op(&mut self, op: &Op) -> Result<Response> {
        let mut exec = Exec { rev: self.revision + 1, changed: false };
        let response = match op {
            Op::Put(req) => {
                let mut resp = self.put(req, &mut exec)?;
                self.finish(&exec);
                resp.header = crate::api::header(self.revision);
                Response::Put(resp)
            }
            Op::DeleteRange(req) => {
                let mut resp = self.delete_range(req, &mut exec)?;
                self.finish(&exec);
                resp.header = crate::api::header(self.revision);
                Response::DeleteRange(resp)
            }
            Op::Txn(req) => {
                let mut resp = self.txn(req, &mut exec)?;
                self.finish(&exec);
                set_txn_revision(&mut resp, self.revision);
                Response::Txn(resp)
            }
            Op::Compact(req) => Response::Compact(self.compact(req)?),
            _ => return Err(Error::invalid("not a key-value operation")),
        };
        Ok(response)
    }

    /// Advances the revision if the finished operation changed anything.
    fn finish(&mut self, exec: &Exec) {
        if exec.changed {
            self.revision = exec.rev;
        }
    }

    fn put(&mut self, req: &PutRequest, exec: &mut Exec) -> Result<PutResponse> {
        let prev = self.index.get(&req.key).copied();
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(InvalidRequest::KeyNotFound.into());
        }
        let prev_kv = match prev {
            Some(meta) if req.prev_kv || req.ignore_value || self.prev_values => Some(self.load_kv(&req.key, meta)?),
            _ => None,
        };
        let value = match (&prev_kv, req.ignore_value) {
            (Some(kv), true) => kv.value.to_vec(),
            _ => req.value.to_vec(),
        };
        let meta = KeyMeta {
            create_revision: prev.map_or(exec.rev, |p| p.create_revision),
            mod_revision: exec.rev,
            version: prev.map_or(0, |p| p.version) + 1,
            lease: match prev {
                Some(p) if req.ignore_lease => p.lease,
                _ => req.lease,
            },
        };
        let record = Record {
            tombstone: false,
            create_revision: meta.create_revision,
            version: meta.version,
            lease: meta.lease,
            value,
        };
        self.stage(encode_key(&req.key, exec.rev), Some(record.encode()));
        self.set_index(req.key.clone(), Some(meta));
        exec.changed = true;
        let mut kv = meta.to_kv(&req.key);
        kv.value = Bytes::from(record.value);
        let event_prev = prev_kv.clone().or_else(|| prev.map(|p| p.to_kv(&req.key)));
        self.events.push(Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: event_prev });
        Ok(PutResponse { header: crate::api::header(exec.rev), prev_kv: prev_kv.filter(|_| req.prev_kv) })
    }

    fn delete_range(&mut self, req: &DeleteRangeRequest, exec: &mut Exec) -> Result<DeleteRangeResponse> {
        let doomed = self.live_keys(&KeyRange::new(&req.key, &req.range_end));
        let mut prevs = Vec::with_capacity(doomed.len());
        for (key, meta) in &doomed {
            prevs.push(if req.prev_kv || self.prev_values { self.load_kv(key, *meta)? } else { meta.to_kv(key) });
        }
        let tombstone = Record::tombstone().encode();
        for ((key, _), prev) in doomed.iter().zip(&prevs) {
            self.stage(encode_key(key, exec.rev), Some(tombstone.clone()));
            self.set_index(key.clone(), None);
            let kv = KeyValue { key: key.clone(), mod_revision: exec.rev, ..Default::default() };
            self.events.push(Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: Some(prev.clone()) });
        }
        let prev_kvs = if req.prev_kv { prevs } else { Vec::new() };
        exec.changed |= !doomed.is_empty();
        Ok(DeleteRangeResponse { header: crate::api::header(exec.visible()), deleted: doomed.len() as i64, prev_kvs })
    }

    fn txn(&mut self, req: &TxnRequest, exec: &mut Exec) -> Result<TxnResponse> {
        let mut succeeded = true;
        for cmp in &req.compare {
            if !self.compare(cmp)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    let visible = exec.visible();
                    response_op::Response::ResponseRange(self.range_at(r, visible)?)
                }
                Some(request_op::Request::RequestPut(r)) => response_op::Response::ResponsePut(self.put(r, exec)?),
                Some(request_op::Request::RequestDeleteRange(r)) => {
                    response_op::Response::ResponseDeleteRange(self.delete_range(r, exec)?)
                }
                Some(request_op::Request::RequestTxn(r)) => response_op::Response::ResponseTxn(self.txn(r, exec)?),
                None => return Err(Error::invalid("empty request op in txn")),
            };
            responses.push(ResponseOp { response: Some(response) });
        }
        Ok(TxnResponse { header: crate::api::header(exec.visible()), succeeded, responses })
    }

    /// Evaluates one compare against the current state (etcd's rules: with a
    /// range every key must satisfy it; with no key, a value compare fails and
    /// the other targets compare 0).
    fn compare(&self, cmp: &Compare) -> Result<bool> {
        let result = compare_result(cmp.result)?;
        let operand = compare_operand(cmp)?;
        let keys = self.live_keys(&KeyRange::new(&cmp.key, &cmp.range_end));
        if keys.is_empty() {
            return Ok(match operand {
                Operand::Value(_) => false,
                // A missing key's version, revisions and lease are all 0.
                Operand::Int(_, want) => holds(result, 0.cmp(&want)),
            });
        }
        for (key, meta) in &keys {
            let ord = match operand {
                Operand::Int(target, want) => compare_int(target, meta).cmp(&want),
                Operand::Value(want) => self.load_value(key, *meta)?.as_slice().cmp(want),
            };
            if !holds(result, ord) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn compact(&mut self, req: &CompactionRequest) -> Result<CompactionResponse> {
        let rev = req.revision;
        if rev <= self.compact_revision {
            return Err(Error::Compacted { requested: rev, compact_revision: self.compact_revision });
        }
        if rev > self.revision {
            return Err(Error::FutureRevision { requested: rev, current: self.revision });
        }
        // Logical now, physical later (`take_compaction`): the versions the
        // keep rule drops are invisible from here on.
        self.pending_compaction = Some(rev);
        self.compact_revision = rev;
        Ok(CompactionResponse { header: crate::api::header(self.revision) })
    }

    // ---- staging ----------------------------------------------------------

    fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let old = self.overlay.insert(key.clone(), value);
        self.undo.push(Undo::Overlay(key, old));
    }

    fn set_index(&mut self, key: Bytes, meta: Option<KeyMeta>) {
        let old = match meta {
            Some(meta) => self.index.insert(key.clone(), meta),
            None => self.index.remove(&key),
        };
        self.undo.push(Undo::Index(key, old));
    }

    /// Undoes every change recorded since the last `undo.clear()`.
    fn rollback(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Index(key, Some(meta)) => {
                    self.index.insert(key, meta);
                }
                Undo::Index(key, None) => {
                    self.index.remove(&key);
                }
                Undo::Overlay(key, Some(value)) => {
                    self.overlay.insert(key, value);
                }
                Undo::Overlay(key, None) => {
                    self.overlay.remove(&key);
                }
            }
        }
    }

    // ---- reading ----------------------------------------------------------

    /// Serves a validated range; `visible` is the newest revision the index
    /// reflects. The response's revision is left for the caller to set.
    fn range_at(&self, req: &RangeRequest, visible: i64) -> Result<RangeResponse> {
        let rev = self.check_read_revision(req.revision, visible)?;
        let order = SortOrder::try_from(req.sort_order).map_err(|_| Error::invalid("unknown sort order"))?;
        let target = SortTarget::try_from(req.sort_target).map_err(|_| Error::invalid("unknown sort target"))?;
        let range = KeyRange::new(&req.key, &req.range_end);
        let from_index = rev == 0 || rev >= visible;

        if req.count_only && from_index {
            let count = if range.is_empty() { 0 } else { self.index.range::<[u8], _>(range.bounds()).count() };
            return Ok(RangeResponse {
                header: crate::api::header(0),
                kvs: Vec::new(),
                more: false,
                count: count as i64,
            });
        }
        // Index entries carry no value; history entries do.
        let (mut kvs, mut have_values) = if from_index {
            let kvs = self.live_keys(&range).iter().map(|(key, meta)| meta.to_kv(key)).collect();
            (kvs, false)
        } else {
            (self.history_range(&range, rev)?, true)
        };
        let count = kvs.len() as i64;
        if req.count_only {
            return Ok(RangeResponse { header: crate::api::header(0), kvs: Vec::new(), more: false, count });
        }

        let bound = |min: i64, max: i64, v: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
        kvs.retain(|kv| {
            bound(req.min_mod_revision, req.max_mod_revision, kv.mod_revision)
                && bound(req.min_create_revision, req.max_create_revision, kv.create_revision)
        });

        let order = match (order, target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (order, _) => order,
        };
        if order != SortOrder::None {
            if target == SortTarget::Value && !have_values {
                self.fill_values(&mut kvs)?;
                have_values = true;
            }
            // Stable sorts: ties stay in ascending key order.
            match order {
                SortOrder::Descend => kvs.sort_by(|a, b| sort_cmp(target, b, a)),
                _ => kvs.sort_by(|a, b| sort_cmp(target, a, b)),
            }
        }

        let limit = usize::try_from(req.limit).unwrap_or(0);
        let more = limit > 0 && kvs.len() > limit;
        if more {
            kvs.truncate(limit);
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        } else if !have_values {
            self.fill_values(&mut kvs)?;
        }
        Ok(RangeResponse { header: crate::api::header(0), kvs, more, count })
    }

    /// Checks a read revision against the compact revision and `current`;
    /// returns it unchanged.
    fn check_read_revision(&self, rev: i64, current: i64) -> Result<i64> {
        if rev < 0 {
            return Err(Error::invalid("negative revision"));
        }
        if rev > current {
            return Err(Error::FutureRevision { requested: rev, current });
        }
        if rev != 0 && rev < self.compact_revision {
            return Err(Error::Compacted { requested: rev, compact_revision: self.compact_revision });
        }
        Ok(rev)
    }

    /// The live keys in `range`, in key order.
    fn live_keys(&self, range: &KeyRange) -> Vec<(Bytes, KeyMeta)> {
        if range.is_empty() {
            return Vec::new();
        }
        self.index.range::<[u8], _>(range.bounds()).map(|(k, m)| (k.clone(), *m)).collect()
    }

    /// The keys of `range` as of revision `rev`, from the history.
    fn history_range(&self, range: &KeyRange, rev: i64) -> Result<Vec<KeyValue>> {
        let (start, end) = range.encoded();
        let mut kvs = Vec::new();
        let mut group: Option<Vec<u8>> = None;
        self.scan_history(&start, end.as_deref(), &mut |k, v| {
            let (user, version_rev) = decode_key(k)?;
            if group.as_deref() == Some(&user[..]) || version_rev > rev {
                // An older version of a key already decided, or too new.
                return Ok(true);
            }
            let rec = Record::decode(v)?;
            if !rec.tombstone {
                kvs.push(KeyValue {
                    key: Bytes::copy_from_slice(&user),
                    create_revision: rec.create_revision,
                    mod_revision: version_rev,
                    version: rec.version,
                    value: Bytes::from(rec.value),
                    lease: rec.lease,
                });
            }
            group = Some(user);
            Ok(true)
        })?;
        Ok(kvs)
    }

    /// Visits the engine keys of `Cf::Kv` in `[start, end)` in order, with
    /// the staged overlay merged in. The visitor returns `Ok(false)` to stop.
    fn scan_history(&self, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<()> {
        if end.is_some_and(|end| end <= start) {
            return Ok(());
        }
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut staged = self.overlay.range::<[u8], _>((Bound::Included(start), upper)).peekable();
        let mut stopped = false;
        scan_fallible(&self.engine, Cf::Kv, start, end, &mut |k, v| {
            // Staged entries up to `k` come first; one equal to `k` replaces it.
            while let Some(&(sk, sv)) = staged.peek() {
                let ord = sk.as_slice().cmp(k);
                if ord == Ordering::Greater {
                    break;
                }
                staged.next();
                if let Some(sv) = sv {
                    if !visit(sk, sv)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
                if ord == Ordering::Equal {
                    return Ok(true);
                }
            }
            stopped = !visit(k, v)?;
            Ok(!stopped)
        })?;
        if !stopped {
            for (sk, sv) in staged {
                if let Some(sv) = sv {
                    if !visit(sk, sv)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The stored record of `key`'s version at `rev`, staged or committed.
    fn load_record(&self, key: &[u8], rev: i64) -> Result<Record> {
        let enc = encode_key(key, rev);
        let data = match self.overlay.get(&enc) {
            Some(staged) => staged.clone(),
            None => self.engine.get(Cf::Kv, &enc)?,
        };
        let data =
            data.ok_or_else(|| Error::Corruption(format!("mvcc: version {rev} of indexed key {key:02x?} is missing")))?;
        Record::decode(&data)
    }

    /// The value of a live key.
    fn load_value(&self, key: &[u8], meta: KeyMeta) -> Result<Vec<u8>> {
        let rec = self.load_record(key, meta.mod_revision)?;
        if rec.tombstone {
            return Err(Error::Corruption(format!("mvcc: live key {key:02x?} has a tombstone")));
        }
        Ok(rec.value)
    }

    /// The full key-value of a live key.
    fn load_kv(&self, key: &Bytes, meta: KeyMeta) -> Result<KeyValue> {
        let mut kv = meta.to_kv(key);
        kv.value = Bytes::from(self.load_value(key, meta)?);
        Ok(kv)
    }

    /// Loads the values of key-values built from the index.
    fn fill_values(&self, kvs: &mut [KeyValue]) -> Result<()> {
        for kv in kvs {
            let rec = self.load_record(&kv.key, kv.mod_revision)?;
            kv.value = Bytes::from(rec.value);
        }
        Ok(())
    }
}

/// [`ReadView::scan`] with a visitor that may fail: the first error stops the
/// scan and is returned.
fn scan_fallible(
    view: &impl ReadView,
    cf: Cf,
    start: &[u8],
    end: Option<&[u8]>,
    visit: &mut Visitor<'_>,
) -> Result<()> {
    let mut failure = None;
    view.scan(cf, start, end, &mut |k, v| match visit(k, v) {
        Ok(go_on) => go_on,
        Err(e) => {
            failure = Some(e);
            false
        }
    })?;
    failure.map_or(Ok(()), Err)
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

/// Sets the revision of a transaction response and of all its nested
/// responses to the store revision after the transaction.
fn set_txn_revision(resp: &mut TxnResponse, rev: i64) {
    resp.header = crate::api::header(rev);
    for op in &mut resp.responses {
        match &mut op.response {
            Some(response_op::Response::ResponseRange(r)) => r.header = crate::api::header(rev),
            Some(response_op::Response::ResponsePut(r)) => r.header = crate::api::header(rev),
            Some(response_op::Response::ResponseDeleteRange(r)) => r.header = crate::api::header(rev),
            Some(response_op::Response::ResponseTxn(r)) => set_txn_revision(r, rev),
            None => {}
        }
    }
}

/// Orders two key-values by a sort target, ascending.
fn sort_cmp(target: SortTarget, a: &KeyValue, b: &KeyValue) -> Ordering {
    match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    }
}

/// The operand of a compare, checked against its target.
#[derive(Debug, Clone, Copy)]
enum Operand<'a> {
    /// An integer target and the number to compare it with.
    Int(CompareTarget, i64),
    /// The value to compare the key's value with.
    Value(&'a [u8]),
}

fn compare_result(result: i32) -> Result<CompareResult> {
    CompareResult::try_from(result).map_err(|_| Error::invalid(format!("unknown compare result {result}")))
}

fn compare_operand(cmp: &Compare) -> Result<Operand<'_>> {
    let target = CompareTarget::try_from(cmp.target)
        .map_err(|_| Error::invalid(format!("unknown compare target {}", cmp.target)))?;
    let operand = match (target, &cmp.target_union) {
        (CompareTarget::Version, Some(TargetUnion::Version(v)))
        | (CompareTarget::Create, Some(TargetUnion::CreateRevision(v)))
        | (CompareTarget::Mod, Some(TargetUnion::ModRevision(v)))
        | (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => Operand::Int(target, *v),
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => Operand::Value(v),
        _ => return Err(Error::invalid(format!("compare operand does not match target {target:?}"))),
    };
    Ok(operand)
}

/// The integer a compare target reads from a key's metadata.
fn compare_int(target: CompareTarget, meta: &KeyMeta) -> i64 {
    match target {
        CompareTarget::Version => meta.version,
        CompareTarget::Create => meta.create_revision,
        CompareTarget::Mod => meta.mod_revision,
        CompareTarget::Lease => meta.lease,
        // Values are compared as bytes, never through here.
        CompareTarget::Value => 0,
    }
}

/// Whether `actual.cmp(wanted) == ord` satisfies the compare result.
fn holds(result: CompareResult, ord: Ordering) -> bool {
    match result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

// ---- validation -------------------------------------------------------------

fn validate_key_range(key: &[u8], range_end: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(InvalidRequest::KeyNotProvided.into());
    }
    if !range_end.is_empty() && range_end != b"\0" && range_end < key {
        return Err(Error::invalid("range end is before the key"));
    }
    Ok(())
}

fn validate_range(req: &RangeRequest) -> Result<()> {
    validate_key_range(&req.key, &req.range_end)?;
    if req.limit < 0 {
        return Err(Error::invalid("negative limit"));
    }
    if req.revision < 0 {
        return Err(Error::invalid("negative revision"));
    }
    SortOrder::try_from(req.sort_order)
        .map_err(|_| Error::invalid(format!("unknown sort order {}", req.sort_order)))?;
    SortTarget::try_from(req.sort_target)
        .map_err(|_| Error::invalid(format!("unknown sort target {}", req.sort_target)))?;
    Ok(())
}

fn validate_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(InvalidRequest::KeyNotProvided.into());
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(InvalidRequest::ValueProvided.into());
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(InvalidRequest::LeaseProvided.into());
    }
    Ok(())
}

fn validate_delete(req: &DeleteRangeRequest) -> Result<()> {
    validate_key_range(&req.key, &req.range_end)
}

fn validate_compact(req: &CompactionRequest) -> Result<()> {
    if req.revision < 0 {
        return Err(Error::invalid("negative compact revision"));
    }
    Ok(())
}

fn validate_txn(req: &TxnRequest, depth: usize) -> Result<()> {
    if depth >= MAX_TXN_DEPTH {
        return Err(Error::invalid(format!("txn nested deeper than {MAX_TXN_DEPTH}")));
    }
    for cmp in &req.compare {
        validate_key_range(&cmp.key, &cmp.range_end)?;
        compare_result(cmp.result)?;
        compare_operand(cmp)?;
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => validate_range(r)?,
            Some(request_op::Request::RequestPut(r)) => validate_put(r)?,
            Some(request_op::Request::RequestDeleteRange(r)) => validate_delete(r)?,
            Some(request_op::Request::RequestTxn(r)) => validate_txn(r, depth + 1)?,
            None => return Err(Error::invalid("empty request op in txn")),
        }
    }
    branch_writes(&req.success)?;
    branch_writes(&req.failure)?;
    Ok(())
}

/// The keys a transaction branch may put and the ranges it may delete.
#[derive(Debug, Default)]
struct BranchWrites {
    puts: BTreeSet<Bytes>,
    deletes: Vec<KeyRange>,
}

fn duplicate_key() -> Error {
    Error::Invalid(InvalidRequest::DuplicateKey)
}

/// Collects a branch's writes, rejecting a key put twice or put and deleted
/// in the same branch (nested transactions included). The success and
/// failure branches of one nested transaction never both run, so they may
/// overlap each other.
fn branch_writes(ops: &[RequestOp]) -> Result<BranchWrites> {
    // Who writes: `None` for this level, `Some(i)` for the i-th nested txn.
    let mut puts: BTreeMap<Bytes, Option<usize>> = BTreeMap::new();
    let mut deletes: Vec<(Option<usize>, KeyRange)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match &op.request {
            Some(request_op::Request::RequestPut(r)) => {
                if puts.insert(r.key.clone(), None).is_some() {
                    return Err(duplicate_key());
                }
            }
            Some(request_op::Request::RequestDeleteRange(r)) => {
                deletes.push((None, KeyRange::new(&r.key, &r.range_end)))
            }
            Some(request_op::Request::RequestTxn(t)) => {
                let then = branch_writes(&t.success)?;
                let otherwise = branch_writes(&t.failure)?;
                for key in then.puts.into_iter().chain(otherwise.puts) {
                    match puts.insert(key, Some(i)) {
                        Some(owner) if owner != Some(i) => return Err(duplicate_key()),
                        _ => {}
                    }
                }
                deletes.extend(then.deletes.into_iter().chain(otherwise.deletes).map(|d| (Some(i), d)));
            }
            Some(request_op::Request::RequestRange(_)) | None => {}
        }
    }
    check_puts_against_deletes(&puts, &deletes)?;
    Ok(BranchWrites { puts: puts.into_keys().collect(), deletes: deletes.into_iter().map(|(_, d)| d).collect() })
}

/// A delete's end as a sort key: bounded ends in key order, then the
/// unbounded one (`(true, [])`).
type EndKey = (bool, Vec<u8>);

/// Rejects a put inside a delete of another writer (a nested txn's own
/// deletes were checked against its puts already; this level's, owner
/// `None`, clash with every put). One sweep over the puts in key order with
/// the deletes covering the current key kept by their end: O((puts +
/// deletes) log deletes), where testing every put against every delete was
/// quadratic on the applying thread.
fn check_puts_against_deletes(
    puts: &BTreeMap<Bytes, Option<usize>>,
    deletes: &[(Option<usize>, KeyRange)],
) -> Result<()> {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};
    let mut by_start: Vec<&(Option<usize>, KeyRange)> = deletes.iter().filter(|(_, r)| !r.is_empty()).collect();
    by_start.sort_by(|a, b| a.1.start.cmp(&b.1.start));
    // Deletes covering the sweep's position, soonest end first (an
    // unbounded end sorts last).
    let mut covering: BinaryHeap<Reverse<(EndKey, Option<usize>)>> = BinaryHeap::new();
    let mut per_owner: HashMap<Option<usize>, usize> = HashMap::new();
    let mut next = 0;
    for (key, owner) in puts {
        while let Some((d_owner, range)) = by_start.get(next).copied().filter(|(_, r)| r.start.as_slice() <= &key[..]) {
            covering.push(Reverse(((range.end.is_none(), range.end.clone().unwrap_or_default()), *d_owner)));
            *per_owner.entry(*d_owner).or_default() += 1;
            next += 1;
        }
        while let Some(Reverse(((false, end), d_owner))) = covering.peek() {
            if end.as_slice() > &key[..] {
                break;
            }
            *per_owner.entry(*d_owner).or_default() -= 1;
            covering.pop();
        }
        let own = if owner.is_some() { per_owner.get(owner).copied().unwrap_or(0) } else { 0 };
        if covering.len() > own {
            return Err(duplicate_key());
        }
    }
    Ok(())
}

/// 64-bit FNV-1a.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Which stored versions a compaction at `revision` drops. Per key (versions
/// come newest first): every version above `revision` stays, and so does the
/// newest one at or below it unless that is a tombstone *below* it; the
/// rest go. A tombstone *at* the compact revision stays (until a later
/// compaction) so a watch from the compact revision still sees that delete
/// (etcd issue 18089, fixed the same way; found by the simulator).
pub(crate) struct KeepRule {
    revision: i64,
    key: Option<Vec<u8>>,
    kept: bool,
}

impl KeepRule {
    pub(crate) fn new(revision: i64) -> Self {
        KeepRule { revision, key: None, kept: false }
    }

    /// Feed every version in storage order; true if this one is dropped.
    pub(crate) fn drops(&mut self, user_key: &[u8], version_rev: i64, record: &[u8]) -> Result<bool> {
        if self.key.as_deref() != Some(user_key) {
            self.key = Some(user_key.to_vec());
            self.kept = false;
        }
        if version_rev > self.revision {
            return Ok(false);
        }
        let drop = self.kept || (version_rev < self.revision && Record::is_tombstone(record)?);
        self.kept = true;
        Ok(drop)
    }
}

/// The physical part of a compaction: deletes the versions a compaction at
/// `revision` dropped, scanning a snapshot view taken after that compaction
/// was committed. Safe to run on any thread alongside new writes (it only
/// deletes versions at or below the compact revision, which are never
/// written again), and to lose in a crash (the next compaction's scan
/// covers whatever is left).
pub struct Compaction<E: Engine> {
    engine: E,
    view: E::Snapshot,
    revision: i64,
}

impl<E: Engine> std::fmt::Debug for Compaction<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction").field("revision", &self.revision).finish_non_exhaustive()
    }
}

impl<E: Engine> Compaction<E> {
    /// Versions deleted per engine batch (a key's versions never split).
    const BATCH: usize = 4_096;

    /// The compact revision this job completes.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Deletes the dropped versions in batches of unsynced writes; returns
    /// how many were deleted. All of one key's dropped versions go in one
    /// batch, so a read never sees an older version uncovered by the
    /// deletion of a newer one.
    pub fn run(self) -> Result<usize> {
        self.run_until(&|| false)
    }

    /// [`Compaction::run`], stopping between batches once `stop()` says so
    /// (a member shutting down); what is left waits for the next compaction.
    pub fn run_until(self, stop: &dyn Fn() -> bool) -> Result<usize> {
        let mut keep = KeepRule::new(self.revision);
        let mut batch = WriteBatch::new();
        let mut deleted = 0;
        let mut failed = None;
        scan_fallible(&self.view, Cf::Kv, b"", None, &mut |k, v| {
            let (user, rev) = decode_key(k)?;
            let new_key = keep.key.as_deref() != Some(&user[..]);
            if new_key && batch.len() >= Self::BATCH {
                if stop() {
                    return Ok(false);
                }
                deleted += batch.len();
                if let Err(e) = self.engine.write(batch.take(), false) {
                    failed = Some(e);
                    return Ok(false);
                }
            }
            if keep.drops(&user, rev, v)? {
                batch.delete(Cf::Kv, k.to_vec());
            }
            Ok(true)
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !batch.is_empty() && !stop() {
            deleted += batch.len();
            self.engine.write(batch, false)?;
        }
        Ok(deleted)
    }
}
