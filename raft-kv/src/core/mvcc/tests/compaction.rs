//! Compaction scenarios: logical compaction, kept tombstones, and physical
//! compaction stopped between batches.

use super::*;

engine_tests!(compaction, compaction_of_staged_history);

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
