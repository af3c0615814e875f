//! The write path of [`Mvcc`]: applying operations (put, delete, txn,
//! compact) and staging their writes in the in-memory overlay.

use std::cmp::Ordering;

use bytes::Bytes;

use super::encoding::{encode_key, Record};
use super::{KeyMeta, KeyRange, Mvcc, Undo};
use crate::api::{
    compare::TargetUnion, request_op, response_op, CompactionRequest, CompactionResponse, Compare, CompareResult,
    CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue, PutRequest, PutResponse, ResponseOp, TxnRequest,
    TxnResponse,
};
use crate::api::{Event, EventType};
use crate::command::{Op, Response};
use crate::engine::Engine;
use crate::error::InvalidRequest;
use crate::{Error, Result};

/// The write context of one applied operation: all its writes share `rev`
/// and are numbered in the order they apply (etcd's sub-revisions).
#[derive(Debug)]
struct Exec {
    /// The revision the operation's writes get.
    rev: i64,
    /// The sub-revision of the operation's next write.
    sub: i64,
    /// True once the operation has changed something.
    changed: bool,
}

impl Exec {
    /// The sub-revision of a new write; the next one gets the one after.
    fn next_sub(&mut self) -> i64 {
        let sub = self.sub;
        self.sub += 1;
        sub
    }

    /// The newest revision visible to reads made inside the operation.
    fn visible(&self) -> i64 {
        if self.changed {
            self.rev
        } else {
            self.rev - 1
        }
    }
}

impl<E: Engine> Mvcc<E> {
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

    // ---- applying -------------------------------------------------------

    fn apply_op(&mut self, op: &Op) -> Result<Response> {
        let mut exec = Exec { rev: self.revision + 1, sub: 0, changed: false };
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
        let prev = self.index.get(&req.key);
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
            sub_revision: exec.next_sub(),
            value,
        };
        self.stage(encode_key(&req.key, exec.rev), Some(record.encode()));
        self.set_index(req.key.clone(), Some(meta));
        exec.changed = true;
        let mut kv = meta.to_kv(req.key.clone());
        kv.value = Bytes::from(record.value);
        let event_prev = prev_kv.clone().or_else(|| prev.map(|p| p.to_kv(req.key.clone())));
        self.events.push(Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: event_prev });
        Ok(PutResponse { header: crate::api::header(exec.rev), prev_kv: prev_kv.filter(|_| req.prev_kv) })
    }

    fn delete_range(&mut self, req: &DeleteRangeRequest, exec: &mut Exec) -> Result<DeleteRangeResponse> {
        let doomed = self.live_keys(&KeyRange::new(&req.key, &req.range_end));
        let mut prevs = Vec::with_capacity(doomed.len());
        for (key, meta) in &doomed {
            prevs.push(if req.prev_kv || self.prev_values {
                self.load_kv(key, *meta)?
            } else {
                meta.to_kv(key.clone())
            });
        }
        for ((key, _), prev) in doomed.iter().zip(&prevs) {
            self.stage(encode_key(key, exec.rev), Some(Record::tombstone(exec.next_sub()).encode()));
            self.set_index(key.clone(), None);
            let kv = KeyValue { key: key.clone(), mod_revision: exec.rev, ..Default::default() };
            self.events.push(Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: Some(prev.clone()) });
        }
        let prev_kvs = if req.prev_kv { prevs } else { Vec::new() };
        exec.changed |= !doomed.is_empty() && !crate::mutation::active("delete-range-no-revision");
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
                    // A transaction's reads are never bounded: the outcome of an
                    // applied entry must not depend on a member's settings.
                    response_op::Response::ResponseRange(self.range_at(r, visible, usize::MAX)?)
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
            Some(meta) => self.index.insert(&key, meta),
            None => self.index.remove(&key),
        };
        self.undo.push(Undo::Index(key, old));
    }

    /// Undoes every change recorded since the last `undo.clear()`.
    fn rollback(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Index(key, Some(meta)) => {
                    self.index.insert(&key, meta);
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

/// The operand of a compare, checked against its target.
#[derive(Debug, Clone, Copy)]
pub(super) enum Operand<'a> {
    /// An integer target and the number to compare it with.
    Int(CompareTarget, i64),
    /// The value to compare the key's value with.
    Value(&'a [u8]),
}

pub(super) fn compare_result(result: i32) -> Result<CompareResult> {
    CompareResult::try_from(result).map_err(|_| Error::invalid(format!("unknown compare result {result}")))
}

pub(super) fn compare_operand(cmp: &Compare) -> Result<Operand<'_>> {
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
