//! Snapshots: the leader compacts its log, streams a lagging follower a
//! snapshot in chunks, and the follower installs it once its write is
//! durable.

use raft::eraftpb::MessageType::{MsgAppendResponse, MsgSnapshot};

use super::*;

/// Compacts after 4 applied entries, keeping 1; snapshot chunks of 64
/// bytes, so even a small state machine takes several.
fn compacting() -> Cluster {
    Cluster::with(3, |cfg| {
        cfg.snapshot_entries = 4;
        cfg.log_keep_entries = 1;
        cfg.snapshot_chunk_bytes = 64;
    })
}

/// Puts `k0`..`k{n-1}` through leader 1.
fn put_keys(c: &mut Cluster, n: u32) -> Vec<Trace> {
    let mut traces = Vec::new();
    for i in 0..n {
        c.peer(1).propose(put(&format!("k{i}"), &format!("v{i}")), i);
        traces.extend(c.settle());
        assert!(matches!(c.take_completion(1, i), Some(Ok(Response::Put(_)))));
    }
    traces
}

/// Runs Readies and delivers messages (streaming no snapshot chunks) until
/// the leader has a snapshot stream.
fn until_streaming(c: &mut Cluster) {
    for _ in 0..20 {
        if c.peer(1).is_streaming_snapshots() {
            return;
        }
        for id in 1..=3 {
            if c.peer(id).has_ready() {
                let t = c.run(id, Write::Persist);
                assert!(!t.messages.contains(&(MsgSnapshot, 3)), "a raw snapshot message escaped: {t:?}");
            }
        }
        c.deliver_all();
    }
    panic!("the leader never started a snapshot stream");
}

#[test]
fn log_compaction_makes_the_applying_write_synced() {
    let mut c = compacting();
    c.elect(1);
    // Applies index 3, 4, 5: no compaction yet, commit-only writes.
    for t in put_keys(&mut c, 3).iter().filter(|t| t.id == 1 && t.apply_ops > 0) {
        assert_eq!(t.log_write, Some((false, None)), "{t:?}");
    }
    assert_eq!(c.peer(1).status().first_index, 2);
    // Applying index 6 reaches 1 + 4 + 1: the log is compacted to 5 in
    // the same (now synced) write.
    let traces = put_keys(&mut c, 1);
    let applying: Vec<&Trace> = traces.iter().filter(|t| t.id == 1 && t.apply_ops > 0).collect();
    assert_eq!(applying.len(), 1);
    assert_eq!(applying[0].log_write, Some((true, None)));
    assert_eq!(c.peer(1).status().first_index, 6);
}

#[test]
fn lagging_follower_installs_a_streamed_snapshot_once_its_write_is_durable() {
    let mut c = compacting();
    c.elect(1);
    c.isolated.insert(3);
    put_keys(&mut c, 10);
    let leader = c.peer(1).status();
    assert!(leader.first_index > c.peer(3).status().last_index + 1, "the leader compacted what 3 lacks");

    // Reconnected, member 3 is probed and the leader starts a stream.
    c.isolated.remove(&3);
    c.peer(1).tick();
    until_streaming(&mut c);
    let mut chunks = Vec::new();
    while c.peer(1).is_streaming_snapshots() {
        chunks.extend(c.peer(1).snapshot_chunks(&mut |_| true, 4).expect("chunks"));
    }
    assert!(chunks.len() > 1, "{} chunk(s)", chunks.len());
    assert!(chunks.iter().all(|m| m.get_msg_type() == MsgSnapshot && m.to == 3 && m.from == 1));
    c.net.retain(|m| m.to != 3);
    c.net.extend(chunks);
    assert!(c.deliver(to(3)) > 1);

    let rd = c.ready(3);
    let lw = rd.log_write.as_ref().expect("the install");
    assert_eq!(lw.installs, Some((leader.state.applied_index, 2)));
    assert!(lw.write.sync, "an install is synced");
    assert!(!lw.write.batch.is_empty());
    assert_eq!(types(&lw.then_send), vec![(MsgAppendResponse, 1)]);
    assert!(rd.messages.is_empty(), "{:?}", rd.messages);
    assert!(rd.apply.is_empty(), "a snapshot Ready applies no entries");
    c.execute(3, rd, Write::Hold);
    // Written but not reported durable: the state machine is the old one.
    assert_eq!(c.peer(3).mvcc().revision(), 1);
    assert_eq!(c.get(3, "k9"), None);
    assert_eq!(c.peer(3).member_state().applied_index, 2);

    c.persist(3);
    assert_eq!(c.peer(3).mvcc().revision(), c.peer(1).mvcc().revision());
    assert_eq!(c.get(3, "k9").as_deref(), Some(&b"v9"[..]));
    assert_eq!(c.peer(3).member_state().applied_index, leader.state.applied_index);
    // The reopened state machine reports its members again.
    let rd = c.ready(3);
    assert_eq!(rd.members.map(|ms| ms.len()), Some(3));

    c.peer(3).read(RangeRequest::key("k0").serializable(), 50);
    c.settle();
    match c.take_completion(3, 50) {
        Some(Ok(Response::Range(r))) => assert_eq!(r.kvs[0].value, &b"v0"[..]),
        other => panic!("expected a range response, got {other:?}"),
    }
    // Caught up, member 3 takes new entries from the log again.
    c.put(1, "after", "snapshot", 60).expect("put");
    assert_eq!(c.get(3, "after").as_deref(), Some(&b"snapshot"[..]));
    assert_eq!(c.peer(3).status().state.applied_index, c.peer(1).status().state.applied_index);
}
