//! The etcd data model through a Node: ranges and transactions.

mod common;

use bytes::Bytes;
use common::{retry, Cluster};
use raft_kv::{
    request_op, response_op, Compare, CompareResult, DeleteRangeRequest, Error, KeyValue, Node, PutRequest,
    RangeRequest, SortOrder, SortTarget, TxnRequest,
};

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

fn setup() -> (Cluster, Node) {
    let c = Cluster::start(3);
    let leader = c.leader();
    let node = c.node(leader).clone();
    (c, node)
}

#[test]
fn range_limit_sort_prefix_and_revision() {
    let (_c, n) = setup();
    // a: rev 2, b: rev 3, c: rev 4, then b again at rev 5, other/x at rev 6.
    for (k, v) in [("/p/a", "3"), ("/p/b", "1"), ("/p/c", "2"), ("/p/b", "9"), ("/other/x", "0")] {
        retry(|| n.put(k, v));
    }
    let all = n.range(RangeRequest::prefix("/p/")).expect("range");
    assert_eq!(keys(&all.kvs), ["/p/a", "/p/b", "/p/c"]);
    assert_eq!((all.count, all.more, all.revision()), (3, false, 6));
    let b = &all.kvs[1];
    assert_eq!((b.create_revision, b.mod_revision, b.version), (3, 5, 2));

    let limited = n.range(RangeRequest::prefix("/p/").with_limit(2)).expect("range");
    assert_eq!(keys(&limited.kvs), ["/p/a", "/p/b"]);
    assert!(limited.more);
    assert_eq!(limited.count, 3);

    let desc = n.range(RangeRequest::prefix("/p/").sorted(SortTarget::Key, SortOrder::Descend)).expect("range");
    assert_eq!(keys(&desc.kvs), ["/p/c", "/p/b", "/p/a"]);
    let by_value = n.range(RangeRequest::prefix("/p/").sorted(SortTarget::Value, SortOrder::Ascend)).expect("range");
    assert_eq!(keys(&by_value.kvs), ["/p/c", "/p/a", "/p/b"]);
    let by_mod =
        n.range(RangeRequest::prefix("/p/").sorted(SortTarget::Mod, SortOrder::Descend).with_limit(1)).expect("range");
    assert_eq!(keys(&by_mod.kvs), ["/p/b"]);
    let by_create = n.range(RangeRequest::prefix("/p/").sorted(SortTarget::Create, SortOrder::None)).expect("range");
    assert_eq!(keys(&by_create.kvs), ["/p/a", "/p/b", "/p/c"], "NONE with a target sorts ascending");
    let by_version =
        n.range(RangeRequest::prefix("/p/").sorted(SortTarget::Version, SortOrder::Descend)).expect("range");
    assert_eq!(keys(&by_version.kvs)[0], "/p/b");

    let old = n.range(RangeRequest::prefix("/p/").at_revision(4)).expect("range");
    assert_eq!(keys(&old.kvs), ["/p/a", "/p/b", "/p/c"]);
    assert_eq!(old.kvs[1].value, Bytes::from_static(b"1"), "b as of revision 4");
    let older = n.range(RangeRequest::prefix("/p/").at_revision(2)).expect("range");
    assert_eq!(keys(&older.kvs), ["/p/a"]);

    let everything = n.range(RangeRequest::prefix("")).expect("range");
    assert_eq!(everything.count, 4);
    let from = n.range(RangeRequest::from_key("/p/b")).expect("range");
    assert_eq!(keys(&from.kvs), ["/p/b", "/p/c"]);
    let span = n.range(RangeRequest::range("/p/a", "/p/c")).expect("range");
    assert_eq!(keys(&span.kvs), ["/p/a", "/p/b"]);

    let mut count_only = RangeRequest::prefix("/p/");
    count_only.count_only = true;
    let r = n.range(count_only).expect("range");
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 3);
    let mut keys_only = RangeRequest::prefix("/p/");
    keys_only.keys_only = true;
    let r = n.range(keys_only).expect("range");
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));

    let bad = n.range(RangeRequest::range("b", "a")).expect_err("range_end < key");
    assert!(matches!(bad, Error::Invalid(_)), "{bad:?}");
    let empty = n.put("", "x").expect_err("empty key");
    assert!(matches!(empty, Error::Invalid(_)), "{empty:?}");
}

#[test]
fn delete_range_with_prev_kv() {
    let (_c, n) = setup();
    for k in ["/d/1", "/d/2", "/e/1"] {
        retry(|| n.put(k, "v"));
    }
    let del = n.delete_range(DeleteRangeRequest::prefix("/d/").with_prev_kv()).expect("delete");
    assert_eq!(del.deleted, 2);
    assert_eq!(keys(&del.prev_kvs), ["/d/1", "/d/2"]);
    assert_eq!(del.revision(), 5);
    let none = n.delete_range(DeleteRangeRequest::prefix("/d/")).expect("delete");
    assert_eq!((none.deleted, none.revision()), (0, 5), "deleting nothing keeps the revision");
    let put = n.put_request(PutRequest::new("/e/1", "w").with_prev_kv()).expect("put");
    assert_eq!(put.prev_kv.map(|kv| kv.value), Some(Bytes::from_static(b"v")));
}

/// Runs a txn whose single compare is `cmp`; returns whether it succeeded
/// and checks that exactly the chosen branch ran.
fn txn_holds(n: &Node, cmp: Compare) -> bool {
    let txn = TxnRequest::new()
        .when(cmp)
        .and_then(PutRequest::new("branch", "success"))
        .and_then(RangeRequest::key("subject"))
        .or_else(PutRequest::new("branch", "failure"));
    let r = retry(|| n.txn(txn.clone()));
    let branch = n.get("branch").expect("get").expect("branch written").value;
    assert_eq!(branch, if r.succeeded { "success" } else { "failure" });
    assert_eq!(r.responses.len(), if r.succeeded { 2 } else { 1 });
    if r.succeeded {
        assert!(matches!(r.responses[1].response, Some(response_op::Response::ResponseRange(_))));
    }
    r.succeeded
}

#[test]
fn txn_every_compare_operator_and_target_both_branches() {
    let (_c, n) = setup();
    let first = retry(|| n.put_request(PutRequest::new("subject", "m")));
    let second = retry(|| n.put_request(PutRequest::new("subject", "m")));
    // subject: value "m", version 2, create = first.revision(), mod = second.revision(), lease 0.
    let (create, modr) = (first.revision(), second.revision());
    use CompareResult::*;
    let cases: Vec<(Compare, bool)> = vec![
        (Compare::value("subject", Equal, "m"), true),
        (Compare::value("subject", Equal, "x"), false),
        (Compare::value("subject", Greater, "a"), true),
        (Compare::value("subject", Greater, "z"), false),
        (Compare::value("subject", Less, "z"), true),
        (Compare::value("subject", Less, "a"), false),
        (Compare::value("subject", NotEqual, "x"), true),
        (Compare::value("subject", NotEqual, "m"), false),
        (Compare::version("subject", Equal, 2), true),
        (Compare::version("subject", Greater, 2), false),
        (Compare::version("subject", Less, 3), true),
        (Compare::version("subject", NotEqual, 2), false),
        (Compare::create_revision("subject", Equal, create), true),
        (Compare::create_revision("subject", Greater, create), false),
        (Compare::create_revision("subject", Less, create + 1), true),
        (Compare::create_revision("subject", NotEqual, create), false),
        (Compare::mod_revision("subject", Equal, modr), true),
        (Compare::mod_revision("subject", Greater, modr - 1), true),
        (Compare::mod_revision("subject", Less, modr), false),
        (Compare::mod_revision("subject", NotEqual, 0), true),
        (Compare::lease("subject", Equal, 0), true),
        (Compare::lease("subject", NotEqual, 0), false),
        (Compare::lease("subject", Greater, 0), false),
        (Compare::lease("subject", Less, 1), true),
        // A missing key has version 0 and never matches a value compare.
        (Compare::version("missing", Equal, 0), true),
        (Compare::value("missing", Equal, ""), false),
    ];
    for (cmp, expected) in cases {
        assert_eq!(txn_holds(&n, cmp.clone()), expected, "{cmp:?}");
    }
}

#[test]
fn txn_is_atomic_at_one_revision_and_rejects_duplicates() {
    let (_c, n) = setup();
    let before = retry(|| n.put("a", "0")).revision();
    let txn = TxnRequest::new()
        .when(Compare::version("a", CompareResult::Equal, 1))
        .and_then(PutRequest::new("a", "1"))
        .and_then(PutRequest::new("b", "1"))
        .and_then(DeleteRangeRequest::key("c"))
        .and_then(TxnRequest::new().and_then(RangeRequest::key("b")));
    let r = n.txn(txn).expect("txn");
    assert!(r.succeeded);
    assert_eq!(r.revision(), before + 1, "all writes of a txn share one revision");
    match &r.responses[3].response {
        Some(response_op::Response::ResponseTxn(inner)) => match &inner.responses[0].response {
            Some(response_op::Response::ResponseRange(rr)) => {
                assert_eq!(rr.kvs[0].value, "1", "reads see the txn's writes")
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let a = n.get("a").expect("get").expect("a");
    let b = n.get("b").expect("get").expect("b");
    assert_eq!((a.mod_revision, b.mod_revision), (before + 1, before + 1));

    let dup = TxnRequest::new().and_then(PutRequest::new("x", "1")).and_then(PutRequest::new("x", "2"));
    assert!(matches!(n.txn(dup), Err(Error::Invalid(_))));
    let bad = TxnRequest { success: vec![raft_kv::RequestOp { request: None }], ..Default::default() };
    let _ = n.txn(bad); // an empty op must not crash the member
    let too_many = (0..200).fold(TxnRequest::new(), |t, i| t.and_then(PutRequest::new(format!("k{i}"), "v")));
    assert!(matches!(n.txn(too_many), Err(Error::Invalid(_))));
    let _ = request_op::Request::RequestRange(RangeRequest::key("unused"));
    // The member still serves after bad input.
    retry(|| n.put("still", "alive"));
}

#[test]
fn oversized_request_is_refused() {
    let (_c, n) = setup();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let err = n.put("big", big).expect_err("over max_request_bytes");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    retry(|| n.put("small", "ok"));
}
