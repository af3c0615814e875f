//! The wider read and delete workload: ranges with every option (limit,
//! sort, count_only, keys_only, revision filters, past revisions) and
//! multi-key deletes with `prev_kv`; building their requests and checking
//! the shape of their answers (what the answer says about the keys is
//! judged by the checkers: [`crate::ranges`]).

use raft_kv::{DeleteRangeRequest, RangeRequest, SortOrder, SortTarget};

use super::World;
use crate::history::{key_bytes, Key, KvObs, Observed, Op, Query, SortBy};

/// The `[key, range_end)` of a contiguous run of workload keys (in byte
/// order): from the first to just past the last.
pub(super) fn wire_range(keys: &[Key]) -> (Vec<u8>, Vec<u8>) {
    let first = keys.iter().map(|&k| key_bytes(k)).min().unwrap_or_default();
    let mut end = keys.iter().map(|&k| key_bytes(k)).max().unwrap_or_default();
    end.push(0);
    (first, end)
}

/// The range request of an [`Op::Range`].
pub(super) fn range_request(keys: &[Key], q: &Query) -> RangeRequest {
    let (start, end) = wire_range(keys);
    let mut req = RangeRequest::range(start, end).with_limit(q.limit).at_revision(q.revision);
    if let Some((by, descending)) = q.sort {
        let target = match by {
            SortBy::Key => SortTarget::Key,
            SortBy::Version => SortTarget::Version,
            SortBy::Create => SortTarget::Create,
            SortBy::Mod => SortTarget::Mod,
            SortBy::Value => SortTarget::Value,
        };
        req = req.sorted(target, if descending { SortOrder::Descend } else { SortOrder::Ascend });
    }
    req.count_only = q.count_only;
    req.keys_only = q.keys_only;
    req.min_mod_revision = q.min_mod;
    req.max_mod_revision = q.max_mod;
    req.min_create_revision = q.min_create;
    req.max_create_revision = q.max_create;
    req
}

/// The delete request of an [`Op::DeleteRange`].
pub(super) fn delete_range_request(keys: &[Key], prev_kv: bool) -> DeleteRangeRequest {
    let (key, range_end) = wire_range(keys);
    DeleteRangeRequest { key: key.into(), range_end: range_end.into(), prev_kv }
}

/// The sort key of `kv` under `by` (key and value compare as bytes).
fn sort_key(by: SortBy, key: Key, kv: &KvObs) -> (i64, Vec<u8>) {
    match by {
        SortBy::Key => (0, key_bytes(key)),
        SortBy::Version => (kv.version, Vec::new()),
        SortBy::Create => (kv.create_revision, Vec::new()),
        SortBy::Mod => (kv.mod_revision, Vec::new()),
        SortBy::Value => (0, kv.value.to_string().into_bytes()),
    }
}

/// Checks what a range answer must satisfy whatever the data: only keys of
/// the request, none twice, in the requested order, within the filters and
/// the limit, `count` and `more` consistent (etcd 3.5: `count` is taken
/// before the filters, `more` says the limit cut the answer).
pub(crate) fn check_range_shape(
    keys: &[Key],
    q: &Query,
    kvs: &[(Key, KvObs)],
    count: i64,
    more: bool,
) -> Result<(), String> {
    let n = kvs.len() as i64;
    if q.count_only && n > 0 {
        return Err(format!("count_only range returned {n} key-values"));
    }
    if q.limit > 0 && n > q.limit {
        return Err(format!("range with limit {} returned {n} keys", q.limit));
    }
    if count < n || count > keys.len() as i64 {
        return Err(format!("range over {} keys returned {n} with count {count}", keys.len()));
    }
    if !q.filtered() && !q.count_only && more != (count > n) {
        return Err(format!("range returned {n} of {count} keys with more = {more}"));
    }
    if more && (q.limit == 0 || n < q.limit) {
        return Err(format!("range returned {n} keys, more = true, limit {}", q.limit));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, kv) in kvs {
        if !keys.contains(k) || !seen.insert(*k) {
            return Err(format!("range returned k{k} outside the request or twice"));
        }
        if !q.admits(kv) {
            return Err(format!("range returned k{k} ({kv:?}) outside its revision filters"));
        }
        if q.keys_only != (kv.value == 0) {
            return Err(format!("range (keys_only {}) returned k{k} with value {}", q.keys_only, kv.value));
        }
    }
    let (by, descending) = q.sort.unwrap_or((SortBy::Key, false));
    let ordered = kvs.windows(2).all(|w| {
        let (a, b) = (sort_key(by, w[0].0, &w[0].1), sort_key(by, w[1].0, &w[1].1));
        // Ties stay in ascending key order (a stable sort of the key order).
        let tie = a == b && key_bytes(w[0].0) < key_bytes(w[1].0);
        tie || if descending { a > b } else { a < b }
    });
    // Under keys_only a value order cannot be seen.
    if !(ordered || by == SortBy::Value && q.keys_only) {
        return Err(format!("range not in {by:?} order (descending {descending}): {kvs:?}"));
    }
    Ok(())
}

impl World {
    /// A contiguous run of workload keys (in byte order), one to all.
    fn key_span(&mut self) -> Vec<Key> {
        let mut all: Vec<Key> = (0..self.cfg.keys.max(1)).collect();
        all.sort_by_key(|&k| key_bytes(k));
        let n = all.len() as u64;
        let start = self.rng_work.below(n) as usize;
        let len = 1 + self.rng_work.below(n - start as u64) as usize;
        all[start..start + len].to_vec()
    }

    /// A range with random options, sometimes at a past revision.
    pub(super) fn new_query(&mut self, c: usize) -> Op {
        let keys = self.key_span();
        let last = self.clients[c].last_revision.max(1) as u64;
        let r = &mut self.rng_work;
        let mut q = Query {
            limit: 0,
            sort: None,
            count_only: r.chance(0.1),
            keys_only: r.chance(0.2),
            min_mod: 0,
            max_mod: 0,
            min_create: 0,
            max_create: 0,
            revision: 0,
        };
        if r.chance(0.35) {
            q.limit = 1 + r.below(keys.len() as u64) as i64;
        }
        if r.chance(0.4) {
            let by = [SortBy::Key, SortBy::Version, SortBy::Create, SortBy::Mod, SortBy::Value];
            q.sort = Some((by[r.below(5) as usize], r.chance(0.5)));
        }
        if r.chance(0.25) {
            let bound = 1 + r.below(last) as i64;
            match r.below(4) {
                0 => q.min_mod = bound,
                1 => q.max_mod = bound,
                2 => q.min_create = bound,
                _ => q.max_create = bound,
            }
        }
        if last > 1 && r.chance(0.4) {
            q.revision = 1 + r.below(last) as i64;
        }
        Op::Range { keys, query: q }
    }

    /// A multi-key delete, half of them asking for the deleted key-values.
    pub(super) fn new_delete_range(&mut self) -> Op {
        let keys = self.key_span();
        Op::DeleteRange { keys, prev_kv: self.rng_work.chance(0.5) }
    }
}

/// Reads a multi-key delete's answer, checking its shape.
pub(crate) fn observe_delete_range(
    keys: &[Key],
    prev_kv: bool,
    revision: i64,
    deleted: i64,
    prev: Vec<(Key, KvObs)>,
) -> Result<Observed, String> {
    if deleted < 0 || deleted > keys.len() as i64 {
        return Err(format!("delete of {} keys deleted {deleted}", keys.len()));
    }
    if prev_kv && prev.len() as i64 != deleted {
        return Err(format!("delete with prev_kv deleted {deleted} but returned {} key-values", prev.len()));
    }
    if !prev_kv && !prev.is_empty() {
        return Err("delete without prev_kv returned key-values".into());
    }
    if let Some((k, _)) = prev.iter().find(|(k, _)| !keys.contains(k)) {
        return Err(format!("delete returned k{k}, outside the request"));
    }
    Ok(Observed::DeleteRange { revision, deleted, prev })
}
