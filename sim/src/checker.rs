//! The checkers: linearizability per key (Wing & Gong's search with Lowe's
//! memoisation, as in porcupine) over a register-with-versions model, plus
//! cross-key checks that need no search.
//!
//! Model of one key: absent, or `(value, version)`. A put sets the value and
//! bumps the version (1 after absence); a delete makes the key absent and
//! reports whether it existed; a compare-and-swap puts when the key holds the
//! expected value (or is absent, when `None` is expected) and otherwise reads
//! it; a read must see the state exactly. An operation whose outcome is
//! unknown completes at infinity and accepts any output, so it may take
//! effect at any point after its invocation or not at all. Operations that
//! were definitely not applied are left out.
//!
//! ```
//! use sim::checker::{check_key, KeyOp, KeyVerdict, Step};
//! // A put of 1 finishes before a read that sees nothing: not linearizable.
//! let ops = vec![
//!     KeyOp { invoke: 0, complete: 10, step: Step::Put(1), record: 0 },
//!     KeyOp { invoke: 20, complete: 30, step: Step::Get(None), record: 1 },
//! ];
//! assert!(matches!(check_key(&ops, 1_000_000), KeyVerdict::Violation));
//! // The same read, concurrent with the put, may see the old state.
//! let ops = vec![
//!     KeyOp { invoke: 0, complete: 10, step: Step::Put(1), record: 0 },
//!     KeyOp { invoke: 5, complete: 30, step: Step::Get(None), record: 1 },
//! ];
//! assert!(matches!(check_key(&ops, 1_000_000), KeyVerdict::Ok));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::history::{Cmp, TxnOp, TxnOpResult};
use crate::history::{Key, KvObs, Observed, Op, Outcome, Record, Value, NEVER};
use crate::ranges::{check_past_reads, delete_steps, fact_step, range_facts};
use crate::txns::{guard_allows, txn_steps};

/// A key's state in the model: absent, or (value, version).
pub type State = Option<(Value, i64)>;

/// One operation on one key, as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Put a value.
    Put(Value),
    /// Delete; `Some(existed)` when the outcome is known.
    Delete(Option<bool>),
    /// Compare-and-swap; `result` is `Some((succeeded, state read on
    /// failure))` when the outcome is known.
    Cas {
        /// Expected value (`None`: absent).
        expect: Option<Value>,
        /// The value put on success.
        value: Value,
        /// The known outcome.
        result: Option<(bool, State)>,
    },
    /// A read that saw this state.
    Get(State),
    /// A `keys_only` read that saw the key at this version.
    GetVersion(i64),
    /// A read that saw the key exists (a count).
    Exists,
    /// A delete that found this state (`prev_kv`; `None`: absent).
    DeleteOf(State),
    /// A txn's compares on this key: all hold (`all`), or not all.
    Guard {
        /// The compares.
        cmps: Vec<Cmp>,
        /// Every one holds, or not every one.
        all: bool,
    },
    /// Steps taken atomically, in order (one txn's operations on a key).
    Seq(Vec<Step>),
    /// One of these steps (a txn whose branch is unknown).
    Either(Vec<Step>),
}

/// An operation of one key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOp {
    /// Invocation time.
    pub invoke: u64,
    /// Completion time ([`NEVER`] when unknown).
    pub complete: u64,
    /// What it did.
    pub step: Step,
    /// Index of the record it came from.
    pub record: usize,
}

fn put(state: State, value: Value) -> State {
    Some((value, state.map_or(1, |(_, v)| v + 1)))
}

/// Applies `step` to `state`: the new state, or `None` when the step's
/// recorded output is impossible from `state` (the first possible one of
/// a step with several outcomes: see [`successors`]).
pub fn apply(state: State, step: &Step) -> Option<State> {
    successors(state, step).first().copied()
}

/// Every state `step` may lead to from `state` (none: its recorded output
/// is impossible there).
pub fn successors(state: State, step: &Step) -> Vec<State> {
    match step {
        Step::Seq(steps) => {
            let mut states = vec![state];
            for s in steps {
                let mut next: Vec<State> = states.iter().flat_map(|st| successors(*st, s)).collect();
                next.sort_unstable();
                next.dedup();
                states = next;
            }
            states
        }
        Step::Either(steps) => {
            let mut all: Vec<State> = steps.iter().flat_map(|s| successors(state, s)).collect();
            all.sort_unstable();
            all.dedup();
            all
        }
        Step::Guard { cmps, all } => {
            if guard_allows(cmps, *all, state) {
                vec![state]
            } else {
                Vec::new()
            }
        }
        simple => apply_simple(state, simple).into_iter().collect(),
    }
}

fn apply_simple(state: State, step: &Step) -> Option<State> {
    match step {
        Step::Put(v) => Some(put(state, *v)),
        Step::Delete(None) => Some(None),
        Step::Delete(Some(existed)) => (*existed == state.is_some()).then_some(None),
        Step::Cas { expect, value, result } => {
            let holds = match expect {
                Some(e) => state.map(|(v, _)| v) == Some(*e),
                None => state.is_none(),
            };
            match result {
                None => Some(if holds { put(state, *value) } else { state }),
                Some((true, _)) => holds.then(|| put(state, *value)),
                Some((false, seen)) => (!holds && *seen == state).then_some(state),
            }
        }
        Step::Get(seen) => (*seen == state).then_some(state),
        Step::GetVersion(version) => (state.map(|(_, v)| v) == Some(*version)).then_some(state),
        Step::Exists => state.is_some().then_some(state),
        Step::DeleteOf(seen) => (*seen == state).then_some(None),
        Step::Guard { .. } | Step::Seq(_) | Step::Either(_) => apply(state, step),
    }
}

/// The verdict on one key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Linearizable.
    Ok,
    /// Not linearizable.
    Violation,
    /// The search gave up after its step budget.
    GaveUp,
}

const HEAD: usize = 0;

struct Node {
    op: usize,
    call: bool,
    /// For a call: its return node.
    pair: usize,
    prev: usize,
    next: usize,
}

/// Checks one key's history from the initial state "absent", exploring at
/// most `budget` search steps.
pub fn check_key(ops: &[KeyOp], budget: u64) -> KeyVerdict {
    let n = ops.len();
    // Events: calls before returns at equal times (so such operations count
    // as concurrent: the conservative reading of a tie).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, false, i));
        events.push((op.complete, true, i));
    }
    events.sort();
    // Nodes: 0 is the head sentinel, then the events, then the tail sentinel.
    let tail = events.len() + 1;
    let mut nodes: Vec<Node> = Vec::with_capacity(events.len() + 2);
    nodes.push(Node { op: usize::MAX, call: false, pair: 0, prev: HEAD, next: 1 });
    let mut ret_node = vec![0usize; n];
    for (i, (_, is_ret, op)) in events.iter().enumerate() {
        let idx = i + 1;
        nodes.push(Node { op: *op, call: !is_ret, pair: 0, prev: idx - 1, next: idx + 1 });
        if *is_ret {
            ret_node[*op] = idx;
        }
    }
    nodes.push(Node { op: usize::MAX, call: false, pair: 0, prev: tail - 1, next: tail });
    for node in nodes.iter_mut().skip(1).take(events.len()) {
        if node.call {
            node.pair = ret_node[node.op];
        }
    }

    let words = n.div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    // Each linearized call with the state before it and which of its
    // possible outcomes was taken; backtracking tries the next outcome.
    let mut stack: Vec<(usize, State, usize)> = Vec::new();
    let mut state: State = None;
    let mut entry = nodes[HEAD].next;
    let mut first_outcome = 0;
    let mut steps = 0u64;
    while nodes[HEAD].next != tail {
        steps += 1;
        if steps > budget {
            return KeyVerdict::GaveUp;
        }
        if nodes[entry].call {
            let op = nodes[entry].op;
            let outcomes = successors(state, &ops[op].step);
            let start = std::mem::take(&mut first_outcome);
            linearized[op / 64] |= 1 << (op % 64);
            let taken = (start..outcomes.len()).find(|&o| cache.insert((linearized.clone(), outcomes[o])));
            if let Some(o) = taken {
                stack.push((entry, state, o));
                state = outcomes[o];
                lift(&mut nodes, entry);
                entry = nodes[HEAD].next;
                continue;
            }
            linearized[op / 64] &= !(1 << (op % 64));
            entry = nodes[entry].next;
        } else {
            // A return reached before its call was linearized: backtrack.
            let Some((call, prev_state, outcome)) = stack.pop() else {
                return KeyVerdict::Violation;
            };
            let op = nodes[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            state = prev_state;
            unlift(&mut nodes, call);
            // The same call with its next outcome, then the calls after it.
            entry = call;
            first_outcome = outcome + 1;
        }
    }
    KeyVerdict::Ok
}

fn lift(nodes: &mut [Node], call: usize) {
    let (p, n) = (nodes[call].prev, nodes[call].next);
    nodes[p].next = n;
    nodes[n].prev = p;
    let ret = nodes[call].pair;
    let (p, n) = (nodes[ret].prev, nodes[ret].next);
    nodes[p].next = n;
    nodes[n].prev = p;
}

fn unlift(nodes: &mut [Node], call: usize) {
    let ret = nodes[call].pair;
    let (p, n) = (nodes[ret].prev, nodes[ret].next);
    nodes[p].next = ret;
    nodes[n].prev = ret;
    let (p, n) = (nodes[call].prev, nodes[call].next);
    nodes[p].next = call;
    nodes[n].prev = call;
}

/// A broken guarantee, with enough detail to start debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which check failed.
    pub kind: ViolationKind,
    /// What exactly was seen.
    pub detail: String,
}

/// The checks the simulator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ViolationKind {
    /// A key's history is not linearizable.
    Linearizability,
    /// The linearizability search of a key ran out of budget: a failure,
    /// not a pass.
    Undecided,
    /// A value was seen with two different mod revisions (applied twice,
    /// or state machines diverged).
    ValueRevision,
    /// A read saw a key's value although a newer write at or below the
    /// read's revision is known (not a consistent snapshot).
    StaleSnapshot,
    /// A linearizable operation saw a lower revision than one that
    /// completed before it began.
    RevisionOrder,
    /// A client's serializable reads from one member went back in revision.
    SerializableMonotonic,
    /// Two leaders in one term.
    TwoLeaders,
    /// After heal, members did not converge (revision or hash differ, or no
    /// progress).
    Convergence,
    /// An acknowledged write is missing from a member's history.
    LostWrite,
    /// The core returned an error a correct cluster never returns.
    CoreError,
    /// A response that does not fit the request (unknown key or value).
    BadResponse,
    /// A watch delivered events out of order, twice, with a gap, or other
    /// than the applied history (see [`crate::watches`]).
    Watch,
    /// Opening a watch below the compact revision did not fail with
    /// `Compacted`, or one above it did.
    WatchCompacted,
    /// Members (or a member and its final MVCC history) disagree on the
    /// events of a revision.
    EventHistory,
    /// A leased key was deleted before its lease could have expired or been
    /// revoked, or a lease's keys went at different revisions.
    Lease,
    /// A member went on after a disk write or fsync failed.
    DiskFault,
    /// A member refused to serve a corrupt read and went on running: it
    /// must stop, as the server exits, since nothing it reads can be
    /// trusted.
    CorruptRead,
    /// A range at a past revision disagrees with what the history proves
    /// of that revision, or with the compactions (see [`crate::ranges`]).
    PastRead,
    /// A member (raft-rs or ours) panicked; caught per seed by
    /// [`crate::verdict::run_caught`].
    Panic,
}

/// Step budget of one key's search before it gives up.
pub const SEARCH_BUDGET: u64 = 2_000_000;

/// The per-key projection of a history for the model checker.
pub fn key_histories(history: &[Record]) -> BTreeMap<Key, Vec<KeyOp>> {
    let mut out: BTreeMap<Key, Vec<KeyOp>> = BTreeMap::new();
    for (i, rec) in history.iter().enumerate() {
        let known = match &rec.outcome {
            Outcome::Ok(obs) => Some(obs),
            Outcome::Unknown | Outcome::Pending => None,
            Outcome::NotApplied => continue,
        };
        let complete = if known.is_some() { rec.complete } else { NEVER };
        let mut push = |key: Key, step: Step| {
            out.entry(key).or_default().push(KeyOp { invoke: rec.invoke, complete, step, record: i });
        };
        let obs_state = |o: &KvObs| Some((o.value, o.version));
        match (&rec.op, known) {
            (Op::Put { key, value }, _) => push(*key, Step::Put(*value)),
            (Op::Delete { key }, Some(Observed::Delete { deleted, .. })) => {
                push(*key, Step::Delete(Some(*deleted > 0)))
            }
            (Op::Delete { key }, _) => push(*key, Step::Delete(None)),
            (Op::Cas { key, expect, value }, Some(Observed::Cas { succeeded, current, .. })) => push(
                *key,
                Step::Cas {
                    expect: *expect,
                    value: *value,
                    result: Some((*succeeded, current.as_ref().and_then(obs_state))),
                },
            ),
            (Op::Cas { key, expect, value }, _) => {
                push(*key, Step::Cas { expect: *expect, value: *value, result: None })
            }
            (Op::Read { keys, linearizable: true }, Some(Observed::Read { kvs, .. })) => {
                for k in keys {
                    push(*k, Step::Get(kvs.get(k).and_then(obs_state)));
                }
            }
            (Op::Range { keys, query }, Some(Observed::Range { kvs, count, more, .. })) if query.revision == 0 => {
                for (k, fact) in range_facts(keys, query, kvs, *count, *more) {
                    push(k, fact_step(&fact));
                }
            }
            (Op::DeleteRange { keys, prev_kv }, Some(Observed::DeleteRange { deleted, prev, .. })) => {
                for (k, step) in delete_steps(keys, *prev_kv, Some((*deleted, prev))) {
                    push(k, step);
                }
            }
            (Op::DeleteRange { keys, prev_kv }, _) => {
                for (k, step) in delete_steps(keys, *prev_kv, None) {
                    push(k, step);
                }
            }
            (Op::Txn(txn), known) => {
                let result = match known {
                    Some(Observed::Txn { result, .. }) => Some(result),
                    _ => None,
                };
                for (k, step) in txn_steps(txn, result) {
                    push(k, step);
                }
            }
            // Past revisions are judged by [`check_past_reads`].
            (Op::Range { .. }, _) => {}
            // Serializable reads are not linearizable by design; reads
            // without an answer constrain nothing.
            (Op::Read { .. }, _) | (Op::Compact { .. }, _) => {}
            // Leased keys (`l…`) are outside the register model; the lease
            // checks ([`crate::leases`]) judge them.
            (Op::LeaseGrant { .. } | Op::LeasePut { .. } | Op::LeaseKeepAlive { .. } | Op::LeaseRevoke { .. }, _) => {}
        }
    }
    out
}

/// Runs every history check; returns what failed.
pub fn check_history(history: &[Record]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (key, ops) in key_histories(history) {
        match check_key(&ops, SEARCH_BUDGET) {
            KeyVerdict::Ok => {}
            // An undecided search is no pass: the run fails and shrinking
            // (`--shrink`) reduces it until the search decides.
            KeyVerdict::GaveUp => out.push(Violation {
                kind: ViolationKind::Undecided,
                detail: format!(
                    "key k{key}: the linearizability search of {} ops gave up after {SEARCH_BUDGET} steps",
                    ops.len()
                ),
            }),
            KeyVerdict::Violation => {
                let mut sorted: Vec<&KeyOp> = ops.iter().collect();
                sorted.sort_by_key(|o| (o.invoke, o.complete));
                let lines: Vec<String> = sorted.iter().map(|o| format!("  {}", history[o.record])).collect();
                out.push(Violation {
                    kind: ViolationKind::Linearizability,
                    detail: format!(
                        "key k{key}: history of {} ops is not linearizable:\n{}",
                        ops.len(),
                        lines.join("\n")
                    ),
                });
            }
        }
    }
    out.extend(check_revisions(history));
    out.extend(check_serializable(history));
    out.extend(check_past_reads(history));
    out
}

/// Revisions at which each key is known to have changed, and values seen
/// at two different revisions.
fn known_writes(history: &[Record]) -> (BTreeMap<Key, BTreeSet<i64>>, Vec<Violation>) {
    let mut value_rev: BTreeMap<Value, (i64, usize)> = BTreeMap::new();
    let mut changes: BTreeMap<Key, BTreeSet<i64>> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut deletes = Vec::new();
    let mut note = |value: Value, rev: i64, key: Key, rec: usize, bad: &mut Vec<Violation>| {
        changes.entry(key).or_default().insert(rev);
        match value_rev.get(&value) {
            Some((r, first)) if *r != rev => bad.push(Violation {
                kind: ViolationKind::ValueRevision,
                detail: format!(
                    "value {value} of k{key} seen at revision {r} and at {rev}:\n  {}\n  {}",
                    history[*first], history[rec]
                ),
            }),
            Some(_) => {}
            None => {
                value_rev.insert(value, (rev, rec));
            }
        }
    };
    for (i, rec) in history.iter().enumerate() {
        let Outcome::Ok(obs) = &rec.outcome else { continue };
        match (&rec.op, obs) {
            (Op::Put { key, value }, Observed::Put { revision }) => note(*value, *revision, *key, i, &mut bad),
            (Op::Cas { key, value, .. }, Observed::Cas { revision, succeeded: true, .. }) => {
                note(*value, *revision, *key, i, &mut bad)
            }
            (Op::Cas { key, .. }, Observed::Cas { current: Some(kv), .. }) => {
                note(kv.value, kv.mod_revision, *key, i, &mut bad)
            }
            (Op::Read { .. }, Observed::Read { kvs, .. }) => {
                for (k, kv) in kvs {
                    note(kv.value, kv.mod_revision, *k, i, &mut bad);
                }
            }
            (Op::Range { .. }, Observed::Range { kvs, .. }) => {
                for (k, kv) in kvs.iter().filter(|(_, kv)| kv.value != 0) {
                    note(kv.value, kv.mod_revision, *k, i, &mut bad);
                }
            }
            (Op::Txn(txn), Observed::Txn { revision, result }) => {
                let mut ran = Vec::new();
                crate::txns::executed(txn, result, &mut ran);
                for (op, r) in ran {
                    match (op, r) {
                        (TxnOp::Put(k, v), _) => note(*v, *revision, *k, i, &mut bad),
                        (TxnOp::Get(k), TxnOpResult::Get(Some(kv))) => note(kv.value, kv.mod_revision, *k, i, &mut bad),
                        (TxnOp::Delete(k), TxnOpResult::Delete(1)) => deletes.push((*k, *revision)),
                        _ => {}
                    }
                }
            }
            (Op::DeleteRange { .. }, Observed::DeleteRange { revision, prev, .. }) => {
                for (k, kv) in prev {
                    note(kv.value, kv.mod_revision, *k, i, &mut bad);
                    deletes.push((*k, *revision));
                }
            }
            (Op::Delete { key }, Observed::Delete { revision, deleted }) if *deleted > 0 => {
                deletes.push((*key, *revision))
            }
            _ => {}
        }
    }
    for (key, rev) in deletes {
        changes.entry(key).or_default().insert(rev);
    }
    (changes, bad)
}

/// Cross-key revision checks: one revision per value; reads are consistent
/// snapshots; linearizable operations see revisions that never go back in
/// real time.
fn check_revisions(history: &[Record]) -> Vec<Violation> {
    let (changes, mut out) = known_writes(history);
    for rec in history {
        let (revision, kvs): (&i64, Vec<(&Key, &KvObs)>) = match (&rec.op, &rec.outcome) {
            (_, Outcome::Ok(Observed::Read { revision, kvs })) => (revision, kvs.iter().collect()),
            (Op::Range { query, .. }, Outcome::Ok(Observed::Range { revision, kvs, .. })) => {
                let at = if query.revision > 0 { &query.revision } else { revision };
                (at, kvs.iter().map(|(k, kv)| (k, kv)).collect())
            }
            _ => continue,
        };
        for (k, kv) in kvs {
            if kv.mod_revision > *revision {
                out.push(Violation {
                    kind: ViolationKind::StaleSnapshot,
                    detail: format!(
                        "read at revision {revision} returned a write of k{k} at {}:\n  {rec}",
                        kv.mod_revision
                    ),
                });
                continue;
            }
            let newer = changes
                .get(k)
                .filter(|_| kv.mod_revision < *revision)
                .and_then(|s| s.range(kv.mod_revision + 1..=*revision).next().copied());
            if let Some(newer) = newer {
                out.push(Violation {
                    kind: ViolationKind::StaleSnapshot,
                    detail: format!(
                        "read at revision {revision} saw k{k} from revision {} but k{k} changed at {newer}:\n  {rec}",
                        kv.mod_revision
                    ),
                });
            }
        }
    }

    // Real-time order: an operation invoked after another completed sees at
    // least its revision.
    let mut timed: Vec<(u64, u64, i64, usize)> = Vec::new();
    for (i, rec) in history.iter().enumerate() {
        let rev = match &rec.outcome {
            Outcome::Ok(Observed::Put { revision })
            | Outcome::Ok(Observed::Delete { revision, .. })
            | Outcome::Ok(Observed::Cas { revision, .. }) => *revision,
            Outcome::Ok(Observed::Read { revision, .. }) if matches!(rec.op, Op::Read { linearizable: true, .. }) => {
                *revision
            }
            Outcome::Ok(Observed::Range { revision, .. })
            | Outcome::Ok(Observed::DeleteRange { revision, .. })
            | Outcome::Ok(Observed::Txn { revision, .. }) => *revision,
            _ => continue,
        };
        timed.push((rec.invoke, rec.complete, rev, i));
    }
    let mut by_complete: Vec<&(u64, u64, i64, usize)> = timed.iter().collect();
    by_complete.sort_by_key(|t| t.1);
    let mut by_invoke: Vec<&(u64, u64, i64, usize)> = timed.iter().collect();
    by_invoke.sort_by_key(|t| t.0);
    let mut done = 0;
    let mut best: Option<(i64, usize)> = None;
    for b in by_invoke {
        while done < by_complete.len() && by_complete[done].1 < b.0 {
            let a = by_complete[done];
            if best.is_none_or(|(r, _)| a.2 > r) {
                best = Some((a.2, a.3));
            }
            done += 1;
        }
        if let Some((r, a)) = best {
            if b.2 < r {
                out.push(Violation {
                    kind: ViolationKind::RevisionOrder,
                    detail: format!(
                        "revision {} seen after revision {r} had completed:\n  {}\n  {}",
                        b.2, history[a], history[b.3]
                    ),
                });
                break;
            }
        }
    }
    out
}

/// Serializable reads: per client and serving member incarnation, revisions
/// never go back (etcd promises no more for them).
fn check_serializable(history: &[Record]) -> Vec<Violation> {
    let mut last: BTreeMap<(usize, u64, u32), (i64, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|i| history[*i].invoke);
    for i in order {
        let rec = &history[i];
        let (Op::Read { linearizable: false, .. }, Outcome::Ok(Observed::Read { revision, .. })) =
            (&rec.op, &rec.outcome)
        else {
            continue;
        };
        let session = (rec.client, rec.member, rec.incarnation);
        if let Some((prev, j)) = last.get(&session) {
            if revision < prev {
                out.push(Violation {
                    kind: ViolationKind::SerializableMonotonic,
                    detail: format!(
                        "serializable read went back from {prev} to {revision}:\n  {}\n  {rec}",
                        history[*j]
                    ),
                });
            }
        }
        last.insert(session, (*revision, i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoke: u64, complete: u64, step: Step) -> KeyOp {
        KeyOp { invoke, complete, step, record: 0 }
    }

    #[test]
    fn sequential_register_history_is_linearizable() {
        let ops = vec![
            op(0, 1, Step::Put(1)),
            op(2, 3, Step::Get(Some((1, 1)))),
            op(4, 5, Step::Put(2)),
            op(6, 7, Step::Get(Some((2, 2)))),
            op(8, 9, Step::Cas { expect: Some(2), value: 3, result: Some((true, None)) }),
            op(10, 11, Step::Cas { expect: Some(2), value: 4, result: Some((false, Some((3, 3)))) }),
            op(12, 13, Step::Delete(Some(true))),
            op(14, 15, Step::Delete(Some(false))),
            op(16, 17, Step::Cas { expect: None, value: 5, result: Some((true, None)) }),
            op(18, 19, Step::Get(Some((5, 1)))),
        ];
        assert_eq!(check_key(&ops, SEARCH_BUDGET), KeyVerdict::Ok);
    }

    #[test]
    fn stale_read_is_caught() {
        let ops = vec![op(0, 1, Step::Put(1)), op(2, 3, Step::Put(2)), op(4, 5, Step::Get(Some((1, 1))))];
        assert_eq!(check_key(&ops, SEARCH_BUDGET), KeyVerdict::Violation);
    }

    #[test]
    fn wrong_version_is_caught() {
        let ops = vec![op(0, 1, Step::Put(1)), op(2, 3, Step::Put(2)), op(4, 5, Step::Get(Some((2, 1))))];
        assert_eq!(check_key(&ops, SEARCH_BUDGET), KeyVerdict::Violation);
    }

    #[test]
    fn unknown_writes_may_or_may_not_apply() {
        // Unknown put of 2: a later read may see 1 (not applied)...
        let ops = vec![op(0, 1, Step::Put(1)), op(2, NEVER, Step::Put(2)), op(10, 11, Step::Get(Some((1, 1))))];
        assert_eq!(check_key(&ops, SEARCH_BUDGET), KeyVerdict::Ok);
        // ...or 2 (applied), but not 2 then 1.
        let ops = vec![
            op(0, 1, Step::Put(1)),
            op(2, NEVER, Step::Put(2)),
            op(10, 11, Step::Get(Some((2, 2)))),
            op(12, 13, Step::Get(Some((1, 1)))),
        ];
        assert_eq!(check_key(&ops, SEARCH_BUDGET), KeyVerdict::Violation);
    }

    #[test]
    fn concurrent_writes_take_either_order() {
        let ops = vec![
            op(0, 10, Step::Put(1)),
            op(0, 10, Step::Put(2)),
            op(11, 12, Step::Get(Some((1, 2)))),
            op(11, 12, Step::Get(Some((1, 2)))),
        ];
        assert_eq!(check_key(&ops, SEARCH_BUDGET), KeyVerdict::Ok);
    }

    #[test]
    fn many_concurrent_ops_finish_within_budget() {
        let mut ops = Vec::new();
        for i in 0..40u64 {
            ops.push(op(i, i + 30, Step::Put(i + 1)));
        }
        ops.push(op(100, 101, Step::Get(Some((40, 40)))));
        assert_eq!(check_key(&ops, SEARCH_BUDGET), KeyVerdict::Ok);
    }
}
