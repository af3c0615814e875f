//! Read-path scenarios: range shapes, limits, sorting and filters, reads at
//! past revisions, and the history hash.

use super::*;

engine_tests!(
    range_shapes,
    range_limit_sort_and_filters,
    range_at_past_revision,
    keys_with_zero_and_ff_bytes,
    hash_covers_history,
    limited_ranges_read_a_window,
    hash_job_hashes_what_hash_does,
    ranges_over_the_response_bound_fail,
    point_reads_seek_the_version_at_the_revision,
);

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
    assert_eq!(h.m.hash(-1).unwrap(), h.m.hash(0).unwrap(), "negative: the current revision, as etcd");
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

/// Ranges in key order read only their window (limit, descending, count
/// only, keys only) at the current and at past revisions; each answer must
/// equal the general path's (reached here with a no-op revision filter),
/// which materialises every match.
fn limited_ranges_read_a_window<E: Engine>(h: &mut H<E>) {
    for i in 0..30 {
        h.put(&format!("k{i:02}"), &format!("v{i}"));
    }
    let past = h.put("k05", "again").header.map_or(0, |x| x.revision);
    h.del(DeleteRangeRequest { key: b("k10"), range_end: b("k15"), ..Default::default() }).unwrap();
    for i in 0..5 {
        h.put(&format!("k{:02}", i * 3), "later");
    }
    use SortOrder::*;
    for revision in [0, past, past - 10] {
        for req in [RangeRequest::prefix(b("k")), RangeRequest::range(b("k03"), b("k22")), RangeRequest::key(b("k07"))]
        {
            for limit in [0, 1, 3, 17, 100] {
                for order in [None, Ascend, Descend] {
                    for (count_only, keys_only) in [(false, false), (true, false), (false, true)] {
                        let req = RangeRequest {
                            limit,
                            count_only,
                            keys_only,
                            revision,
                            ..req.clone().sorted(SortTarget::Key, order)
                        };
                        let got = h.range(req.clone()).unwrap();
                        let want = h.range(RangeRequest { min_mod_revision: 1, ..req.clone() }).unwrap();
                        assert_eq!(got, want, "{req:?}");
                        if limit > 0 && !count_only {
                            assert!(got.kvs.len() <= limit as usize);
                        }
                    }
                }
            }
        }
    }
}

/// The hash computed off the applying thread, from an engine snapshot,
/// equals the hash computed in place, at every revision, before and after
/// a compaction.
fn hash_job_hashes_what_hash_does<E: Engine>(h: &mut H<E>) {
    for i in 0..10 {
        h.put(&format!("h{}", i % 4), &format!("v{i}"));
    }
    h.m.commit(WriteBatch::new()).unwrap();
    for rev in [0, 3, 7, 11] {
        assert_eq!(h.m.hash_job(rev).unwrap()(), h.m.hash(rev), "revision {rev}");
    }
    h.compact(6).unwrap();
    h.m.commit(WriteBatch::new()).unwrap();
    for rev in [0, 6, 11] {
        assert_eq!(h.m.hash_job(rev).unwrap()(), h.m.hash(rev), "revision {rev} after compaction");
    }
    assert!(h.m.hash_job(3).is_err(), "a compacted revision");
}

/// A range that would gather more key and value bytes than the bound fails
/// with `ResponseTooLarge` — at the current and past revisions, sorted or
/// not — while a limited or keys-only read under the bound succeeds.
fn ranges_over_the_response_bound_fail<E: Engine>(h: &mut H<E>) {
    let big = "x".repeat(1000);
    for i in 0..20 {
        h.put(&format!("r{i:02}"), &big);
    }
    let past = h.put("r00", &big).header.map_or(0, |x| x.revision);
    h.m.set_max_response_bytes(10_000);
    let all = || RangeRequest::prefix(b("r"));
    for req in [
        all(),
        all().at_revision(past),
        all().sorted(SortTarget::Value, SortOrder::Descend),
        all().sorted(SortTarget::Key, SortOrder::Descend).at_revision(past),
    ] {
        assert!(matches!(h.range(req.clone()), Err(Error::ResponseTooLarge { max: 10_000, .. })), "{req:?}");
    }
    assert_eq!(h.range(all().with_limit(5)).unwrap().kvs.len(), 5);
    assert_eq!(h.range(all().with_limit(5).at_revision(past)).unwrap().kvs.len(), 5);
    assert_eq!(h.range(RangeRequest { keys_only: true, ..all() }).unwrap().count, 20);
    assert_eq!(h.range(RangeRequest { count_only: true, ..all() }).unwrap().count, 20);
    // The harness re-reads everything after the test.
    h.m.set_max_response_bytes(usize::MAX);
}

/// A single-key read seeks straight to the newest version at or below its
/// revision (issue 17): at every revision, for keys that share prefixes and
/// have puts and deletes, it answers what the whole-range read says of
/// that key — on the store (history at past revisions) and on a view
/// (history at every revision).
fn point_reads_seek_the_version_at_the_revision<E: Engine>(h: &mut H<E>) {
    let keys = ["a", "a\0", "ab", "b"];
    for round in 0..4 {
        for (i, k) in keys.iter().enumerate() {
            if (round + i) % 3 == 2 {
                let _ = h.del(DeleteRangeRequest::key(b(k)));
            } else {
                h.put(k, &format!("{k}{round}"));
            }
        }
    }
    h.m.commit(WriteBatch::new()).unwrap();
    let view = h.m.view();
    let current = h.m.revision();
    for rev in 1..=current {
        let all = h.range(RangeRequest::prefix(Bytes::new()).at_revision(rev)).unwrap();
        for k in keys {
            let want: Vec<KeyValue> = all.kvs.iter().filter(|kv| kv.key == k.as_bytes()).cloned().collect();
            let req = RangeRequest::key(b(k)).at_revision(rev);
            let got = h.range(req.clone()).unwrap();
            assert_eq!((got.kvs.clone(), got.count), (want.clone(), want.len() as i64), "{k:?} at {rev}");
            let seen = view.range(&req).unwrap();
            assert_eq!((seen.kvs, seen.count), (want.clone(), want.len() as i64), "view: {k:?} at {rev}");
        }
    }
}
