//! The read path of [`Mvcc`]: ranges at the current or a past revision,
//! event history, the consistency hash, and the scans and loads behind them.

use std::cmp::Ordering;
use std::ops::Bound;

use bytes::Bytes;

use super::encoding::{decode_key, encode_key, group_end, Record};
use super::validate::validate_range;
use super::{KeepRule, KeyMeta, KeyRange, Mvcc};
use crate::api::{Event, EventType, KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget};
use crate::engine::{Cf, Engine, ReadView, Visitor};
use crate::hash::Fnv64;
use crate::{Error, Result};

impl<E: Engine> Mvcc<E> {
    /// Serves a read against the current state (committed and staged).
    /// Validates the request first.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        validate_range(req)?;
        let mut resp = self.integrity.check(self.range_at(req, self.revision, self.max_response_bytes))?;
        resp.header = crate::api::header(self.revision);
        Ok(resp)
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
        self.integrity.check(history_events(&|s, e, v| self.scan_history(s, e, v), key, range_end, from, until))
    }

    /// A hash of all key-value history at or below `revision` (0: the
    /// current revision), for cross-member consistency checks like etcd's
    /// HashKV: 64-bit FNV-1a over every stored version's encoded key and
    /// value, in key order. Members that applied the same operations agree,
    /// whether or not they have committed them.
    pub fn hash(&self, revision: i64) -> Result<u64> {
        let revision = self.hash_revision(revision)?;
        hash_history(self.compact_revision, revision, &mut |visit| self.scan_history(b"", None, visit))
    }

    /// [`Mvcc::hash`] to compute anywhere: checks `revision` now and returns
    /// a job that hashes a snapshot of the engine taken now. Only for a
    /// committed store (nothing staged), as a member is between steps.
    pub fn hash_job(&self, revision: i64) -> Result<impl FnOnce() -> Result<u64> + Send + 'static> {
        let revision = self.hash_revision(revision)?;
        if !self.overlay.is_empty() {
            return Err(Error::invalid("hash of a store with staged writes"));
        }
        let (view, compact) = (self.engine.snapshot(), self.compact_revision);
        Ok(move || hash_history(compact, revision, &mut |visit| view.try_scan(Cf::Kv, b"", None, visit)))
    }

    /// The revision a hash covers (0: the current one), checked.
    fn hash_revision(&self, revision: i64) -> Result<i64> {
        let revision = check_read_revision(revision, self.revision, self.compact_revision)?;
        Ok(if revision == 0 { self.revision } else { revision })
    }

    // ---- reading ----------------------------------------------------------

    /// Serves a validated range; `visible` is the newest revision the index
    /// reflects. The response's revision is left for the caller to set.
    pub(super) fn range_at(&self, req: &RangeRequest, visible: i64, bound: usize) -> Result<RangeResponse> {
        let rev = check_read_revision(req.revision, visible, self.compact_revision)?;
        let at = if rev == 0 { visible } else { rev };
        let index = (rev == 0 || rev >= visible).then_some(self as &dyn LiveIndex);
        serve_range(req, at, bound, &|s, e, v| self.scan_history(s, e, v), index)
    }

    /// The live keys in `range`, in key order.
    pub(super) fn live_keys(&self, range: &KeyRange) -> Vec<(Bytes, KeyMeta)> {
        if range.is_empty() {
            return Vec::new();
        }
        self.index.range(range.bounds()).map(|(k, m)| (Bytes::copy_from_slice(k), m)).collect()
    }

    /// Visits the engine keys of `Cf::Kv` in `[start, end)` in order, with
    /// the staged overlay merged in. The visitor returns `Ok(false)` to stop.
    pub(super) fn scan_history(&self, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<()> {
        if end.is_some_and(|end| end <= start) {
            return Ok(());
        }
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut staged = self.overlay.range::<[u8], _>((Bound::Included(start), upper)).peekable();
        let mut stopped = false;
        self.engine.try_scan(Cf::Kv, start, end, &mut |k, v| {
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
    pub(super) fn load_value(&self, key: &[u8], meta: KeyMeta) -> Result<Vec<u8>> {
        let rec = self.load_record(key, meta.mod_revision)?;
        if rec.tombstone {
            return Err(Error::Corruption(format!("mvcc: live key {key:02x?} has a tombstone")));
        }
        Ok(rec.value)
    }

    /// The full key-value of a live key.
    pub(super) fn load_kv(&self, key: &Bytes, meta: KeyMeta) -> Result<KeyValue> {
        let mut kv = meta.to_kv(key.clone());
        kv.value = Bytes::from(self.load_value(key, meta)?);
        Ok(kv)
    }
}

/// 64-bit FNV-1a over every stored version at or below `revision` — its
/// encoded key and value, in key order — that compaction to `compact` keeps;
/// `scan` visits the history.
fn hash_history(compact: i64, revision: i64, scan: &mut dyn FnMut(&mut Visitor<'_>) -> Result<()>) -> Result<u64> {
    let mut hash = Fnv64::new();
    // Versions compaction dropped may still be stored: skip them, so
    // members agree however far their physical compaction got.
    let mut keep = KeepRule::new(compact);
    scan(&mut |k, v| {
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

/// Fails once a range has gathered more than `bound` key and value bytes.
fn check_response_size(gathered: usize, bound: usize) -> Result<()> {
    if gathered > bound {
        return Err(Error::ResponseTooLarge { size: gathered, max: bound });
    }
    Ok(())
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

/// Visits the `Cf::Kv` records in `[start, end)` in key order (all versions
/// of a key, newest first): the store's history, staged writes included or
/// read from a snapshot view.
pub(super) type HistoryScan<'a> = dyn Fn(&[u8], Option<&[u8]>, &mut Visitor<'_>) -> Result<()> + 'a;

/// The in-memory index of live keys, for reads at the current revision.
pub(super) trait LiveIndex {
    /// The live keys of `range` in key order (descending: from the end), at
    /// most `take` of them (`None`: all), without values, and how many
    /// there are in all — counted without materialising the rest.
    fn window(&self, range: &KeyRange, take: Option<usize>, descending: bool) -> (Vec<KeyValue>, usize);
    /// Every live key of `range`, without values.
    fn all(&self, range: &KeyRange) -> Vec<KeyValue>;
    /// Loads the values of key-values built from the index, failing once
    /// they pass `bound` bytes.
    fn fill_values(&self, kvs: &mut [KeyValue], bound: usize) -> Result<()>;
}

impl<E: Engine> LiveIndex for Mvcc<E> {
    fn window(&self, range: &KeyRange, take: Option<usize>, descending: bool) -> (Vec<KeyValue>, usize) {
        if range.is_empty() {
            return (Vec::new(), 0);
        }
        let keys = self.index.range(range.bounds());
        let take = take.unwrap_or(usize::MAX);
        let (kvs, rest): (Vec<KeyValue>, usize) = if descending {
            let mut keys = keys.rev();
            let kvs = keys.by_ref().take(take).map(|(k, m)| m.to_kv(Bytes::copy_from_slice(k))).collect();
            (kvs, keys.count())
        } else {
            let mut keys = keys;
            let kvs = keys.by_ref().take(take).map(|(k, m)| m.to_kv(Bytes::copy_from_slice(k))).collect();
            (kvs, keys.count())
        };
        let count = kvs.len() + rest;
        (kvs, count)
    }

    fn all(&self, range: &KeyRange) -> Vec<KeyValue> {
        self.live_keys(range).into_iter().map(|(key, meta)| meta.to_kv(key)).collect()
    }

    fn fill_values(&self, kvs: &mut [KeyValue], bound: usize) -> Result<()> {
        let mut gathered = 0usize;
        for kv in kvs {
            let rec = self.load_record(&kv.key, kv.mod_revision)?;
            gathered = gathered.saturating_add(kv.key.len() + rec.value.len());
            check_response_size(gathered, bound)?;
            kv.value = Bytes::from(rec.value);
        }
        Ok(())
    }
}

/// Checks a read revision against `compact` and `current`; returns it
/// unchanged.
pub(super) fn check_read_revision(rev: i64, current: i64, compact: i64) -> Result<i64> {
    // etcd 3.5's mvcc reads a negative revision as the current one
    // (measured against etcd 3.5.1).
    if rev < 0 {
        return Ok(0);
    }
    if rev > current {
        return Err(Error::FutureRevision { requested: rev, current });
    }
    if rev != 0 && rev < compact {
        return Err(Error::Compacted { requested: rev, compact_revision: compact });
    }
    Ok(rev)
}

/// Serves a validated range at revision `at` (checked) from `history`, or
/// from `index` when the read is at the revision the index reflects. The
/// response's revision is left for the caller to set.
pub(super) fn serve_range(
    req: &RangeRequest,
    at: i64,
    bound: usize,
    history: &HistoryScan<'_>,
    index: Option<&dyn LiveIndex>,
) -> Result<RangeResponse> {
    let order = SortOrder::try_from(req.sort_order).map_err(|_| Error::invalid("unknown sort order"))?;
    let target = SortTarget::try_from(req.sort_target).map_err(|_| Error::invalid("unknown sort target"))?;
    let range = KeyRange::new(&req.key, &req.range_end);

    let order = match (order, target) {
        (SortOrder::None, SortTarget::Key) => SortOrder::None,
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    if !filtered && (order == SortOrder::None || target == SortTarget::Key) {
        // Key order is the order keys are stored in: read at most
        // `limit` key-values and count the rest without keeping them.
        let limit = usize::try_from(req.limit).ok().filter(|l| *l > 0);
        let limit = limit.map(|l| if crate::mutation::active("range-limit-off-by-one") { l + 1 } else { l });
        let take = if req.count_only { Some(0) } else { limit };
        let descending = order == SortOrder::Descend;
        let kvs = match index {
            Some(index) => {
                let (mut kvs, count) = index.window(&range, take, descending);
                if !req.keys_only {
                    index.fill_values(&mut kvs, bound)?;
                }
                (kvs, count)
            }
            None => history_window(history, &range, at, take, descending, req.keys_only, bound)?,
        };
        let (kvs, count) = kvs;
        let more = limit.is_some_and(|l| count > l) && !req.count_only;
        return Ok(RangeResponse { header: crate::api::header(0), kvs, more, count: count as i64 });
    }
    // Index entries carry no value; history entries do.
    let (mut kvs, mut have_values) = match index {
        Some(index) => (index.all(&range), false),
        None => (history_window(history, &range, at, None, false, false, bound)?.0, true),
    };
    let count = kvs.len() as i64;
    if req.count_only {
        return Ok(RangeResponse { header: crate::api::header(0), kvs: Vec::new(), more: false, count });
    }

    let within = |min: i64, max: i64, v: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
    kvs.retain(|kv| {
        within(req.min_mod_revision, req.max_mod_revision, kv.mod_revision)
            && within(req.min_create_revision, req.max_create_revision, kv.create_revision)
    });

    if order != SortOrder::None {
        if let Some(index) = index.filter(|_| target == SortTarget::Value && !have_values) {
            index.fill_values(&mut kvs, bound)?;
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
    } else if let Some(index) = index.filter(|_| !have_values) {
        index.fill_values(&mut kvs, bound)?;
    } else {
        let gathered = kvs.iter().fold(0usize, |n, kv| n.saturating_add(kv.key.len() + kv.value.len()));
        check_response_size(gathered, bound)?;
    }
    Ok(RangeResponse { header: crate::api::header(0), kvs, more, count })
}

/// The keys of `range` as of revision `rev`, from the history: at most
/// `take` of them in key order (descending: the last `take`, newest key
/// first), and how many there are in all. Only the window is held in
/// memory (the records counted past it are not decoded); `keys_only`
/// leaves values out.
fn history_window(
    history: &HistoryScan<'_>,
    range: &KeyRange,
    rev: i64,
    take: Option<usize>,
    descending: bool,
    keys_only: bool,
    bound: usize,
) -> Result<(Vec<KeyValue>, usize)> {
    if range.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let (mut start, mut end) = range.encoded();
    // One key: its versions are stored newest first, so seek straight to
    // the newest at or below `rev` and read only that one (a point read
    // costs one record, however long the key's history). The scan ends
    // where the key's version group does, which lets the engine skip the
    // files that hold none of it (`encoding::version_group`).
    let single = range.single_key();
    if let Some(key) = single {
        start = encode_key(key, rev);
        end = Some(group_end(key));
    }
    let take = take.unwrap_or(usize::MAX);
    let mut window = std::collections::VecDeque::new();
    let mut count = 0usize;
    let mut gathered = 0usize;
    let mut group: Option<Vec<u8>> = None;
    history(&start, end.as_deref(), &mut |k, v| {
        let (user, version_rev) = decode_key(k)?;
        if group.as_deref() == Some(&user[..]) || version_rev > rev {
            // An older version of a key already decided, or too new.
            return Ok(true);
        }
        if !Record::is_tombstone(v)? {
            count += 1;
            if take > 0 && (descending || window.len() < take) {
                let rec = Record::decode(v)?;
                let value_len = if keys_only { 0 } else { rec.value.len() };
                gathered = gathered.saturating_add(user.len() + value_len);
                window.push_back(KeyValue {
                    key: Bytes::copy_from_slice(&user),
                    create_revision: rec.create_revision,
                    mod_revision: version_rev,
                    version: rec.version,
                    value: if keys_only { Bytes::new() } else { Bytes::from(rec.value) },
                    lease: rec.lease,
                });
                if window.len() > take {
                    if let Some(old) = window.pop_front() {
                        gathered -= old.key.len() + old.value.len();
                    }
                }
                check_response_size(gathered, bound)?;
            }
        }
        group = Some(user);
        Ok(single.is_none())
    })?;
    let mut kvs: Vec<KeyValue> = window.into();
    if descending {
        kvs.reverse();
    }
    Ok((kvs, count))
}

/// Every event on keys of `[key, range_end)` (etcd range rules) with
/// revision in `[from, until]`, oldest first and, within a revision, in the
/// order the writes applied (sub-revision), each with its previous
/// key-value, read from `history`.
pub(super) fn history_events(
    history: &HistoryScan<'_>,
    key: &[u8],
    range_end: &[u8],
    from: i64,
    until: i64,
) -> Result<Vec<Event>> {
    let range = KeyRange::new(key, range_end);
    if range.is_empty() {
        return Ok(Vec::new());
    }
    let (start, end) = range.encoded();
    // Versions come newest first per key: an event's previous version is
    // the next record of the same key. Each event waits with its
    // sub-revision.
    let mut pending: Option<(Vec<u8>, i64, Event)> = None;
    let mut events: Vec<(i64, Event)> = Vec::new();
    history(&start, end.as_deref(), &mut |k, v| {
        let (user, rev) = decode_key(k)?;
        if pending.is_none() && (rev < from || rev > until) {
            // Neither an event of the window nor the previous version of one.
            return Ok(true);
        }
        let rec = Record::decode(v)?;
        let sub = rec.sub_revision;
        let kv = KeyValue {
            key: Bytes::copy_from_slice(&user),
            create_revision: rec.create_revision,
            mod_revision: rev,
            version: rec.version,
            value: Bytes::from(rec.value),
            lease: rec.lease,
        };
        if let Some((pkey, psub, mut ev)) = pending.take() {
            if pkey == user && !rec.tombstone {
                ev.prev_kv = Some(kv.clone());
            }
            events.push((psub, ev));
        }
        if rev >= from && rev <= until {
            let ev = if rec.tombstone {
                let kv = KeyValue { key: kv.key, mod_revision: rev, ..Default::default() };
                Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: None }
            } else {
                Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None }
            };
            pending = Some((user, sub, ev));
        }
        Ok(true)
    })?;
    events.extend(pending.map(|(_, sub, ev)| (sub, ev)));
    // Records come in key order; a revision's writes in the order they
    // applied. Stable: records written before sub-revisions were stored
    // (all 0) keep key order.
    events.sort_by_key(|(sub, e)| (e.revision(), *sub));
    Ok(events.into_iter().map(|(_, e)| e).collect())
}
