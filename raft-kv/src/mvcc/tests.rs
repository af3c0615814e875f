//! Tests of [`Mvcc`]. Every scenario runs four times: on [`MemEngine`] and on
//! [`RocksEngine`], each once with every operation left staged (never
//! committed) and once committing after every operation. After each scenario
//! the store is committed, reopened and compared with the original.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::api::{compare::TargetUnion, CompareResult as R};
use crate::engine::{MemEngine, RocksEngine};

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

engine_tests!(
    put_tracks_versions_and_revisions,
    put_prev_kv_and_ignore_flags,
    delete_range_with_prev_kvs,
    range_shapes,
    range_limit_sort_and_filters,
    range_at_past_revision,
    keys_with_zero_and_ff_bytes,
    compare_every_operator_and_target,
    compare_over_ranges_and_missing_keys,
    txn_is_atomic_at_one_revision,
    nested_txn,
    duplicate_keys_in_txn_rejected,
    compaction,
    compaction_of_staged_history,
    apply_twice_before_commit,
    failed_apply_stages_nothing,
    validation_errors,
    hash_covers_history,
);

fn put_tracks_versions_and_revisions<E: Engine>(h: &mut H<E>) {
    assert_eq!(h.m.revision(), 1);
    assert_eq!(h.m.compact_revision(), 0);
    assert_eq!(h.m.key_count(), 0);
    assert_eq!(h.get("a"), None);

    assert_eq!(h.put("a", "1").revision(), 2);
    let kv = h.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, &kv.value[..]), (2, 2, 1, &b"1"[..]));

    assert_eq!(h.put("a", "2").revision(), 3);
    let kv = h.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, &kv.value[..]), (2, 3, 2, &b"2"[..]));

    h.put_req(PutRequest::new(b("b"), b("x")).with_lease(7)).unwrap();
    let kv = h.get("b").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, kv.lease), (4, 4, 1, 7));
    assert_eq!(h.m.revision(), 4);
    assert_eq!(h.m.key_count(), 2);

    // Deleting and recreating starts a new generation.
    h.del(DeleteRangeRequest::key(b("a"))).unwrap();
    h.put("a", "3");
    let kv = h.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (6, 6, 1));

    // Empty value is a value.
    h.put("e", "");
    assert_eq!(h.value("e").as_deref(), Some(""));
}

fn put_prev_kv_and_ignore_flags<E: Engine>(h: &mut H<E>) {
    let r = h.put_req(PutRequest::new(b("k"), b("v1")).with_prev_kv().with_lease(5)).unwrap();
    assert_eq!(r.prev_kv, None);
    let r = h.put_req(PutRequest::new(b("k"), b("v2")).with_prev_kv()).unwrap();
    let prev = r.prev_kv.unwrap();
    assert_eq!((&prev.value[..], prev.version, prev.mod_revision, prev.lease), (&b"v1"[..], 1, 2, 5));
    // Without prev_kv nothing is returned.
    assert_eq!(h.put("k", "v3").prev_kv, None);

    // ignore_value keeps the value, takes the new lease.
    let req = PutRequest { key: b("k"), lease: 9, ignore_value: true, ..Default::default() };
    let r = h.put_req(req).unwrap();
    assert_eq!(r.revision(), 5);
    let kv = h.get("k").unwrap();
    assert_eq!((&kv.value[..], kv.lease, kv.version), (&b"v3"[..], 9, 4));

    // ignore_lease keeps the lease, takes the new value.
    let req = PutRequest { key: b("k"), value: b("v4"), ignore_lease: true, ..Default::default() };
    h.put_req(req).unwrap();
    let kv = h.get("k").unwrap();
    assert_eq!((&kv.value[..], kv.lease, kv.version), (&b"v4"[..], 9, 5));

    // Both on a missing key fail; with a value/lease they are invalid.
    let rev = h.m.revision();
    for req in [
        PutRequest { key: b("missing"), ignore_value: true, ..Default::default() },
        PutRequest { key: b("missing"), ignore_lease: true, ..Default::default() },
        PutRequest { key: b("k"), value: b("x"), ignore_value: true, ..Default::default() },
        PutRequest { key: b("k"), lease: 1, ignore_lease: true, ..Default::default() },
    ] {
        assert!(is_invalid(h.put_req(req)));
    }
    assert_eq!(h.m.revision(), rev);
    assert_eq!(h.get("missing"), None);
}

fn delete_range_with_prev_kvs<E: Engine>(h: &mut H<E>) {
    for k in ["a", "b", "c", "d"] {
        h.put(k, &format!("v{k}"));
    }
    assert_eq!(h.m.revision(), 5);
    let r = h.del(DeleteRangeRequest { key: b("b"), range_end: b("d"), prev_kv: true }).unwrap();
    assert_eq!((r.revision(), r.deleted), (6, 2));
    assert_eq!(
        r.prev_kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect::<Vec<_>>(),
        vec![(b("b"), b("vb")), (b("c"), b("vc"))]
    );
    assert_eq!(h.keys(RangeRequest::prefix(Bytes::new())), ["a", "d"]);
    assert_eq!(h.m.key_count(), 2);

    // Deleting nothing leaves the revision alone.
    let r = h.del(DeleteRangeRequest::key(b("zzz"))).unwrap();
    assert_eq!((r.revision(), r.deleted), (6, 0));
    assert_eq!(h.m.revision(), 6);

    // Without prev_kv, no prev_kvs.
    let r = h.del(DeleteRangeRequest::key(b("a"))).unwrap();
    assert_eq!((r.revision(), r.deleted, r.prev_kvs.len()), (7, 1, 0));

    // Delete everything.
    h.put("x", "1");
    let r = h.del(DeleteRangeRequest::prefix(Bytes::new()).with_prev_kv()).unwrap();
    assert_eq!((r.revision(), r.deleted), (9, 2));
    assert_eq!(h.m.key_count(), 0);
    // The deleted keys are still visible in history.
    assert_eq!(h.get_at("b", 5).unwrap().value, b("vb"));
    assert_eq!(h.get_at("b", 6), None);
}

fn range_shapes<E: Engine>(h: &mut H<E>) {
    for k in ["a", "ab", "abc", "abd", "b", "c"] {
        h.put(k, k);
    }
    assert_eq!(h.keys(RangeRequest::key(b("ab"))), ["ab"]);
    assert_eq!(h.keys(RangeRequest::key(b("zz"))), Vec::<String>::new());
    assert_eq!(h.keys(RangeRequest::prefix(b("ab"))), ["ab", "abc", "abd"]);
    assert_eq!(h.keys(RangeRequest::range(b("ab"), b("b"))), ["ab", "abc", "abd"]);
    assert_eq!(h.keys(RangeRequest::range(b("ab"), b("ab"))), Vec::<String>::new());
    assert_eq!(h.keys(RangeRequest::from_key(b("abd"))), ["abd", "b", "c"]);
    assert_eq!(h.keys(RangeRequest::range(b("\0"), b("\0"))), ["a", "ab", "abc", "abd", "b", "c"]);
    let r = h.range(RangeRequest::prefix(b("a"))).unwrap();
    assert_eq!((r.count, r.more, r.revision()), (4, false, 7));
    assert_eq!(r.kvs[1].value, b("ab"));
}

fn range_limit_sort_and_filters<E: Engine>(h: &mut H<E>) {
    // key: (value, writes)
    h.put("a", "3"); // rev 2
    h.put("b", "1"); // rev 3
    h.put("c", "2"); // rev 4
    h.put("a", "3"); // rev 5: a version 2
    h.put("a", "3"); // rev 6: a version 3
    h.put("b", "1"); // rev 7: b version 2
                     // create: a2 b3 c4; mod: a6 b7 c4; version: a3 b2 c1; value: a"3" b"1" c"2"
    let all = || RangeRequest::prefix(Bytes::new());
    let sorted = |t, o| h.keys(all().sorted(t, o));
    use SortOrder::*;
    use SortTarget::*;
    assert_eq!(sorted(Key, None), ["a", "b", "c"]);
    assert_eq!(sorted(Key, Ascend), ["a", "b", "c"]);
    assert_eq!(sorted(Key, Descend), ["c", "b", "a"]);
    assert_eq!(sorted(Version, None), ["c", "b", "a"]);
    assert_eq!(sorted(Version, Ascend), ["c", "b", "a"]);
    assert_eq!(sorted(Version, Descend), ["a", "b", "c"]);
    assert_eq!(sorted(Create, Ascend), ["a", "b", "c"]);
    assert_eq!(sorted(Create, Descend), ["c", "b", "a"]);
    assert_eq!(sorted(Mod, Ascend), ["c", "a", "b"]);
    assert_eq!(sorted(Mod, Descend), ["b", "a", "c"]);
    assert_eq!(sorted(Value, Ascend), ["b", "c", "a"]);
    assert_eq!(sorted(Value, None), ["b", "c", "a"]);
    assert_eq!(sorted(Value, Descend), ["a", "c", "b"]);
    // Sorting by value with keys_only still sorts by the value.
    let r = h.range(RangeRequest { keys_only: true, ..all().sorted(Value, Descend) }).unwrap();
    assert_eq!(keys_of(&r), ["a", "c", "b"]);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));

    // Limit applies after sorting; count is the whole range.
    let r = h.range(all().with_limit(2)).unwrap();
    assert_eq!((keys_of(&r), r.count, r.more), (vec!["a".to_string(), "b".into()], 3, true));
    assert_eq!(r.kvs[0].value, b("3"));
    let r = h.range(all().with_limit(3)).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (3, 3, false));
    let r = h.range(all().sorted(Mod, Descend).with_limit(1)).unwrap();
    assert_eq!((keys_of(&r), r.more), (vec!["b".to_string()], true));

    // keys_only and count_only.
    let r = h.range(RangeRequest { keys_only: true, ..all() }).unwrap();
    assert_eq!(keys_of(&r), ["a", "b", "c"]);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty() && kv.version > 0));
    let r = h.range(RangeRequest { count_only: true, ..all() }).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 3, false));
    let r = h.range(RangeRequest { count_only: true, ..all().at_revision(3) }).unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 2));

    // Revision filters; count stays the range's size.
    let filtered = |f: fn(&mut RangeRequest)| {
        let mut req = all();
        f(&mut req);
        let r = h.range(req).unwrap();
        assert_eq!(r.count, 3);
        keys_of(&r)
    };
    assert_eq!(filtered(|r| r.min_mod_revision = 6), ["a", "b"]);
    assert_eq!(filtered(|r| r.max_mod_revision = 6), ["a", "c"]);
    assert_eq!(filtered(|r| r.min_create_revision = 3), ["b", "c"]);
    assert_eq!(filtered(|r| r.max_create_revision = 3), ["a", "b"]);
    assert_eq!(
        filtered(|r| {
            r.min_create_revision = 3;
            r.max_mod_revision = 4;
        }),
        ["c"]
    );
    // Filters at a past revision too: at 4, mods are a2 b3 c4.
    let mut req = all().at_revision(4);
    req.min_mod_revision = 3;
    assert_eq!(h.keys(req), ["b", "c"]);
}

fn range_at_past_revision<E: Engine>(h: &mut H<E>) {
    h.put("a", "a1"); // 2
    h.put("b", "b1"); // 3
    h.put("a", "a2"); // 4
    h.del(DeleteRangeRequest::key(b("b"))).unwrap(); // 5
    h.put("c", "c1"); // 6
    h.put("b", "b2"); // 7
    let at = |rev| {
        let r = h.range(RangeRequest::prefix(Bytes::new()).at_revision(rev)).unwrap();
        assert_eq!(r.revision(), 7);
        assert_eq!(r.count, r.kvs.len() as i64);
        r.kvs
            .iter()
            .map(|kv| {
                format!(
                    "{}={}@{}",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value),
                    kv.mod_revision
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(at(1), Vec::<String>::new());
    assert_eq!(at(2), ["a=a1@2"]);
    assert_eq!(at(3), ["a=a1@2", "b=b1@3"]);
    assert_eq!(at(4), ["a=a2@4", "b=b1@3"]);
    assert_eq!(at(5), ["a=a2@4"]);
    assert_eq!(at(6), ["a=a2@4", "c=c1@6"]);
    assert_eq!(at(7), ["a=a2@4", "b=b2@7", "c=c1@6"]);
    assert_eq!(at(0), at(7));
    let a = h.get_at("a", 3).unwrap();
    assert_eq!((a.create_revision, a.version), (2, 1));
    let b2 = h.get_at("b", 7).unwrap();
    assert_eq!((b2.create_revision, b2.version), (7, 1));
    // Limit and sort at a past revision.
    let r = h
        .range(
            RangeRequest::prefix(Bytes::new())
                .at_revision(4)
                .with_limit(1)
                .sorted(SortTarget::Value, SortOrder::Descend),
        )
        .unwrap();
    assert_eq!((keys_of(&r), r.count, r.more), (vec!["b".to_string()], 2, true));
    assert_eq!(
        h.range(RangeRequest::key(b("a")).at_revision(8)),
        Err(Error::FutureRevision { requested: 8, current: 7 })
    );
}

fn keys_with_zero_and_ff_bytes<E: Engine>(h: &mut H<E>) {
    let keys: [&[u8]; 7] = [b"a", b"a\0", b"a\0\0", b"a\0b", b"a\x01", b"a\xff", b"a\xff\xff"];
    for k in keys {
        h.put_req(PutRequest::new(Bytes::copy_from_slice(k), Bytes::copy_from_slice(k))).unwrap();
    }
    h.put_req(PutRequest::new(Bytes::from_static(b"\xff"), b("top"))).unwrap();
    let rev = h.m.revision();
    h.put_req(PutRequest::new(Bytes::from_static(b"a"), b("new"))).unwrap();
    for at in [0, rev] {
        let got = |req: RangeRequest| -> Vec<Vec<u8>> {
            h.range(req.at_revision(at)).unwrap().kvs.iter().map(|kv| kv.key.to_vec()).collect()
        };
        assert_eq!(got(RangeRequest::key(Bytes::from_static(b"a"))), [b"a".to_vec()]);
        assert_eq!(got(RangeRequest::key(Bytes::from_static(b"a\0"))), [b"a\0".to_vec()]);
        assert_eq!(got(RangeRequest::prefix(Bytes::from_static(b"a"))), keys.map(<[u8]>::to_vec));
        assert_eq!(
            got(RangeRequest::prefix(Bytes::from_static(b"a\0"))),
            keys[1..4].iter().map(|k| k.to_vec()).collect::<Vec<_>>()
        );
        assert_eq!(got(RangeRequest::prefix(Bytes::from_static(b"a\xff"))), [b"a\xff".to_vec(), b"a\xff\xff".to_vec()]);
        assert_eq!(got(RangeRequest::prefix(Bytes::from_static(b"\xff"))), [b"\xff".to_vec()]);
        assert_eq!(
            got(RangeRequest::from_key(Bytes::from_static(b"a\xff"))),
            [b"a\xff".to_vec(), b"a\xff\xff".to_vec(), b"\xff".to_vec()]
        );
    }
    let got = h.range(RangeRequest::key(Bytes::from_static(b"a")).at_revision(rev)).unwrap();
    assert_eq!(got.kvs[0].value, Bytes::from_static(b"a"));
    assert_eq!(h.get("a").unwrap().value, b("new"));
}

impl<E: Engine> H<E> {
    /// Runs a txn with one compare, returning which branch ran.
    fn check(&mut self, cmp: Compare) -> bool {
        let rev = self.m.revision();
        let r = self
            .txn(TxnRequest::new().when(cmp).and_then(RangeRequest::key(b("k"))).or_else(RangeRequest::key(b("zz"))))
            .unwrap();
        assert_eq!(r.revision(), rev);
        assert_eq!(r.responses.len(), 1);
        r.succeeded
    }
}

fn compare_every_operator_and_target<E: Engine>(h: &mut H<E>) {
    h.put("other", "x"); // 2
    h.put_req(PutRequest::new(b("k"), b("m")).with_lease(5)).unwrap(); // 3
    h.put_req(PutRequest::new(b("k"), b("m")).with_lease(5)).unwrap(); // 4
                                                                       // k: version 2, create 3, mod 4, value "m", lease 5
    type MakeCompare = fn(R, i64) -> Compare;
    let cases: [(MakeCompare, i64); 4] = [
        (|r, n| Compare::version(b("k"), r, n), 2),
        (|r, n| Compare::create_revision(b("k"), r, n), 3),
        (|r, n| Compare::mod_revision(b("k"), r, n), 4),
        (|r, n| Compare::lease(b("k"), r, n), 5),
    ];
    for (make, actual) in &cases {
        for (result, below, equal, above) in [
            // (operator, holds when operand < actual, == actual, > actual)
            (R::Equal, false, true, false),
            (R::NotEqual, true, false, true),
            (R::Greater, true, false, false),
            (R::Less, false, false, true),
        ] {
            assert_eq!(h.check(make(result, actual - 1)), below, "{result:?} {actual}-1");
            assert_eq!(h.check(make(result, *actual)), equal, "{result:?} {actual}");
            assert_eq!(h.check(make(result, actual + 1)), above, "{result:?} {actual}+1");
        }
    }
    for (result, below, equal, above) in [
        (R::Equal, false, true, false),
        (R::NotEqual, true, false, true),
        (R::Greater, true, false, false),
        (R::Less, false, false, true),
    ] {
        assert_eq!(h.check(Compare::value(b("k"), result, b("l"))), below);
        assert_eq!(h.check(Compare::value(b("k"), result, b("m"))), equal);
        assert_eq!(h.check(Compare::value(b("k"), result, b("mm"))), above);
    }
    // The branches' responses.
    let r = h
        .txn(
            TxnRequest::new()
                .when(Compare::value(b("k"), R::Equal, b("m")))
                .and_then(RangeRequest::key(b("k")))
                .or_else(RangeRequest::key(b("other"))),
        )
        .unwrap();
    assert!(r.succeeded);
    let Some(response_op::Response::ResponseRange(rr)) = &r.responses[0].response else { panic!() };
    assert_eq!(keys_of(rr), ["k"]);
    let r = h
        .txn(
            TxnRequest::new()
                .when(Compare::value(b("k"), R::Equal, b("n")))
                .and_then(RangeRequest::key(b("k")))
                .or_else(RangeRequest::key(b("other"))),
        )
        .unwrap();
    assert!(!r.succeeded);
    let Some(response_op::Response::ResponseRange(rr)) = &r.responses[0].response else { panic!() };
    assert_eq!(keys_of(rr), ["other"]);
    // All compares must hold.
    let t = TxnRequest::new().when(Compare::version(b("k"), R::Equal, 2)).when(Compare::lease(b("k"), R::Equal, 4));
    assert!(!h.txn(t).unwrap().succeeded);
    assert!(h.txn(TxnRequest::new()).unwrap().succeeded);
}

fn compare_over_ranges_and_missing_keys<E: Engine>(h: &mut H<E>) {
    h.put("p/a", "1");
    h.put("p/b", "1");
    h.put("p/b", "2");
    let ranged = |mut c: Compare| {
        c.range_end = b("p0");
        c
    };
    let check = |h: &mut H<E>, c| h.txn(TxnRequest::new().when(c)).unwrap().succeeded;
    assert!(check(h, ranged(Compare::version(b("p/"), R::Greater, 0))));
    assert!(!check(h, ranged(Compare::version(b("p/"), R::Equal, 1))));
    assert!(check(h, ranged(Compare::version(b("p/"), R::Less, 3))));
    assert!(!check(h, ranged(Compare::value(b("p/"), R::Equal, b("1")))));
    assert!(check(h, ranged(Compare::value(b("p/"), R::Greater, b("0")))));
    let mut from_key = Compare::create_revision(b("p/b"), R::Greater, 2);
    from_key.range_end = b("\0");
    assert!(check(h, from_key));
    // Missing key: value compares fail, others compare 0.
    assert!(!check(h, Compare::value(b("nope"), R::Equal, b(""))));
    assert!(!check(h, Compare::value(b("nope"), R::NotEqual, b("x"))));
    assert!(check(h, Compare::version(b("nope"), R::Equal, 0)));
    assert!(check(h, Compare::create_revision(b("nope"), R::Less, 1)));
    assert!(check(h, Compare::mod_revision(b("nope"), R::Equal, 0)));
    assert!(check(h, Compare::lease(b("nope"), R::Equal, 0)));
    let mut empty = Compare::version(b("q"), R::Equal, 0);
    empty.range_end = b("r");
    assert!(check(h, empty));
}

fn txn_is_atomic_at_one_revision<E: Engine>(h: &mut H<E>) {
    h.put("gone", "x"); // 2
    let t = TxnRequest::new()
        .when(Compare::version(b("a"), R::Equal, 0))
        .and_then(PutRequest::new(b("a"), b("1")))
        .and_then(RangeRequest::key(b("a")))
        .and_then(PutRequest::new(b("b"), b("2")).with_prev_kv())
        .and_then(DeleteRangeRequest::key(b("gone")).with_prev_kv())
        .and_then(RangeRequest::prefix(Bytes::new()))
        .or_else(PutRequest::new(b("failed"), b("1")));
    let r = h.txn(t.clone()).unwrap();
    assert!(r.succeeded);
    assert_eq!(r.revision(), 3);
    assert_eq!(h.m.revision(), 3);
    let resp: Vec<_> = r.responses.iter().map(|r| r.response.clone().unwrap()).collect();
    let response_op::Response::ResponsePut(p) = &resp[0] else { panic!() };
    assert_eq!(p.revision(), 3);
    // Reads inside the txn see its earlier writes.
    let response_op::Response::ResponseRange(rr) = &resp[1] else { panic!() };
    assert_eq!((rr.revision(), rr.kvs[0].mod_revision, &rr.kvs[0].value[..]), (3, 3, &b"1"[..]));
    let response_op::Response::ResponseDeleteRange(d) = &resp[3] else { panic!() };
    assert_eq!((d.deleted, d.revision(), &d.prev_kvs[0].value[..]), (1, 3, &b"x"[..]));
    let response_op::Response::ResponseRange(rr) = &resp[4] else { panic!() };
    assert_eq!(keys_of(rr), ["a", "b"]);
    for k in ["a", "b"] {
        assert_eq!(h.get(k).unwrap().mod_revision, 3);
    }
    assert_eq!(h.get("gone"), None);
    // The txn is one step in history.
    assert_eq!(h.keys(RangeRequest::prefix(Bytes::new()).at_revision(2)), ["gone"]);

    // The failure branch now runs.
    let r = h.txn(t).unwrap();
    assert!(!r.succeeded);
    assert_eq!((r.revision(), r.responses.len()), (4, 1));
    assert_eq!(h.get("failed").unwrap().mod_revision, 4);

    // A txn that changes nothing keeps the revision.
    let r = h
        .txn(TxnRequest::new().and_then(RangeRequest::key(b("a"))).and_then(DeleteRangeRequest::key(b("nope"))))
        .unwrap();
    assert_eq!((r.revision(), h.m.revision()), (4, 4));
    // A read in a txn at an explicit past revision doesn't see the txn's writes.
    let r = h
        .txn(
            TxnRequest::new()
                .and_then(PutRequest::new(b("a"), b("new")))
                .and_then(RangeRequest::key(b("a")).at_revision(4))
                .and_then(RangeRequest::key(b("a")).at_revision(5)),
        )
        .unwrap();
    let Some(response_op::Response::ResponseRange(old)) = &r.responses[1].response else { panic!() };
    assert_eq!(old.kvs[0].value, b("1"));
    let Some(response_op::Response::ResponseRange(new)) = &r.responses[2].response else { panic!() };
    assert_eq!(new.kvs[0].value, b("new"));
}

fn nested_txn<E: Engine>(h: &mut H<E>) {
    let inner = TxnRequest::new()
        .when(Compare::value(b("outer"), R::Equal, b("1")))
        .and_then(PutRequest::new(b("inner"), b("yes")))
        .or_else(PutRequest::new(b("inner"), b("no")));
    let t = TxnRequest::new().and_then(PutRequest::new(b("outer"), b("1"))).and_then(inner);
    let r = h.txn(t).unwrap();
    assert_eq!(r.revision(), 2);
    let Some(response_op::Response::ResponseTxn(inner)) = &r.responses[1].response else { panic!() };
    assert!(inner.succeeded);
    assert_eq!(inner.revision(), 2);
    let Some(response_op::Response::ResponsePut(p)) = &inner.responses[0].response else { panic!() };
    assert_eq!(p.revision(), 2);
    assert_eq!(h.value("inner").as_deref(), Some("yes"));
    assert_eq!(h.get("inner").unwrap().mod_revision, 2);
    // A nested txn that writes makes the outer one advance the revision.
    let t = TxnRequest::new().and_then(TxnRequest::new().and_then(DeleteRangeRequest::key(b("inner"))));
    assert_eq!(h.txn(t).unwrap().revision(), 3);
    assert_eq!(h.get("inner"), None);
}

fn duplicate_keys_in_txn_rejected<E: Engine>(h: &mut H<E>) {
    let put = |k: &str| PutRequest::new(b(k), b("v"));
    let dup = [
        TxnRequest::new().and_then(put("a")).and_then(put("a")),
        TxnRequest::new().or_else(put("a")).or_else(put("a")),
        TxnRequest::new().and_then(put("a")).and_then(DeleteRangeRequest::key(b("a"))),
        TxnRequest::new().and_then(DeleteRangeRequest::prefix(b("a"))).and_then(put("ab")),
        TxnRequest::new().and_then(put("a")).and_then(TxnRequest::new().and_then(put("a"))),
        TxnRequest::new().and_then(TxnRequest::new().or_else(put("a"))).and_then(put("a")),
        TxnRequest::new().and_then(TxnRequest::new().and_then(put("a"))).and_then(TxnRequest::new().or_else(put("a"))),
        TxnRequest::new().and_then(TxnRequest::new().and_then(put("a"))).and_then(DeleteRangeRequest::key(b("a"))),
        TxnRequest::new()
            .and_then(TxnRequest::new().and_then(put("a")))
            .and_then(TxnRequest::new().and_then(DeleteRangeRequest::key(b("a")))),
        TxnRequest::new().and_then(TxnRequest::new().and_then(TxnRequest::new().and_then(put("a")).and_then(put("a")))),
    ];
    for t in dup {
        let op = Op::Txn(t);
        assert_eq!(Mvcc::<E>::validate(&op), Err(Error::Invalid(crate::error::InvalidRequest::DuplicateKey)), "{op:?}");
        assert!(is_invalid(h.apply(op)));
    }
    assert_eq!(h.m.revision(), 1);
    let ok = [
        // Different branches never both run.
        TxnRequest::new().and_then(put("a")).or_else(put("a")),
        TxnRequest::new().and_then(TxnRequest::new().and_then(put("a")).or_else(put("a"))),
        TxnRequest::new().and_then(TxnRequest::new().and_then(put("a")).or_else(DeleteRangeRequest::key(b("a")))),
        TxnRequest::new()
            .and_then(put("a"))
            .and_then(DeleteRangeRequest::key(b("b")))
            .and_then(DeleteRangeRequest::key(b("b"))),
        TxnRequest::new().and_then(put("a")).and_then(RangeRequest::key(b("a"))).and_then(put("b")),
    ];
    for t in ok {
        let op = Op::Txn(t);
        assert_eq!(Mvcc::<E>::validate(&op), Ok(()), "{op:?}");
        h.apply(op).unwrap();
    }
}

fn compaction<E: Engine>(h: &mut H<E>) {
    h.put("a", "1"); // 2
    h.put("a", "2"); // 3
    h.put("b", "1"); // 4
    h.del(DeleteRangeRequest::key(b("b"))).unwrap(); // 5
    h.put("a", "3"); // 6
    h.put("c", "1"); // 7
    h.put("d", "1"); // 8
    h.del(DeleteRangeRequest::key(b("d"))).unwrap(); // 9
    h.put("d", "2"); // 10
    let before_hash = h.m.hash(0).unwrap();
    let before_at_7 = h.range(RangeRequest::prefix(Bytes::new()).at_revision(7)).unwrap();

    assert_eq!(h.compact(0), Err(Error::Compacted { requested: 0, compact_revision: 0 }));
    assert_eq!(h.compact(11), Err(Error::FutureRevision { requested: 11, current: 10 }));
    let r = h.compact(7).unwrap();
    assert_eq!(r.revision(), 10);
    assert_eq!((h.m.revision(), h.m.compact_revision()), (10, 7));

    // a keeps @6 (newest <= 7); b's tombstone @5 and its put @4 are gone;
    // c keeps @7; d keeps @8 and everything above 7.
    let versions: Vec<(String, i64)> =
        h.versions().into_iter().map(|(k, r)| (String::from_utf8(k).unwrap(), r)).collect();
    let expect: Vec<(String, i64)> =
        [("a", 6), ("c", 7), ("d", 10), ("d", 9), ("d", 8)].iter().map(|(k, r)| (k.to_string(), *r)).collect();
    assert_eq!(versions, expect);

    // Reads below the compact revision fail, at and after it work.
    for rev in 1..7 {
        assert_eq!(
            h.range(RangeRequest::key(b("a")).at_revision(rev)),
            Err(Error::Compacted { requested: rev, compact_revision: 7 })
        );
    }
    assert_eq!(h.range(RangeRequest::prefix(Bytes::new()).at_revision(7)).unwrap(), before_at_7);
    assert_eq!(h.keys(RangeRequest::prefix(Bytes::new()).at_revision(8)), ["a", "c", "d"]);
    assert_eq!(h.keys(RangeRequest::prefix(Bytes::new()).at_revision(9)), ["a", "c"]);
    assert_eq!(h.value("a").as_deref(), Some("3"));
    assert_eq!(h.get("a").unwrap().version, 3);
    assert_ne!(h.m.hash(0).unwrap(), before_hash);
    assert!(matches!(h.m.hash(6), Err(Error::Compacted { .. })));
    h.m.hash(7).unwrap();

    // Compacting again at or below fails; above works; keys stay readable.
    assert_eq!(h.compact(7), Err(Error::Compacted { requested: 7, compact_revision: 7 }));
    assert_eq!(h.compact(3), Err(Error::Compacted { requested: 3, compact_revision: 7 }));
    h.compact(10).unwrap();
    assert_eq!(h.keys(RangeRequest::prefix(Bytes::new())), ["a", "c", "d"]);
    assert_eq!(h.versions().len(), 3);
    // Writes continue after compaction.
    h.put("a", "4");
    assert_eq!(h.get("a").unwrap().version, 4);
}

fn compaction_of_staged_history<E: Engine>(h: &mut H<E>) {
    // A key put and deleted, then compacted, before any commit.
    h.put("x", "1"); // 2
    h.del(DeleteRangeRequest::key(b("x"))).unwrap(); // 3
    h.put("y", "1"); // 4
    h.compact(3).unwrap();
    assert_eq!(h.get_at("x", 3), None);
    assert_eq!(h.get_at("x", 4), None);
    assert_eq!(h.keys(RangeRequest::prefix(Bytes::new()).at_revision(3)), Vec::<String>::new());
    // The tombstone at the compact revision stays, so a watch from there
    // still sees the delete (etcd-io/etcd#18089); the next compaction drops it.
    assert_eq!(h.versions(), vec![(b"x".to_vec(), 3), (b"y".to_vec(), 4)]);
    let from_compact = h.m.history(b"x", b"", 3).unwrap();
    assert!(from_compact.len() == 1 && from_compact[0].is_delete(), "{from_compact:?}");
    h.compact(4).unwrap();
    assert_eq!(h.versions(), vec![(b"y".to_vec(), 4)]);
}

fn apply_twice_before_commit<E: Engine>(h: &mut H<E>) {
    h.put("k", "1");
    h.put("k", "2");
    assert_eq!(h.get("k").unwrap().version, 2);
    // A txn sees the previous entry's write.
    let t = TxnRequest::new()
        .when(Compare::value(b("k"), R::Equal, b("2")))
        .and_then(PutRequest::new(b("seen"), b("yes")))
        .or_else(PutRequest::new(b("seen"), b("no")));
    assert!(h.txn(t).unwrap().succeeded);
    assert_eq!(h.value("seen").as_deref(), Some("yes"));
    assert_eq!(h.get_at("k", 2).unwrap().value, b("1"));
    // Commit with extra metadata in the same batch.
    let mut extra = WriteBatch::new();
    extra.put(Cf::Meta, b"test_extra".to_vec(), b"1".to_vec());
    h.m.commit(extra).unwrap();
    assert_eq!(h.engine.get(Cf::Meta, b"test_extra").unwrap(), Some(b"1".to_vec()));
    assert_eq!(h.engine.get(Cf::Meta, keys::REVISION).unwrap(), Some(4i64.to_be_bytes().to_vec()));
    h.put("k", "3");
    assert_eq!(h.get("k").unwrap().version, 3);
}

fn failed_apply_stages_nothing<E: Engine>(h: &mut H<E>) {
    h.put("a", "1");
    let rev = h.m.revision();
    // (`H::apply` checks the state is unchanged after each failure.)
    let failing = [
        // A write, then a put of a missing key with ignore_value.
        TxnRequest::new()
            .and_then(PutRequest::new(b("b"), b("1")))
            .and_then(DeleteRangeRequest::key(b("a")))
            .and_then(PutRequest { key: b("missing"), ignore_value: true, ..Default::default() }),
        // A write, then a read of a future revision.
        TxnRequest::new()
            .and_then(PutRequest::new(b("b"), b("1")))
            .and_then(RangeRequest::key(b("a")).at_revision(rev + 2)),
        // A failure deep in a nested txn.
        TxnRequest::new().and_then(PutRequest::new(b("b"), b("1"))).and_then(
            TxnRequest::new().and_then(PutRequest::new(b("c"), b("1"))).and_then(PutRequest {
                key: b("missing"),
                ignore_lease: true,
                ..Default::default()
            }),
        ),
    ];
    for t in failing {
        assert!(h.txn(t).is_err());
        assert_eq!(h.m.revision(), rev);
        assert_eq!(h.keys(RangeRequest::prefix(Bytes::new())), ["a"]);
        assert_eq!(h.get("a").unwrap().version, 1);
    }
    // A read inside a txn at the revision its own writes create works.
    h.txn(
        TxnRequest::new()
            .and_then(PutRequest::new(b("b"), b("1")))
            .and_then(RangeRequest::key(b("b")).at_revision(rev + 1)),
    )
    .unwrap();
    assert!(h.compact(rev + 5).is_err());
    assert!(h.put_req(PutRequest { key: b("missing"), ignore_value: true, ..Default::default() }).is_err());
    assert_eq!(h.m.revision(), rev + 1);
}

fn validation_errors<E: Engine>(h: &mut H<E>) {
    h.put("a", "1");
    let bad_ranges = [
        RangeRequest::key(Bytes::new()),
        RangeRequest::range(b("b"), b("a")),
        RangeRequest::key(b("a")).with_limit(-1),
        RangeRequest::key(b("a")).at_revision(-1),
        RangeRequest { sort_order: 3, ..RangeRequest::key(b("a")) },
        RangeRequest { sort_target: 9, ..RangeRequest::key(b("a")) },
        RangeRequest { sort_order: -1, ..RangeRequest::key(b("a")) },
    ];
    for r in bad_ranges {
        assert!(is_invalid(h.range(r.clone())), "{r:?}");
        let op = Op::Txn(TxnRequest::new().and_then(r));
        assert!(is_invalid(Mvcc::<E>::validate(&op)));
        assert!(is_invalid(h.apply(op)));
    }
    let mut bad_compares = vec![
        Compare::version(Bytes::new(), R::Equal, 0),
        Compare { range_end: b("0"), ..Compare::version(b("a"), R::Equal, 0) },
        Compare { result: 4, ..Compare::version(b("a"), R::Equal, 0) },
        Compare { target: 5, ..Compare::version(b("a"), R::Equal, 0) },
        Compare { target_union: None, ..Compare::version(b("a"), R::Equal, 0) },
    ];
    for target in
        [CompareTarget::Version, CompareTarget::Create, CompareTarget::Mod, CompareTarget::Value, CompareTarget::Lease]
    {
        let wrong = if target == CompareTarget::Value { TargetUnion::Version(1) } else { TargetUnion::Value(b("x")) };
        bad_compares.push(Compare {
            target: target as i32,
            target_union: Some(wrong),
            ..Compare::version(b("a"), R::Equal, 0)
        });
    }
    for c in bad_compares {
        let op = Op::Txn(TxnRequest::new().when(c));
        assert!(is_invalid(Mvcc::<E>::validate(&op)), "{op:?}");
        assert!(is_invalid(h.apply(op)));
    }
    let bad_ops = [
        Op::Put(PutRequest::new(Bytes::new(), b("v"))),
        Op::DeleteRange(DeleteRangeRequest::key(Bytes::new())),
        Op::DeleteRange(DeleteRangeRequest { key: b("b"), range_end: b("a"), prev_kv: false }),
        Op::Compact(CompactionRequest { revision: -1, physical: false }),
        Op::Txn(TxnRequest { success: vec![RequestOp { request: None }], ..Default::default() }),
        Op::Txn(TxnRequest::new().or_else(PutRequest::new(Bytes::new(), b("v")))),
        Op::Txn(TxnRequest::new().and_then(TxnRequest::new().and_then(DeleteRangeRequest::key(Bytes::new())))),
    ];
    for op in bad_ops {
        assert!(is_invalid(Mvcc::<E>::validate(&op)), "{op:?}");
        assert!(is_invalid(h.apply(op)));
    }
    // Deep nesting is refused, not a stack overflow.
    let mut deep = TxnRequest::new();
    for _ in 0..200 {
        deep = TxnRequest::new().and_then(deep);
    }
    assert!(is_invalid(h.apply(Op::Txn(deep))));
    // Valid edge cases.
    for r in
        [RangeRequest::range(b("a"), b("a")), RangeRequest::from_key(b("\0")), RangeRequest::key(b("a")).at_revision(2)]
    {
        h.range(r).unwrap();
    }
    assert_eq!(h.m.revision(), 2);
}

fn hash_covers_history<E: Engine>(h: &mut H<E>) {
    let empty = h.m.hash(0).unwrap();
    h.put("a", "1");
    let at2 = h.m.hash(0).unwrap();
    assert_ne!(at2, empty);
    h.put("b", "1");
    h.del(DeleteRangeRequest::key(b("a"))).unwrap();
    assert_eq!(h.m.hash(2).unwrap(), at2);
    assert_eq!(h.m.hash(1).unwrap(), empty);
    assert_eq!(h.m.hash(h.m.revision()).unwrap(), h.m.hash(0).unwrap());
    assert!(matches!(h.m.hash(5), Err(Error::FutureRevision { .. })));
    assert!(is_invalid(h.m.hash(-1)));
    // Committing doesn't change it.
    let before = h.m.hash(0).unwrap();
    h.m.commit(WriteBatch::new()).unwrap();
    assert_eq!(h.m.hash(0).unwrap(), before);
}

/// The same operations on different engines give the same hash; a different
/// value gives a different one.
#[test]
fn hash_is_deterministic_across_engines() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = H::new(MemEngine::new(), false);
    let mut rocks = H::new(RocksEngine::open(dir.path()).unwrap(), true);
    let mut other = H::new(MemEngine::new(), true);
    for i in 0..20 {
        let (k, v) = (format!("k{}", i % 7), format!("v{i}"));
        mem.put(&k, &v);
        rocks.put(&k, &v);
        other.put(&k, if i == 13 { "different" } else { &v });
    }
    let ops = [
        Op::DeleteRange(DeleteRangeRequest::key(b("k3"))),
        Op::Compact(CompactionRequest { revision: 10, physical: false }),
    ];
    for op in ops {
        mem.apply(op.clone()).unwrap();
        rocks.apply(op.clone()).unwrap();
        other.apply(op).unwrap();
    }
    assert_eq!(mem.m.hash(0).unwrap(), rocks.m.hash(0).unwrap());
    assert_eq!(mem.m.hash(12).unwrap(), rocks.m.hash(12).unwrap());
    assert_ne!(mem.m.hash(0).unwrap(), other.m.hash(0).unwrap());
    assert_eq!(mem.m.hash(13).unwrap(), other.m.hash(13).unwrap());
}

/// Garbage in the stored state is reported, not a panic.
#[test]
fn open_rejects_corrupt_state() {
    let put = |cf, k: &[u8], v: &[u8]| {
        let engine = MemEngine::new();
        let mut batch = WriteBatch::new();
        batch.put(cf, k.to_vec(), v.to_vec());
        engine.write(batch, false).unwrap();
        Mvcc::open(engine)
    };
    assert!(matches!(put(Cf::Kv, b"garbage", b"x"), Err(Error::Corruption(_))));
    assert!(matches!(put(Cf::Kv, &encode_key(b"k", 1), b"x"), Err(Error::Corruption(_))));
    assert!(matches!(put(Cf::Meta, keys::REVISION, b"short"), Err(Error::Corruption(_))));
    assert!(matches!(put(Cf::Meta, keys::REVISION, &(-3i64).to_be_bytes()), Err(Error::Corruption(_))));
    // History beyond the stored revision.
    let rec = Record { version: 1, create_revision: 5, ..Default::default() }.encode();
    assert!(matches!(put(Cf::Kv, &encode_key(b"k", 5), &rec), Err(Error::Corruption(_))));
    // A missing value record behind the index is reported on read.
    let engine = MemEngine::new();
    let mut m = Mvcc::open(engine.clone()).unwrap();
    m.apply(&Op::Put(PutRequest::new(b("k"), b("v")))).unwrap();
    m.commit(WriteBatch::new()).unwrap();
    let mut batch = WriteBatch::new();
    batch.delete(Cf::Kv, encode_key(b"k", 2));
    engine.write(batch, false).unwrap();
    assert!(matches!(m.range(&RangeRequest::key(b("k"))), Err(Error::Corruption(_))));
    assert_eq!(m.range(&RangeRequest { keys_only: true, ..RangeRequest::key(b("k")) }).unwrap().kvs.len(), 1);
}

/// An empty store's commit writes nothing; a later one writes the revision.
#[test]
fn commit_writes_meta_only_when_changed() {
    let engine = MemEngine::new();
    let mut m = Mvcc::open(engine.clone()).unwrap();
    m.commit(WriteBatch::new()).unwrap();
    assert_eq!(engine.unsynced_batches(), 0);
    m.apply(&Op::Put(PutRequest::new(b("k"), b("v")))).unwrap();
    m.apply(&Op::Compact(CompactionRequest { revision: 2, physical: false })).unwrap();
    m.commit(WriteBatch::new()).unwrap();
    assert_eq!(engine.unsynced_batches(), 1);
    assert_eq!(engine.get(Cf::Meta, keys::REVISION).unwrap(), Some(2i64.to_be_bytes().to_vec()));
    assert_eq!(engine.get(Cf::Meta, keys::COMPACT_REVISION).unwrap(), Some(2i64.to_be_bytes().to_vec()));
    // Unsynced commits are lost in a crash; reopening gives the old state.
    engine.crash();
    let m = Mvcc::open(engine).unwrap();
    assert_eq!((m.revision(), m.compact_revision(), m.key_count()), (1, 0, 0));
}

/// A physical compaction stopped between batches leaves the rest in place,
/// still hidden (reads and hash unchanged); a later run finishes the job.
#[test]
fn physical_compaction_can_stop_between_batches() {
    let engine = MemEngine::new();
    let mut h = H::new(engine, true);
    let n = Compaction::<MemEngine>::BATCH + 100;
    // Straight to the store: `H::apply`'s per-operation checks are
    // quadratic over this many versions.
    for i in 0..n {
        h.m.apply(&Op::Put(PutRequest::new(b(&format!("k{}", i % 2)), b(&i.to_string())))).unwrap();
    }
    h.m.commit(WriteBatch::new()).unwrap();
    let rev = h.m.revision();
    h.m.apply(&Op::Compact(CompactionRequest { revision: rev, physical: false })).unwrap();
    h.m.commit(WriteBatch::new()).unwrap();
    let seen = (h.m.hash(0).unwrap(), h.all_at(rev));
    let job = h.m.take_compaction().unwrap();
    // More dropped versions than one batch holds: asked before writing.
    let asked = std::cell::Cell::new(0);
    let deleted = job
        .run_until(&|| {
            asked.set(asked.get() + 1);
            true
        })
        .unwrap();
    assert_eq!(deleted, 0, "stopped before any batch was written");
    assert!(asked.get() >= 1);
    assert_eq!((h.m.hash(0).unwrap(), h.all_at(rev)), seen);
    assert!(h.versions().len() > 2, "nothing deleted yet");
    // The next compaction's job covers what was left.
    h.put("k0", "last");
    let rev = h.m.revision();
    h.compact(rev).unwrap();
    assert_eq!(h.versions().len(), 2);
}

/// The linear-logarithmic put/delete clash check agrees with testing every
/// put against every delete, on random branches (keys from a small
/// alphabet so ranges overlap often; owners of nested txns included).
#[test]
fn put_delete_clash_sweep_matches_the_quadratic_check() {
    use super::{check_puts_against_deletes, KeyRange};
    use std::collections::BTreeMap;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let key = |n: u64| bytes::Bytes::from(vec![b'a' + (n % 6) as u8; 1 + (n / 6) as usize % 2]);
    for _ in 0..2_000 {
        let mut puts: BTreeMap<bytes::Bytes, Option<usize>> = BTreeMap::new();
        for _ in 0..next(6) {
            let owner = if next(2) == 0 { None } else { Some(next(3) as usize) };
            puts.insert(key(next(12)), owner);
        }
        let deletes: Vec<(Option<usize>, KeyRange)> = (0..next(5))
            .map(|_| {
                let owner = if next(2) == 0 { None } else { Some(next(3) as usize) };
                let start = key(next(12));
                let end = match next(3) {
                    0 => Vec::new(),
                    1 => vec![0],
                    _ => key(next(12)).to_vec(),
                };
                (owner, KeyRange::new(&start, &end))
            })
            .collect();
        let naive = puts.iter().any(|(k, owner)| {
            deletes.iter().any(|(d_owner, range)| (d_owner.is_none() || d_owner != owner) && range.contains(k))
        });
        assert_eq!(check_puts_against_deletes(&puts, &deletes).is_err(), naive, "{puts:?} {deletes:?}");
    }
}
