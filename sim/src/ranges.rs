//! Judging ranges with options and multi-key deletes.
//!
//! A range answer tells, per key of the request, one [`Fact`]: the key's
//! state (a returned key-value; without its value under `keys_only`), or
//! only whether it exists. What a key left out of the answer means depends
//! on the options: absent when nothing could have left it out; unknown when
//! a revision filter or the limit (past the cut, or with a sort other than
//! by key) may have; `count` (taken before the filters, as etcd 3.5 does)
//! settles it when it is 0, all keys, or exactly the keys returned.
//!
//! Current-revision answers go to the linearizability model
//! ([`crate::checker`]) as steps of each key. Past-revision answers cannot:
//! [`check_past_reads`] judges them against what the rest of the history
//! proves about that revision (a value read current at revision `r` with
//! mod revision `p` held over `[p, r]`), and judges `Compacted` answers
//! against the compactions.

use std::collections::BTreeMap;

use crate::checker::{Step, Violation, ViolationKind};
use crate::history::{key_bytes, Key, KvObs, Observed, Op, Outcome, Query, Record, SortBy};

/// What a range answer says about one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// Returned (value 0 under `keys_only`).
    Seen(KvObs),
    /// Whether it exists, nothing more.
    Exists(bool),
}

/// What a range answer over `keys` says about each key (keys it says
/// nothing about are left out).
pub fn range_facts(keys: &[Key], q: &Query, kvs: &[(Key, KvObs)], count: i64, more: bool) -> BTreeMap<Key, Fact> {
    let mut out: BTreeMap<Key, Fact> = kvs.iter().map(|(k, kv)| (*k, Fact::Seen(*kv))).collect();
    let rest: Vec<Key> = keys.iter().copied().filter(|k| !out.contains_key(k)).collect();
    let settled = if count == keys.len() as i64 {
        Some(true)
    } else if count == kvs.len() as i64 {
        Some(false)
    } else {
        None
    };
    if let Some(exists) = settled {
        out.extend(rest.iter().map(|&k| (k, Fact::Exists(exists))));
        return out;
    }
    // Cut by the limit in key order: keys before the last one returned
    // (in the sort direction) are absent.
    let key_order = matches!(q.sort, None | Some((SortBy::Key, _)));
    let descending = matches!(q.sort, Some((SortBy::Key, true)));
    if more && key_order && !q.filtered() && !q.count_only {
        if let Some(last) = kvs.last().map(|(k, _)| key_bytes(*k)) {
            for k in rest {
                let before = if descending { key_bytes(k) > last } else { key_bytes(k) < last };
                if before {
                    out.insert(k, Fact::Exists(false));
                }
            }
        }
    }
    out
}

/// The model step of a fact.
pub fn fact_step(fact: &Fact) -> Step {
    match fact {
        Fact::Seen(kv) if kv.value == 0 => Step::GetVersion(kv.version),
        Fact::Seen(kv) => Step::Get(Some((kv.value, kv.version))),
        Fact::Exists(false) => Step::Get(None),
        Fact::Exists(true) => Step::Exists,
    }
}

/// The model steps of a multi-key delete over `keys`: each key's state as
/// the delete found it (with `prev_kv`), or whether it existed when the
/// count settles it, or nothing known.
pub fn delete_steps(keys: &[Key], prev_kv: bool, known: Option<(i64, &[(Key, KvObs)])>) -> Vec<(Key, Step)> {
    keys.iter()
        .map(|&k| {
            let step = match known {
                None => Step::Delete(None),
                Some((_, prev)) if prev_kv => {
                    Step::DeleteOf(prev.iter().find(|(p, _)| *p == k).map(|(_, kv)| (kv.value, kv.version)))
                }
                Some((0, _)) => Step::Delete(Some(false)),
                Some((n, _)) if n == keys.len() as i64 => Step::Delete(Some(true)),
                Some(_) => Step::Delete(None),
            };
            (k, step)
        })
        .collect()
}

/// Per key, the intervals `[mod revision, revision]` over which a value is
/// proven current (a current-revision read saw it), with the record.
fn proven_spans(history: &[Record]) -> BTreeMap<Key, Vec<(i64, i64, KvObs, usize)>> {
    let mut out: BTreeMap<Key, Vec<(i64, i64, KvObs, usize)>> = BTreeMap::new();
    for (i, rec) in history.iter().enumerate() {
        let Outcome::Ok(obs) = &rec.outcome else { continue };
        let seen: Vec<(Key, KvObs, i64)> = match (&rec.op, obs) {
            (Op::Read { linearizable: true, .. }, Observed::Read { revision, kvs }) => {
                kvs.iter().map(|(k, kv)| (*k, *kv, *revision)).collect()
            }
            (Op::Range { query, .. }, Observed::Range { revision, kvs, .. }) if query.revision == 0 => {
                kvs.iter().filter(|(_, kv)| kv.value != 0).map(|(k, kv)| (*k, *kv, *revision)).collect()
            }
            _ => continue,
        };
        for (k, kv, r) in seen {
            out.entry(k).or_default().push((kv.mod_revision, r, kv, i));
        }
    }
    out
}

/// Checks every answer of a range at a past revision: each returned
/// key-value was written at or below it, and agrees with any value proven
/// current there; a key absent there was not proven present; a
/// `Compacted` refusal needs a compaction above the revision invoked
/// before it completed, and an answer is wrong once such a compaction
/// was acknowledged before the read began.
pub fn check_past_reads(history: &[Record]) -> Vec<Violation> {
    let spans = proven_spans(history);
    let mut out = Vec::new();
    let bad = |detail: String| Violation { kind: ViolationKind::PastRead, detail };
    for rec in history {
        let Op::Range { keys, query } = &rec.op else { continue };
        let at = query.revision;
        if at == 0 {
            continue;
        }
        let compacts = history.iter().filter(|c| {
            matches!((&c.op, &c.outcome), (Op::Compact { revision }, Outcome::Ok(_) | Outcome::Unknown) if *revision > at)
        });
        match &rec.outcome {
            Outcome::Ok(Observed::Compacted) if !compacts.clone().any(|c| c.invoke <= rec.complete) => {
                out.push(bad(format!("read at revision {at} refused as compacted, no compaction above it:\n  {rec}")));
            }
            Outcome::Ok(Observed::Range { kvs, count, more, .. }) => {
                if let Some(c) =
                    compacts.clone().find(|c| matches!(c.outcome, Outcome::Ok(_)) && c.complete < rec.invoke)
                {
                    out.push(bad(format!(
                        "read at revision {at} answered after a compaction above it:\n  {c}\n  {rec}"
                    )));
                    continue;
                }
                for (k, fact) in range_facts(keys, query, kvs, *count, *more) {
                    if let Fact::Seen(kv) = fact {
                        if kv.mod_revision > at || kv.create_revision > kv.mod_revision {
                            out.push(bad(format!("read at revision {at} returned k{k} {kv:?}:\n  {rec}")));
                            continue;
                        }
                    }
                    let proven = spans.get(&k).and_then(|s| s.iter().find(|(p, r, _, _)| *p <= at && at <= *r));
                    let Some((_, _, want, j)) = proven else { continue };
                    let agrees = match fact {
                        Fact::Seen(kv) if kv.value == 0 => {
                            (kv.version, kv.mod_revision) == (want.version, want.mod_revision)
                        }
                        Fact::Seen(kv) => kv == *want,
                        Fact::Exists(e) => e,
                    };
                    if !agrees {
                        out.push(bad(format!(
                            "read at revision {at} saw k{k} as {fact:?}, but {want:?} held there:\n  {}\n  {rec}",
                            history[*j]
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    out
}
