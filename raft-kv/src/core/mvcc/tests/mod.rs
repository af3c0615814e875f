//! Tests of [`Mvcc`]. Every scenario runs four times: on [`MemEngine`] and on
//! [`RocksEngine`], each once with every operation left staged (never
//! committed) and once committing after every operation. After each scenario
//! the store is committed, reopened and compared with the original.
//!
//! This file holds the shared harness ([`H`] and the `engine_tests!` macro
//! that runs a scenario on every engine and commit mode); the scenarios are
//! in the submodules, by the part of the store they exercise.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::api::{compare::TargetUnion, CompareResult as R};
use crate::engine::{MemEngine, RocksEngine};
// What the scenarios use beyond `mvcc`'s own imports (they see this
// module's names through `use super::*`).
use super::encoding::encode_key;
use super::validate::check_puts_against_deletes;
use crate::api::{
    response_op, CompactionRequest, CompactionResponse, Compare, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, SortOrder, SortTarget,
    TxnRequest, TxnResponse,
};
use crate::command::{Op, Response};

/// A store under test.
struct H<E: Engine> {
    m: Mvcc<E>,
    engine: E,
    autocommit: bool,
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl<E: Engine> H<E> {
    fn new(engine: E, autocommit: bool) -> Self {
        H { m: Mvcc::open(engine.clone()).unwrap(), engine, autocommit }
    }

    fn apply(&mut self, op: Op) -> Result<Response> {
        let before = (self.m.revision(), self.m.hash(0).unwrap(), self.m.overlay.len(), self.m.key_count());
        let res = self.m.apply(&op);
        if res.is_err() {
            // A failed apply stages nothing.
            let after = (self.m.revision(), self.m.hash(0).unwrap(), self.m.overlay.len(), self.m.key_count());
            assert_eq!(before, after, "failed apply changed state: {res:?}");
        }
        if self.autocommit {
            self.m.commit(WriteBatch::new()).unwrap();
        }
        res
    }

    fn put_req(&mut self, req: PutRequest) -> Result<PutResponse> {
        match self.apply(Op::Put(req))? {
            Response::Put(r) => Ok(r),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn put(&mut self, k: &str, v: &str) -> PutResponse {
        self.put_req(PutRequest::new(b(k), b(v))).unwrap()
    }

    fn del(&mut self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        match self.apply(Op::DeleteRange(req))? {
            Response::DeleteRange(r) => Ok(r),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn txn(&mut self, req: TxnRequest) -> Result<TxnResponse> {
        match self.apply(Op::Txn(req))? {
            Response::Txn(r) => Ok(r),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Compacts logically, then commits and runs the physical part, which
    /// must not change what the store shows (reads and hash alike).
    fn compact(&mut self, revision: i64) -> Result<CompactionResponse> {
        let r = match self.apply(Op::Compact(CompactionRequest { revision, physical: false }))? {
            Response::Compact(r) => r,
            other => panic!("unexpected {other:?}"),
        };
        let before = (self.m.hash(0).unwrap(), self.all_at(revision));
        if !self.autocommit {
            assert!(self.m.take_compaction().is_none(), "handed out before the commit");
        }
        self.m.commit(WriteBatch::new()).unwrap();
        let job = self.m.take_compaction().expect("a compaction job after the commit");
        assert_eq!(job.revision(), revision);
        job.run().unwrap();
        assert!(self.m.take_compaction().is_none(), "one job per compaction");
        assert_eq!(
            (self.m.hash(0).unwrap(), self.all_at(revision)),
            before,
            "physical compaction changed what is seen"
        );
        Ok(r)
    }

    /// Every key-value at `revision`.
    fn all_at(&self, revision: i64) -> Vec<KeyValue> {
        self.range(RangeRequest::prefix(Bytes::new()).at_revision(revision)).unwrap().kvs
    }

    fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.m.range(&req)
    }

    fn get(&self, k: &str) -> Option<KeyValue> {
        let mut resp = self.range(RangeRequest::key(b(k))).unwrap();
        assert!(resp.kvs.len() <= 1);
        resp.kvs.pop()
    }

    fn get_at(&self, k: &str, rev: i64) -> Option<KeyValue> {
        self.range(RangeRequest::key(b(k)).at_revision(rev)).unwrap().kvs.pop()
    }

    fn value(&self, k: &str) -> Option<String> {
        self.get(k).map(|kv| String::from_utf8(kv.value.to_vec()).unwrap())
    }

    fn keys(&self, req: RangeRequest) -> Vec<String> {
        keys_of(&self.range(req).unwrap())
    }

    /// Every stored version (user key, revision), staged ones included.
    fn versions(&self) -> Vec<(Vec<u8>, i64)> {
        let mut out = Vec::new();
        self.m
            .scan_history(b"", None, &mut |k, _| {
                out.push(decode_key(k)?);
                Ok(true)
            })
            .unwrap();
        out
    }
}

fn keys_of(resp: &RangeResponse) -> Vec<String> {
    resp.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::Invalid(_)))
}

/// Commits, reopens on the same engine and checks the state is identical.
fn check_reopen<E: Engine>(h: &mut H<E>) {
    h.m.commit(WriteBatch::new()).unwrap();
    assert!(h.m.overlay.is_empty());
    let reopened = Mvcc::open(h.engine.clone()).unwrap();
    assert_eq!(reopened.revision(), h.m.revision());
    assert_eq!(reopened.compact_revision(), h.m.compact_revision());
    assert_eq!(reopened.key_count(), h.m.key_count());
    assert_eq!(reopened.index, h.m.index);
    assert_eq!(reopened.hash(0).unwrap(), h.m.hash(0).unwrap());
    let all = RangeRequest::prefix(Bytes::new());
    for rev in h.m.compact_revision().max(1)..=h.m.revision() {
        let req = all.clone().at_revision(rev);
        assert_eq!(reopened.range(&req).unwrap(), h.m.range(&req).unwrap(), "at revision {rev}");
        assert_eq!(reopened.hash(rev).unwrap(), h.m.hash(rev).unwrap());
    }
}

macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod mem_staged {
            $( #[test] fn $name() {
                let mut h = super::H::new(crate::engine::MemEngine::new(), false);
                super::$name(&mut h);
                super::check_reopen(&mut h);
            } )*
        }
        mod mem_committed {
            $( #[test] fn $name() {
                let mut h = super::H::new(crate::engine::MemEngine::new(), true);
                super::$name(&mut h);
                super::check_reopen(&mut h);
            } )*
        }
        mod rocks_staged {
            $( #[test] fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let mut h = super::H::new(crate::engine::RocksEngine::open(dir.path()).unwrap(), false);
                super::$name(&mut h);
                super::check_reopen(&mut h);
            } )*
        }
        mod rocks_committed {
            $( #[test] fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let mut h = super::H::new(crate::engine::RocksEngine::open(dir.path()).unwrap(), true);
                super::$name(&mut h);
                super::check_reopen(&mut h);
            } )*
        }
    };
}

mod compaction;
mod read;
mod txn;
mod validate;
mod write;
