//! Replication: which appends leave at once, which wait for a log write, and
//! which peer messages a member refuses.

use raft::eraftpb::Entry;
use raft::eraftpb::MessageType::{MsgAppend, MsgAppendResponse, MsgHeartbeat, MsgHeartbeatResponse, MsgHup};

use super::*;
use crate::Error;

/// A cluster of three led by member 1 with `k` = `v` proposed on the leader
/// and its Ready carried out (its own write persisted): the appends to 2
/// and 3 are in flight.
fn proposed() -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(put("k", "v"), 1);
    c.run(1, Write::Persist);
    c
}

/// A message of type `ty` from 1 to 2 in member 2's current term.
fn forged(c: &mut Cluster, ty: MessageType) -> Message {
    let mut m = Message::default();
    m.set_msg_type(ty);
    m.from = 1;
    m.to = 2;
    m.term = c.peer(2).term();
    m
}

/// Steps `m` into member 2, expecting it refused as a bad peer message, and
/// asserts that it changed nothing and caused no output.
fn assert_refused(c: &mut Cluster, m: Message) -> String {
    let before = c.peer(2).member_state();
    let why = match c.peer(2).step(m) {
        Err(Error::BadPeerMessage(why)) => why,
        other => panic!("expected BadPeerMessage, got {other:?}"),
    };
    assert!(!c.peer(2).has_ready());
    let rd = c.ready(2);
    assert!(rd.messages.is_empty(), "{:?}", rd.messages);
    assert!(rd.log_write.is_none(), "{:?}", rd.log_write);
    assert!(rd.apply.is_empty() && rd.completions.is_empty());
    assert_eq!(c.peer(2).member_state(), before);
    why
}

#[test]
fn leader_appends_leave_in_the_ready_whose_log_write_holds_the_entries() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(put("k", "v"), 1);
    let rd = c.ready(1);
    assert_eq!(sorted(&rd.messages), vec![(MsgAppend, 2), (MsgAppend, 3)]);
    for m in &rd.messages {
        assert_eq!(entry_ops(m), vec![put("k", "v")]);
        assert_eq!(m.entries[0].index, 3, "after the bootstrap entry and the leader's empty one");
    }
    let lw = rd.log_write.as_ref().expect("the leader's own copy of the entry");
    assert!(lw.write.sync, "new entries are synced");
    assert!(!lw.write.batch.is_empty());
    assert!(lw.then_send.is_empty(), "a leader's appends do not wait for its fsync: {:?}", lw.then_send);
    assert!(rd.completions.is_empty() && rd.apply.is_empty());
    // Sent while the leader's own write is still in flight.
    c.execute(1, rd, Write::Hold);
    assert_eq!(sorted(&c.net), vec![(MsgAppend, 2), (MsgAppend, 3)]);
    assert_eq!(c.held(1), 1);
}

#[test]
fn follower_append_response_is_released_only_after_its_write_is_persisted() {
    let mut c = proposed();
    assert_eq!(c.deliver(to(2)), 1);
    let rd = c.ready(2);
    assert!(of_type(&rd.messages, MsgAppendResponse).is_empty(), "sent before durable: {:?}", rd.messages);
    assert!(rd.messages.is_empty());
    let lw = rd.log_write.as_ref().expect("the follower's copy of the entry");
    assert!(lw.write.sync);
    assert_eq!(lw.installs, None);
    assert_eq!(types(&lw.then_send), vec![(MsgAppendResponse, 1)]);
    assert!(!lw.then_send[0].reject);
    assert_eq!(lw.then_send[0].index, 3);

    c.execute(2, rd, Write::Hold);
    assert!(c.net.iter().all(|m| m.from != 2), "nothing from 2 while its write is in flight");
    c.persist(2);
    let from2: Vec<Message> = c.net.iter().filter(|m| m.from == 2).cloned().collect();
    assert_eq!(types(&from2), vec![(MsgAppendResponse, 1)]);
}

#[test]
fn follower_response_waits_behind_an_earlier_write_in_flight() {
    let mut c = proposed();
    c.deliver(to(2));
    c.run(2, Write::Hold);
    // A heartbeat changes nothing on disk, but its response must not
    // overtake the append response still waiting for the write.
    c.net.clear();
    c.peer(1).tick();
    c.run(1, Write::Persist);
    assert_eq!(c.deliver(to_of(2, MsgHeartbeat)), 1);
    let rd = c.ready(2);
    assert!(rd.messages.is_empty(), "{:?}", rd.messages);
    let lw = rd.log_write.as_ref().expect("an ordering-only write");
    assert!(lw.write.batch.is_empty() && !lw.write.sync);
    assert_eq!(types(&lw.then_send), vec![(MsgHeartbeatResponse, 1)]);
    c.execute(2, rd, Write::Hold);
    assert_eq!(c.held(2), 2);
    c.net.clear();
    c.persist(2);
    assert_eq!(types(&c.net), vec![(MsgAppendResponse, 1), (MsgHeartbeatResponse, 1)]);
}

#[test]
fn entries_reach_every_follower_log_once_persisted() {
    let mut c = proposed();
    c.settle();
    for id in 1..=3 {
        let s = c.peer(id).status();
        assert_eq!((s.last_index, s.state.commit_index, s.state.applied_index), (3, 3, 3), "member {id}");
        assert_eq!(c.get(id, "k").as_deref(), Some(&b"v"[..]), "member {id}");
    }
}

#[test]
fn heartbeat_committing_beyond_the_log_is_refused_and_causes_no_messages() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut hb = forged(&mut c, MsgHeartbeat);
    hb.commit = u64::MAX;
    let why = assert_refused(&mut c, hb);
    assert!(why.contains("beyond the last index"), "{why}");
    // A genuine heartbeat is still answered.
    let hb = forged(&mut c, MsgHeartbeat);
    c.peer(2).step(hb).expect("a genuine heartbeat");
    assert_eq!(types(&c.ready(2).messages), vec![(MsgHeartbeatResponse, 1)]);
}

#[test]
fn append_with_entries_out_of_sequence_is_refused() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut app = forged(&mut c, MsgAppend);
    (app.index, app.log_term) = (2, 2);
    app.entries = [3, 5].iter().map(|&index| Entry { index, term: 2, ..Default::default() }).collect();
    let why = assert_refused(&mut c, app);
    assert!(why.contains("out of sequence"), "{why}");
}

#[test]
fn implausible_term_misaddressed_and_local_messages_are_refused() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut far = forged(&mut c, MsgHeartbeat);
    far.term = u64::MAX;
    assert!(assert_refused(&mut c, far).contains("implausibly far"));
    let mut misaddressed = forged(&mut c, MsgHeartbeat);
    misaddressed.to = 3;
    assert!(assert_refused(&mut c, misaddressed).contains("for member 3"));
    let hup = forged(&mut c, MsgHup);
    assert!(assert_refused(&mut c, hup).contains("local raft message"));
}

#[test]
fn proposals_of_one_step_leave_as_one_append_per_follower_and_all_commit() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for i in 0..8u32 {
        c.peer(1).propose(put(&format!("k{i}"), "v"), i);
    }
    let rd = c.ready(1);
    assert_eq!(sorted(&rd.messages), vec![(MsgAppend, 2), (MsgAppend, 3)]);
    for m in &rd.messages {
        let indexes: Vec<u64> = m.entries.iter().map(|e| e.index).collect();
        assert_eq!(indexes, (3..=10).collect::<Vec<_>>(), "the step's eight entries, in order");
        assert_eq!(m.index, 2, "after the leader's empty entry");
    }
    c.execute(1, rd, Write::Persist);
    // Each follower answers the one append once.
    assert_eq!(c.deliver(to(2)), 1);
    c.run(2, Write::Persist);
    assert_eq!(sorted(&c.net), vec![(MsgAppend, 3), (MsgAppendResponse, 1)]);
    c.settle();
    for i in 0..8u32 {
        assert!(c.take_completion(1, i).expect("completed").is_ok());
    }
    for id in 1..=3 {
        assert_eq!(c.get(id, "k7").as_deref(), Some(&b"v"[..]));
    }
}
