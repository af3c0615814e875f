use raft_kv::{Config, Importer, MemEngine, Version};

use super::*;

fn v(key: &str, rev: i64, create: i64, version: i64, lease: i64) -> Version {
    let value = format!("{key}@{rev}").into_bytes();
    Version { key: key.into(), mod_revision: rev, tombstone: false, create_revision: create, version, lease, value }
}

#[test]
fn revision_keys_round_trip() {
    assert_eq!(parse_rev_key(&rev_key(7, 3, false)), Some((7, false)));
    assert_eq!(parse_rev_key(&rev_key(i64::MAX, 0, true)), Some((i64::MAX, true)));
    assert_eq!(parse_rev_key(b"short"), None);
    let mut k = rev_key(1, 0, false);
    k[8] = b'-';
    assert_eq!(parse_rev_key(&k), None);
    assert_eq!(parse_rev_key(&[0xFF; 17]), None, "a main revision past i64::MAX");
}

/// A store with history, a deletion, a lease and a compaction, written
/// as an etcd snapshot and read back into a new store.
#[test]
fn a_member_store_survives_the_etcd_format() {
    let src = MemEngine::new();
    let mut imp = Importer::new(src.clone()).expect("importer");
    let tomb = Version { key: b"b".to_vec(), mod_revision: 4, tombstone: true, ..Default::default() };
    let mut input = vec![v("a", 2, 2, 1, 0), v("b", 3, 3, 1, 7), tomb, v("a", 5, 2, 2, 0), v("c", 5, 5, 1, 7)];
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
}
