//! Multi-op and nested txns in the workload: picking one, its request, and
//! reading its answer (checking that the answer fits the txn, and that the
//! branch taken agrees with the compares on what the branch read first).
//! The model's judgement is in [`crate::txns`].

use std::cmp::Ordering;
use std::collections::BTreeSet;

use raft_kv::response_op::Response as OpResponse;
use raft_kv::{Compare, CompareResult, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, TxnResponse};

use super::World;
use crate::history::{
    key_bytes, parse_key, parse_value, Cmp, CmpTarget, Key, KvObs, Txn, TxnOp, TxnOpResult, TxnResult, Value,
};

/// Nesting depth of generated txns (1: a txn inside a branch).
const MAX_DEPTH: u32 = 1;

impl World {
    /// A random txn: one or two compares (value, version, mod or create
    /// revision, any comparison), branches of up to three operations that
    /// often begin by reading the compared keys, sometimes a nested txn.
    pub(super) fn new_txn(&mut self, c: usize) -> Txn {
        self.new_txn_at(c, 0, &mut BTreeSet::new(), &mut BTreeSet::new())
    }

    /// A txn at nesting `depth`; `then_written` and `else_written` are the
    /// keys the enclosing branch writes (etcd refuses a key written twice
    /// in one branch, nested txns included).
    fn new_txn_at(
        &mut self,
        c: usize,
        depth: u32,
        then_written: &mut BTreeSet<Key>,
        else_written: &mut BTreeSet<Key>,
    ) -> Txn {
        let keys = u64::from(self.cfg.keys.max(1));
        let last = self.clients[c].last_revision.max(1) as u64;
        let mut compares = Vec::new();
        for _ in 0..1 + self.rng_work.below(2) {
            let key = self.rng_work.below(keys) as Key;
            let r = &mut self.rng_work;
            let seen = self.clients[c].seen.get(&key).copied().flatten();
            let target = match r.below(4) {
                0 => CmpTarget::Value(seen.unwrap_or(1 + r.below(self.next_value))),
                1 => CmpTarget::Version(r.below(4) as i64),
                2 => CmpTarget::Mod(r.below(last + 1) as i64),
                _ => CmpTarget::Create(r.below(last + 1) as i64),
            };
            // Values compare as bytes: only (in)equality is meaningful.
            let order = match (target, r.below(3)) {
                (CmpTarget::Value(_), _) | (_, 0) => Ordering::Equal,
                (_, 1) => Ordering::Greater,
                _ => Ordering::Less,
            };
            // Only equality has a negation (`NotEqual`).
            let not = order == Ordering::Equal && r.chance(0.3);
            compares.push(Cmp { key, target, order, not });
        }
        let compared: Vec<Key> = compares.iter().map(|c| c.key).collect();
        let then = self.new_branch(c, depth, &compared, then_written);
        let otherwise = self.new_branch(c, depth, &compared, else_written);
        Txn { compares, then, otherwise }
    }

    fn new_branch(&mut self, c: usize, depth: u32, compared: &[Key], written: &mut BTreeSet<Key>) -> Vec<TxnOp> {
        let keys = u64::from(self.cfg.keys.max(1));
        let mut ops = Vec::new();
        if self.rng_work.chance(0.6) {
            ops.extend(compared.iter().map(|&k| TxnOp::Get(k)));
        }
        for _ in 0..self.rng_work.below(4) {
            let key = self.rng_work.below(keys) as Key;
            match self.rng_work.below(8) {
                0..=2 if written.insert(key) => {
                    let v = self.next_value;
                    self.next_value += 1;
                    ops.push(TxnOp::Put(key, v));
                }
                3 if written.insert(key) => ops.push(TxnOp::Delete(key)),
                4 if depth < MAX_DEPTH => {
                    // The nested txn's writes count against this branch
                    // whichever of its branches runs.
                    let mut then_written = written.clone();
                    let mut else_written = written.clone();
                    let nested = self.new_txn_at(c, depth + 1, &mut then_written, &mut else_written);
                    written.extend(then_written);
                    written.extend(else_written);
                    ops.push(TxnOp::Txn(Box::new(nested)));
                }
                _ => ops.push(TxnOp::Get(key)),
            }
        }
        ops
    }
}

/// The request of a txn.
pub(super) fn txn_request(txn: &Txn) -> TxnRequest {
    let mut req = TxnRequest::new();
    for cmp in &txn.compares {
        let result = match (cmp.order, cmp.not) {
            (Ordering::Equal, false) => CompareResult::Equal,
            (Ordering::Equal, true) => CompareResult::NotEqual,
            (Ordering::Greater, _) => CompareResult::Greater,
            (Ordering::Less, _) => CompareResult::Less,
        };
        let key = key_bytes(cmp.key);
        req = req.when(match cmp.target {
            CmpTarget::Value(v) => Compare::value(key, result, v.to_string()),
            CmpTarget::Version(n) => Compare::version(key, result, n),
            CmpTarget::Mod(n) => Compare::mod_revision(key, result, n),
            CmpTarget::Create(n) => Compare::create_revision(key, result, n),
        });
    }
    for op in &txn.then {
        req = req.and_then(request_op(op));
    }
    for op in &txn.otherwise {
        req = req.or_else(request_op(op));
    }
    req
}

fn request_op(op: &TxnOp) -> raft_kv::RequestOp {
    match op {
        TxnOp::Put(k, v) => PutRequest::new(key_bytes(*k), v.to_string()).into(),
        TxnOp::Delete(k) => DeleteRangeRequest::key(key_bytes(*k)).into(),
        TxnOp::Get(k) => RangeRequest::key(key_bytes(*k)).into(),
        TxnOp::Txn(t) => txn_request(t).into(),
    }
}

fn kv_obs(kv: &raft_kv::KeyValue, key: Key) -> Result<KvObs, String> {
    if parse_key(&kv.key) != Some(key) {
        return Err(format!("txn read of k{key} returned {:?}", kv.key));
    }
    let value: Value = parse_value(&kv.value).ok_or_else(|| format!("unknown value {:?}", kv.value))?;
    Ok(KvObs { value, version: kv.version, mod_revision: kv.mod_revision, create_revision: kv.create_revision })
}

/// Reads a txn's answer: one result per operation of the branch taken,
/// each of the operation's kind; and when the branch begins by reading
/// every compared key, the compares on those reads must give the branch
/// taken (nothing ran between the compares and those reads).
pub(crate) fn observe_txn(txn: &Txn, resp: &TxnResponse) -> Result<TxnResult, String> {
    let branch = if resp.succeeded { &txn.then } else { &txn.otherwise };
    if branch.len() != resp.responses.len() {
        return Err(format!("txn branch of {} ops answered {} responses", branch.len(), resp.responses.len()));
    }
    let mut results = Vec::new();
    for (op, r) in branch.iter().zip(&resp.responses) {
        let result = match (op, &r.response) {
            (TxnOp::Put(..), Some(OpResponse::ResponsePut(_))) => TxnOpResult::Put,
            (TxnOp::Delete(_), Some(OpResponse::ResponseDeleteRange(d))) if (0..=1).contains(&d.deleted) => {
                TxnOpResult::Delete(d.deleted)
            }
            (TxnOp::Get(k), Some(OpResponse::ResponseRange(g))) if g.kvs.len() <= 1 => {
                TxnOpResult::Get(g.kvs.first().map(|kv| kv_obs(kv, *k)).transpose()?)
            }
            (TxnOp::Txn(t), Some(OpResponse::ResponseTxn(n))) => TxnOpResult::Txn(observe_txn(t, n)?),
            (op, r) => return Err(format!("txn op {op:?} answered {r:?}")),
        };
        results.push(result);
    }
    // The compares against the branch's leading reads.
    let mut leading = std::collections::BTreeMap::new();
    for (op, r) in branch.iter().zip(&results) {
        match (op, r) {
            (TxnOp::Get(k), TxnOpResult::Get(kv)) => {
                leading.entry(*k).or_insert(*kv);
            }
            _ => break,
        }
    }
    if txn.compares.iter().all(|c| leading.contains_key(&c.key)) {
        let holds = txn.compares.iter().all(|c| c.holds(leading[&c.key].as_ref()));
        if holds != resp.succeeded {
            return Err(format!(
                "txn took the {} branch, but its compares on what that branch read give {holds}: {:?}",
                if resp.succeeded { "success" } else { "failure" },
                txn.compares
            ));
        }
    }
    Ok(TxnResult { succeeded: resp.succeeded, results })
}
