use raft_kv::{Config, Importer, MemEngine, Version};

use super::*;

fn v(key: &str, rev: i64, create: i64, version: i64, lease: i64) -> Version {
    let value = format!("{key}@{rev}").into_bytes();
    Version { key: key.into(), mod_revision: rev, create_revision: create, version, lease, value, ..Default::default() }
}

#[test]
fn revision_keys_round_trip() {
    assert_eq!(parse_rev_key(&rev_key(7, 3, false)), Some(RevKey { main: 7, sub: 3, tombstone: false }));
    assert_eq!(parse_rev_key(&rev_key(i64::MAX, 0, true)), Some(RevKey { main: i64::MAX, sub: 0, tombstone: true }));
    assert_eq!(parse_rev_key(b"short"), None);
    let mut k = rev_key(1, 0, false);
    k[8] = b'-';
    assert_eq!(parse_rev_key(&k), None);
    assert_eq!(parse_rev_key(&[0xFF; 17]), None, "a main revision past i64::MAX");
    let mut k = rev_key(1, 0, false);
    k[9] = 0xFF;
    assert_eq!(parse_rev_key(&k), None, "a sub revision past i64::MAX");
}

/// A store with history, a deletion, a lease and a compaction, written
/// as an etcd snapshot and read back into a new store.
#[test]
fn a_member_store_survives_the_etcd_format() {
    let src = MemEngine::new();
    let mut imp = Importer::new(src.clone()).expect("importer");
    let tomb = Version { key: b"b".to_vec(), mod_revision: 4, tombstone: true, ..Default::default() };
    // Revision 5 is a txn that wrote "c", then "a": sub revisions 0 and 1.
    let a5 = Version { sub_revision: 1, ..v("a", 5, 2, 2, 0) };
    let mut input = vec![v("a", 2, 2, 1, 0), v("b", 3, 3, 1, 7), tomb, a5, v("c", 5, 5, 1, 7)];
    for i in 0..3000 {
        input.push(v(&format!("bulk/{i:05}"), 6 + i, 6 + i, 1, 0));
    }
    for x in &input {
        imp.version(x).expect("version");
    }
    imp.lease(7, 60).expect("lease");
    let cfg = Config { peers: vec![1], ..Config::new(1) };
    imp.finish(&cfg, 0, 3).expect("finish");

    let dir = tempfile::tempdir().expect("dir");
    let ex = raft_kv::Node::builder(cfg.clone()).engine(src).start().expect("node");
    let tmp = dir.path().to_path_buf();
    let (file, len) = ex.export(move |ex| Ok(write_snapshot(&ex, &tmp))).expect("export").expect("write");
    ex.shutdown();
    let path = dir.path().join("db");
    let mut out = std::fs::File::create(&path).expect("create");
    std::io::copy(&mut std::io::Read::take(file, len), &mut out).expect("copy");
    drop(out);

    let dst = MemEngine::new();
    let mut imp = Importer::new(dst.clone()).expect("importer");
    let got = read_snapshot(&path, verify_hash(&path, true).expect("no hash: skipped"), &mut imp).expect("read");
    assert_eq!(got, Restored { revision: 3005, compact_revision: 3, versions: input.len() as u64, leases: 1 });
    assert!(verify_hash(&path, false).is_err(), "a file without a trailer needs --skip-hash-check");

    // The file keeps the txn's order at revision 5, with the sub revisions
    // the member stored ...
    let db = crate::bbolt::Reader::open(&path).expect("open");
    let mut at5 = Vec::new();
    db.walk(&db.bucket(b"key").expect("bucket").expect("key bucket"), &mut |k, v, _| {
        let rk = parse_rev_key(k).expect("revision key");
        if rk.main == 5 {
            let kv = <raft_kv::pb::mvccpb::KeyValue as prost::Message>::decode(v).expect("kv");
            at5.push((rk.sub, kv.key.to_vec()));
        }
        Ok(true)
    })
    .expect("walk");
    assert_eq!(at5, vec![(0, b"c".to_vec()), (1, b"a".to_vec())]);
    // ... and the store read back from it has them too.
    imp.finish(&cfg, got.revision, got.compact_revision).expect("finish");
    let node = raft_kv::Node::builder(cfg).engine(dst).start().expect("node");
    let subs = node
        .export(|ex| {
            let mut subs = Vec::new();
            ex.versions(|x| {
                if x.mod_revision == 5 {
                    subs.push((x.key, x.sub_revision));
                }
                Ok::<_, raft_kv::Error>(())
            })
            .map(|()| subs)
        })
        .expect("export");
    node.shutdown();
    assert_eq!(subs, vec![(b"a".to_vec(), 1), (b"c".to_vec(), 0)]);
}

/// A snapshot whose `authUsers` holds `value` under `key` (the buckets an
/// etcd snapshot must have, otherwise empty), as a hostile file would.
fn with_auth_user(dir: &std::path::Path, key: &[u8], value: &[u8]) -> std::path::PathBuf {
    let path = dir.join("db");
    let mut w = crate::bbolt::Writer::new(std::fs::File::create(&path).expect("create"), 4096).expect("writer");
    let mut users = w.bucket(b"authUsers").expect("bucket");
    users.put(key, value).expect("put");
    users.finish().expect("finish");
    for name in [&b"key"[..], b"lease", b"meta"] {
        w.bucket(name).expect("bucket").finish().expect("finish");
    }
    w.finish().expect("finish");
    path
}

/// Garbage and forged user records are refused with a clear error, before
/// anything is finished into the store.
#[test]
fn bad_auth_records_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let garbage = with_auth_user(dir.path(), b"alice", &[0xff; 40]);
    let mut imp = Importer::new(MemEngine::new()).expect("importer");
    let len = verify_hash(&garbage, true).expect("len");
    let e = read_snapshot(&garbage, len, &mut imp).expect_err("garbage record");
    assert!(e.to_string().contains("bad record"), "{e}");

    let dir = tempfile::tempdir().expect("dir");
    let bob = raft_kv::pb::authpb::User { name: b"bob".to_vec().into(), ..Default::default() };
    let forged = with_auth_user(dir.path(), b"alice", &prost::Message::encode_to_vec(&bob));
    let mut imp = Importer::new(MemEngine::new()).expect("importer");
    let len = verify_hash(&forged, true).expect("len");
    let e = read_snapshot(&forged, len, &mut imp).expect_err("record under another name");
    assert!(e.to_string().contains("does not match its record"), "{e}");
}
