//! Validation of [`Mvcc`] operations without looking at the store's state,
//! including the duplicate-key checks of transaction branches.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::write::{compare_operand, compare_result};
use super::{KeyRange, Mvcc};
use crate::api::{
    request_op, CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, SortOrder, SortTarget,
    TxnRequest,
};
use crate::command::Op;
use crate::engine::Engine;
use crate::error::InvalidRequest;
use crate::{Error, Result};

/// The deepest transaction nesting accepted.
const MAX_TXN_DEPTH: usize = 64;

impl<E: Engine> Mvcc<E> {
    /// Checks an operation without looking at the store's state: empty keys,
    /// bad ranges, unknown enum values,
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

pub(super) fn validate_range(req: &RangeRequest) -> Result<()> {
    validate_key_range(&req.key, &req.range_end)?;
    // A negative limit is no limit and a negative revision the current
    // one, as in etcd 3.5 (checked against it by the etcd_dropin test).
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
pub(super) fn check_puts_against_deletes(
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
