//! A txn in the per-key linearizability model ([`crate::checker`]).
//!
//! A txn is atomic, so for each key it touches it is one step: the
//! compares on that key (as guards on its state), then the key's
//! operations in the branch taken, nested txns included, in order
//! ([`Step::Seq`]). The branch taken is known when the txn answered; when
//! its outcome is unknown the step is either branch ([`Step::Either`]),
//! reads saying nothing. The model state holds a key's value and version:
//! a compare on a mod or create revision of a present key cannot be judged
//! there and counts as either way (the leading-read check of
//! `world::txns::observe_txn` judges those).
//!
//! ```
//! use std::cmp::Ordering;
//! use sim::checker::{apply, Step};
//! use sim::history::{Cmp, CmpTarget, Txn, TxnOp, TxnOpResult, TxnResult};
//! use sim::txns::txn_steps;
//! // if k0 is missing (version 0) put 7 at k0, else read k0.
//! let txn = Txn {
//!     compares: vec![Cmp { key: 0, target: CmpTarget::Version(0), order: Ordering::Equal, not: false }],
//!     then: vec![TxnOp::Put(0, 7)],
//!     otherwise: vec![TxnOp::Get(0)],
//! };
//! let done = TxnResult { succeeded: true, results: vec![TxnOpResult::Put] };
//! let step = &txn_steps(&txn, Some(&done))[&0];
//! assert_eq!(apply(None, step), Some(Some((7, 1))));
//! // It cannot have succeeded on a present key.
//! assert_eq!(apply(Some((3, 1)), step), None);
//! ```

use std::collections::BTreeMap;

use crate::checker::{State, Step};
use crate::history::{Cmp, CmpTarget, Key, KvObs, Txn, TxnOp, TxnOpResult, TxnResult};

/// Whether `cmp` holds on a key in model state `state` (`None`: cannot be
/// told from the state).
pub fn holds_on(cmp: &Cmp, state: State) -> Option<bool> {
    match (state, cmp.target) {
        (None, _) => Some(cmp.holds(None)),
        (Some(_), CmpTarget::Mod(_) | CmpTarget::Create(_)) => None,
        (Some((value, version)), _) => {
            Some(cmp.holds(Some(&KvObs { value, version, mod_revision: 0, create_revision: 0 })))
        }
    }
}

/// Whether the guard's verdict (`all`: every compare holds; else not
/// every one) is possible in `state`.
pub fn guard_allows(cmps: &[Cmp], all: bool, state: State) -> bool {
    let verdicts: Vec<Option<bool>> = cmps.iter().map(|c| holds_on(c, state)).collect();
    if all {
        verdicts.iter().all(|v| *v != Some(false))
    } else {
        verdicts.iter().any(|v| *v != Some(true))
    }
}

/// Every key the txn touches (compares and operations, nested included).
fn touched(txn: &Txn, out: &mut Vec<Key>) {
    out.extend(txn.compares.iter().map(|c| c.key));
    for op in txn.then.iter().chain(&txn.otherwise) {
        match op {
            TxnOp::Put(k, _) | TxnOp::Delete(k) | TxnOp::Get(k) => out.push(*k),
            TxnOp::Txn(t) => touched(t, out),
        }
    }
}

/// The model step of `txn` for every key it touches (`result`: its answer,
/// when known).
pub fn txn_steps(txn: &Txn, result: Option<&TxnResult>) -> BTreeMap<Key, Step> {
    let mut keys = Vec::new();
    touched(txn, &mut keys);
    keys.into_iter().map(|k| (k, txn_step(txn, result, k))).collect()
}

/// The guard on `key` of a branch: all compares on it hold (success), or
/// not all compares hold when they are all on `key` (failure; a failure
/// caused by another key says nothing of this one).
fn guard(txn: &Txn, succeeded: bool, key: Key) -> Option<Step> {
    let on_key: Vec<Cmp> = txn.compares.iter().copied().filter(|c| c.key == key).collect();
    let useful = if succeeded { !on_key.is_empty() } else { on_key.len() == txn.compares.len() };
    useful.then_some(Step::Guard { cmps: on_key, all: succeeded })
}

fn txn_step(txn: &Txn, result: Option<&TxnResult>, key: Key) -> Step {
    let branch = |succeeded: bool, results: Option<&[TxnOpResult]>| {
        let ops = if succeeded { &txn.then } else { &txn.otherwise };
        let mut steps: Vec<Step> = guard(txn, succeeded, key).into_iter().collect();
        steps.extend(branch_steps(ops, results, key));
        Step::Seq(steps)
    };
    match result {
        Some(r) => branch(r.succeeded, Some(&r.results)),
        None => Step::Either(vec![branch(true, None), branch(false, None)]),
    }
}

fn branch_steps(ops: &[TxnOp], results: Option<&[TxnOpResult]>, key: Key) -> Vec<Step> {
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let result = results.and_then(|r| r.get(i));
        match (op, result) {
            (TxnOp::Put(k, v), _) if *k == key => out.push(Step::Put(*v)),
            (TxnOp::Delete(k), Some(TxnOpResult::Delete(n))) if *k == key => out.push(Step::Delete(Some(*n > 0))),
            (TxnOp::Delete(k), _) if *k == key => out.push(Step::Delete(None)),
            (TxnOp::Get(k), Some(TxnOpResult::Get(kv))) if *k == key => {
                out.push(Step::Get(kv.map(|o| (o.value, o.version))))
            }
            (TxnOp::Txn(t), r) => {
                let mut keys = Vec::new();
                touched(t, &mut keys);
                if keys.contains(&key) {
                    let nested = match r {
                        Some(TxnOpResult::Txn(res)) => Some(res),
                        _ => None,
                    };
                    out.push(txn_step(t, nested, key));
                }
            }
            _ => {}
        }
    }
    out
}

/// The operations the txn ran (the branches taken, nested included, in
/// order), each with its result.
pub fn executed<'a>(txn: &'a Txn, result: &'a TxnResult, out: &mut Vec<(&'a TxnOp, &'a TxnOpResult)>) {
    let branch = if result.succeeded { &txn.then } else { &txn.otherwise };
    for (op, r) in branch.iter().zip(&result.results) {
        match (op, r) {
            (TxnOp::Txn(t), TxnOpResult::Txn(nested)) => executed(t, nested, out),
            _ => out.push((op, r)),
        }
    }
}
