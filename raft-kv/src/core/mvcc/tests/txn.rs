//! Transaction scenarios: compares, atomic and nested transactions, and
//! duplicate keys in a branch.

use super::*;

engine_tests!(
    compare_every_operator_and_target,
    compare_over_ranges_and_missing_keys,
    txn_is_atomic_at_one_revision,
    nested_txn,
    duplicate_keys_in_txn_rejected,
    txn_history_keeps_apply_order,
);

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

/// A txn's writes share a revision and come back from history in the order
/// the txn applied them (etcd's sub-revisions), not in key order.
fn txn_history_keeps_apply_order<E: Engine>(h: &mut H<E>) {
    h.put("c", "old"); // 2
    let t = TxnRequest::new()
        .and_then(PutRequest::new(b("b"), b("1")))
        .and_then(PutRequest::new(b("a"), b("1")))
        .and_then(DeleteRangeRequest::key(b("c")))
        .and_then(TxnRequest::new().and_then(PutRequest::new(b("aa"), b("1"))));
    assert_eq!(h.txn(t).unwrap().revision(), 3);
    let keys = |events: &[Event]| -> Vec<(String, i64)> {
        events
            .iter()
            .map(|e| (String::from_utf8_lossy(&e.kv.as_ref().unwrap().key).into_owned(), e.revision()))
            .collect()
    };
    let want = [("b".to_string(), 3), ("a".to_string(), 3), ("c".to_string(), 3), ("aa".to_string(), 3)];
    assert_eq!(keys(&h.m.history_until(b"", &[0], 3, 3).unwrap()), want);
    let all = h.m.history(b"", &[0], 1).unwrap();
    assert_eq!(keys(&all)[1..], want);
    // The delete still carries its previous value.
    assert_eq!(all[3].prev_kv.as_ref().map(|kv| kv.value.clone()), Some(b("old")));
    // A range of keys keeps the order among the keys it holds.
    let only_a = h.m.history_until(b"a", b"b", 3, 3).unwrap();
    assert_eq!(keys(&only_a), [("a".to_string(), 3), ("aa".to_string(), 3)]);
}
