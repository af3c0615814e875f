//! Apply and completions: a proposal's caller hears back only once a quorum
//! persisted the entry and this member applied it; refusals come at once.

use raft::eraftpb::MessageType::{MsgAppend, MsgAppendResponse, MsgPropose};

use super::*;
use crate::api::PutResponse;
use crate::error::InvalidRequest;
use crate::Error;

/// Asserts that `res` is a put's response at `revision`.
fn assert_put_at(res: &Result<Response>, revision: i64) {
    match res {
        Ok(Response::Put(p)) => assert_eq!(p.revision(), revision, "{p:?}"),
        other => panic!("expected a put response, got {other:?}"),
    }
}

#[test]
fn leader_completes_a_proposal_only_after_a_quorum_persisted_and_applied_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(put("k", "v"), 7);
    let t = c.run(1, Write::Persist);
    assert!(t.completions.is_empty(), "not before replication");
    assert_eq!(c.deliver(to(2)) + c.deliver(to(3)), 2);
    // Both followers got the entry; neither has made it durable.
    for id in [2, 3] {
        let t = c.run(id, Write::Hold);
        assert_eq!(t.log_write, Some((true, None)));
        assert_eq!(t.then_send, vec![(MsgAppendResponse, 1)]);
    }
    // Whatever the followers sent meanwhile, the leader cannot commit.
    c.deliver_all();
    let rd = c.ready(1);
    assert!(rd.completions.is_empty(), "completed with only the leader's copy durable");
    assert!(rd.apply.is_empty());
    c.execute(1, rd, Write::Persist);
    assert_eq!(c.peer(1).member_state().commit_index, 2);

    // One follower's copy makes a quorum.
    c.persist(2);
    assert_eq!(c.deliver(to_of(1, MsgAppendResponse)), 1);
    let rd = c.ready(1);
    assert_eq!(rd.completions.len(), 1, "{rd:?}");
    assert_eq!(rd.completions[0].0, 7);
    assert_put_at(&rd.completions[0].1, 2);
    assert!(!rd.apply.is_empty(), "the completion comes with the entry's apply batch");
    // The new commit index goes out to the followers at once.
    assert_eq!(
        sorted(&of_type(&rd.messages, MsgAppend).into_iter().cloned().collect::<Vec<_>>()),
        [(MsgAppend, 2), (MsgAppend, 3)]
    );
    assert!(rd.messages.iter().all(|m| m.commit == 3));
    c.execute(1, rd, Write::Persist);
    assert_eq!(c.get(1, "k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn follower_applies_committed_entries_with_an_unsynced_commit_write() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(put("k", "v"), 1);
    c.run(1, Write::Persist);
    c.deliver(to(2));
    c.run(2, Write::Persist);
    c.deliver(to(1));
    c.run(1, Write::Persist);
    c.net.retain(|m| m.to == 2);
    assert_eq!(c.deliver(to_of(2, MsgAppend)), 1);

    let rd = c.ready(2);
    assert!(!rd.apply.is_empty(), "entry 3 is committed and durable here");
    assert!(rd.completions.is_empty(), "member 2 did not propose it");
    let lw = rd.log_write.as_ref().expect("the new commit index");
    assert!(!lw.write.sync, "a commit index alone need not be synced");
    assert_eq!(types(&lw.then_send), vec![(MsgAppendResponse, 1)]);
    c.execute(2, rd, Write::Persist);
    assert_eq!(c.get(2, "k").as_deref(), Some(&b"v"[..]));
    assert_eq!(c.peer(2).member_state().applied_index, 3);
}

#[test]
fn invalid_proposal_fails_in_the_next_ready_without_a_log_write() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(put("", "v"), 3);
    assert!(c.peer(1).has_ready());
    let rd = c.ready(1);
    assert_eq!(rd.completions.len(), 1);
    assert!(matches!(rd.completions[0], (3, Err(Error::Invalid(InvalidRequest::KeyNotProvided)))), "{rd:?}");
    assert!(rd.messages.is_empty() && rd.log_write.is_none() && rd.apply.is_empty());
}

#[test]
fn proposal_without_a_leader_fails_with_no_leader() {
    let mut c = Cluster::new(3);
    c.peer(1).propose(put("k", "v"), 4);
    let rd = c.ready(1);
    assert!(matches!(rd.completions[..], [(4, Err(Error::NoLeader))]), "{rd:?}");
    assert!(rd.messages.is_empty() && rd.log_write.is_none());
}

#[test]
fn follower_proposal_is_forwarded_and_completes_on_the_follower() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(2).propose(put("k", "v"), 5);
    let rd = c.ready(2);
    assert_eq!(types(&rd.messages), vec![(MsgPropose, 1)]);
    assert_eq!(entry_ops(&rd.messages[0]), vec![put("k", "v")]);
    assert!(rd.log_write.is_none() && rd.completions.is_empty());
    c.execute(2, rd, Write::Persist);
    let traces = c.settle();
    assert!(c.completed[&1].is_empty(), "the leader does not answer member 2's caller");
    let done: Vec<&Trace> = traces.iter().filter(|t| !t.completions.is_empty()).collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, 2);
    assert!(done[0].apply_ops > 0, "completed in the Ready that applied it");
    assert_put_at(&done[0].completions[0].1, 2);
}

#[test]
fn proposal_times_out_after_request_timeout_ticks() {
    let mut c = Cluster::with(3, |cfg| cfg.request_timeout_ticks = 3);
    c.elect(1);
    c.isolated.extend([2, 3]);
    c.peer(1).propose(put("k", "v"), 6);
    c.settle();
    for _ in 0..2 {
        c.peer(1).tick();
        assert!(c.ready(1).completions.is_empty());
    }
    c.peer(1).tick();
    let rd = c.ready(1);
    assert!(matches!(rd.completions[..], [(6, Err(Error::Timeout))]), "{rd:?}");
}

#[test]
fn consecutive_puts_complete_in_order_with_increasing_revisions() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let first = c.put(1, "a", "1", 1);
    assert_put_at(&first, 2);
    let second = c.put(1, "b", "2", 2);
    assert_put_at(&second, 3);
    assert!(matches!(second, Ok(Response::Put(PutResponse { .. }))));
    for id in 1..=3 {
        assert_eq!(c.peer(id).mvcc().revision(), 3, "member {id}");
    }
}
