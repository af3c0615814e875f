//! Membership: the members a Ready reports, at start and after conf
//! changes apply.

use crate::api::{Member, MemberRemoveRequest, MembersResponse};
use crate::Error;

use super::*;

/// The traces of member `id` that reported members.
fn member_reports(traces: &[Trace], id: u64) -> Vec<&Trace> {
    traces.iter().filter(|t| t.id == id && t.members.is_some()).collect()
}

#[test]
fn first_ready_reports_the_initial_members_and_later_ones_do_not() {
    let engine = MemEngine::new();
    let mut p: TestPeer = Peer::open(config(1, &[1, 2, 3]), engine.clone()).expect("open");
    assert!(p.has_ready());
    let rd = p.ready().expect("ready");
    let ids: Vec<u64> = rd.members.as_ref().expect("initial members").iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(rd.messages.is_empty() && rd.completions.is_empty());
    let rd = p.ready().expect("ready");
    assert!(rd.members.is_none(), "members did not change");
}

#[test]
fn member_add_reports_the_new_members_on_every_member_once_applied() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let four = Member::new(4, vec!["http://m4:2380".to_owned()]);
    c.peer(1).propose(Op::MemberAdd(four.clone()), 1);
    let rd = c.ready(1);
    assert!(rd.members.is_none(), "not before it applies");
    assert!(rd.log_write.as_ref().is_some_and(|lw| lw.write.sync));
    c.execute(1, rd, Write::Persist);
    let traces = c.settle();

    for id in 1..=3 {
        let reports = member_reports(&traces, id);
        let first = reports.first().unwrap_or_else(|| panic!("member {id} reported no members"));
        assert_eq!(first.members.as_deref(), Some(&[1, 2, 3, 4][..]), "member {id}");
        assert!(first.apply_ops > 0, "member {id}: reported in the Ready that applied the change");
        assert_eq!(c.peer(id).members().len(), 4);
        assert!(c.peer(id).status().voters.contains(&4), "member {id}");
    }
    match c.take_completion(1, 1) {
        Some(Ok(Response::Members(MembersResponse { member, members }))) => {
            assert_eq!(member, Some(four));
            assert_eq!(members.len(), 4);
        }
        other => panic!("expected a members response, got {other:?}"),
    }
}

#[test]
fn learner_add_keeps_the_voters() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let learner = Member { id: 4, is_learner: true, ..Default::default() };
    c.peer(1).propose(Op::MemberAdd(learner), 1);
    let traces = c.settle();
    for id in 1..=3 {
        assert_eq!(member_reports(&traces, id)[0].members.as_deref(), Some(&[1, 2, 3, 4][..]));
        let s = c.peer(id).status();
        assert_eq!((s.voters, s.learners), (vec![1, 2, 3], vec![4]), "member {id}");
    }
    assert!(matches!(c.take_completion(1, 1), Some(Ok(Response::Members(_)))));
}

#[test]
fn member_remove_reports_the_remaining_members() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(Op::MemberRemove(MemberRemoveRequest { id: 3 }), 1);
    let traces = c.settle();
    for id in [1, 2] {
        let reports = member_reports(&traces, id);
        assert_eq!(reports[0].members.as_deref(), Some(&[1, 2][..]), "member {id}");
        assert!(!c.peer(id).status().voters.contains(&3));
    }
    assert!(matches!(c.take_completion(1, 1), Some(Ok(Response::Members(_)))));
}

#[test]
fn member_add_of_an_existing_id_fails_at_once() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(Op::MemberAdd(Member::new(2, Vec::new())), 2);
    let rd = c.ready(1);
    assert!(matches!(rd.completions[..], [(2, Err(Error::MemberExists))]), "{rd:?}");
    assert!(rd.messages.is_empty() && rd.log_write.is_none() && rd.members.is_none());
}

#[test]
fn messages_from_a_removed_member_are_dropped() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(Op::MemberRemove(MemberRemoveRequest { id: 3 }), 1);
    c.settle();
    let term = c.peer(2).term();
    // The removed member, not told, campaigns with a higher term.
    let mut vote = Message::default();
    vote.set_msg_type(MessageType::MsgRequestVote);
    (vote.from, vote.to, vote.term) = (3, 2, term + 5);
    assert!(matches!(c.peer(2).step(vote), Err(Error::FromRemovedMember(3))));
    assert_eq!(c.peer(2).term(), term, "the removed member's term must not reach raft");
    let rd = c.ready(2);
    assert!(rd.messages.is_empty() && rd.log_write.is_none(), "{rd:?}");
    // Removal survives a restart of the engine's records.
    assert!(crate::core::membership::Members::load(c.engine(2)).expect("load").is_removed(3));
}
