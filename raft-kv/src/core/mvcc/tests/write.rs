//! Write-path scenarios: puts, deletes, staging and rollback, commits and
//! reopening.

use super::*;

engine_tests!(
    put_tracks_versions_and_revisions,
    put_prev_kv_and_ignore_flags,
    delete_range_with_prev_kvs,
    apply_twice_before_commit,
    failed_apply_stages_nothing,
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
