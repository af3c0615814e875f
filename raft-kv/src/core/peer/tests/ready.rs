//! The Ready value's own pieces: [`DiskWrite::merge`] (group commit),
//! [`DiskWrite::write_to`] and [`Ready::is_empty`].

use crate::core::ready::DiskWrite;
use crate::engine::{ReadView, WriteBatch, WriteOp};

use super::*;

/// A batch of puts of `keys` into the raft column family.
fn batch(keys: &[&str]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for k in keys {
        b.put(Cf::Raft, k.as_bytes().to_vec(), b"x".to_vec());
    }
    b
}

/// A write numbered `number`.
fn write(number: u64, keys: &[&str], sync: bool) -> DiskWrite {
    DiskWrite { number, batch: batch(keys), sync }
}

/// The keys a batch puts, in order.
fn keys_of(b: &WriteBatch) -> Vec<String> {
    b.ops()
        .iter()
        .map(|op| match op {
            WriteOp::Put { key, .. } => String::from_utf8_lossy(key).into_owned(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn merge_of_no_writes_is_none() {
    assert!(DiskWrite::merge(Vec::new()).is_none());
}

#[test]
fn merge_of_one_write_is_that_write() {
    let m = DiskWrite::merge([write(4, &["a"], false)]).expect("merged");
    assert_eq!((m.number, m.sync), (4, false));
    assert_eq!(keys_of(&m.batch), ["a"]);
}

#[test]
fn merge_takes_the_last_number_ors_sync_and_concatenates_batches_in_order() {
    let m = DiskWrite::merge([write(3, &["a", "b"], false), write(4, &["c"], true), write(6, &["d"], false)])
        .expect("merged");
    assert_eq!(m.number, 6, "reported under the last write's number");
    assert!(m.sync, "synced because one of them must be");
    assert_eq!(keys_of(&m.batch), ["a", "b", "c", "d"]);
    assert_eq!(m.batch.len(), 4);
}

#[test]
fn merge_of_unsynced_writes_stays_unsynced_and_keeps_empty_ones_order() {
    let m = DiskWrite::merge([write(1, &["a"], false), write(2, &[], false), write(3, &["b"], false)]).expect("merged");
    assert_eq!((m.number, m.sync), (3, false));
    assert_eq!(keys_of(&m.batch), ["a", "b"]);
}

#[test]
fn write_to_writes_the_batch_and_returns_its_number() {
    let engine = MemEngine::new();
    assert_eq!(write(9, &["k"], true).write_to(&engine).expect("write"), 9);
    assert_eq!(engine.get(Cf::Raft, b"k").expect("get").as_deref(), Some(&b"x"[..]));
    // An empty batch is not written, but still reported.
    assert_eq!(write(10, &[], true).write_to(&engine).expect("write"), 10);
}

#[test]
fn a_quiet_peer_has_an_empty_ready() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for id in 1..=3 {
        assert!(!c.peer(id).has_ready(), "member {id}");
        assert!(c.ready(id).is_empty(), "member {id}");
    }
    c.peer(1).propose(put("k", "v"), 1);
    assert!(!c.ready(1).is_empty());
}
