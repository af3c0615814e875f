//! Elections: who asks whom, and which answers wait for a synced hard state.

use raft::eraftpb::MessageType::{
    MsgAppend, MsgHeartbeat, MsgRequestPreVote, MsgRequestPreVoteResponse, MsgRequestVote, MsgRequestVoteResponse,
};

use protobuf::Message as _;
use raft::eraftpb::HardState;

use super::*;
use crate::engine::ReadView;
use crate::keys;

/// The hard state stored in member `id`'s engine.
fn stored_hard_state(c: &Cluster, id: u64) -> HardState {
    let bytes = c.engine(id).get(Cf::Raft, keys::HARD_STATE).expect("get").expect("no hard state");
    HardState::parse_from_bytes(&bytes).expect("hard state")
}

/// A cluster of three without pre-vote, so a campaign goes straight to votes.
fn no_pre_vote() -> Cluster {
    Cluster::with(3, |cfg| cfg.pre_vote = false)
}

#[test]
fn campaign_with_pre_vote_sends_pre_votes_at_once_without_a_log_write() {
    let mut c = Cluster::new(3);
    c.peer(1).campaign().expect("campaign");
    let rd = c.ready(1);
    assert_eq!(sorted(&rd.messages), vec![(MsgRequestPreVote, 2), (MsgRequestPreVote, 3)]);
    // A pre-vote asks for the next term without taking it: nothing to persist.
    assert!(rd.messages.iter().all(|m| m.term == 2), "{:?}", rd.messages);
    assert!(rd.log_write.is_none(), "{:?}", rd.log_write);
    assert!(rd.completions.is_empty() && rd.apply.is_empty());
    assert_eq!(c.peer(1).term(), 1);
}

#[test]
fn pre_vote_response_goes_out_at_once() {
    let mut c = Cluster::new(3);
    c.peer(1).campaign().expect("campaign");
    c.run(1, Write::Persist);
    assert_eq!(c.deliver(to(2)), 1);
    let rd = c.ready(2);
    assert_eq!(types(&rd.messages), vec![(MsgRequestPreVoteResponse, 1)]);
    assert!(!rd.messages[0].reject);
    assert!(rd.log_write.is_none(), "a granted pre-vote changes no hard state: {:?}", rd.log_write);
    assert_eq!(c.peer(2).term(), 1);
}

#[test]
fn campaign_without_pre_vote_sends_votes_only_after_its_synced_term_and_vote() {
    let mut c = no_pre_vote();
    c.peer(1).campaign().expect("campaign");
    let rd = c.ready(1);
    assert!(rd.messages.is_empty(), "vote requests must wait for the candidate's own vote: {:?}", rd.messages);
    let lw = rd.log_write.as_ref().expect("the new term and self-vote must be written");
    assert!(lw.write.sync, "a term or vote change is synced");
    assert!(!lw.write.batch.is_empty());
    assert_eq!(lw.installs, None);
    assert_eq!(sorted(&lw.then_send), vec![(MsgRequestVote, 2), (MsgRequestVote, 3)]);
    assert!(lw.then_send.iter().all(|m| m.term == 2));

    c.execute(1, rd, Write::Hold);
    assert!(c.net.is_empty(), "nothing leaves before the write is durable");
    c.persist(1);
    assert_eq!(sorted(&c.net), vec![(MsgRequestVote, 2), (MsgRequestVote, 3)]);
    let hs = stored_hard_state(&c, 1);
    assert_eq!((hs.term, hs.vote), (2, 1));
}

#[test]
fn vote_response_waits_for_the_voters_synced_hard_state() {
    let mut c = no_pre_vote();
    c.peer(1).campaign().expect("campaign");
    c.run(1, Write::Persist);
    assert_eq!(c.deliver(to(2)), 1);

    let rd = c.ready(2);
    assert!(rd.messages.is_empty(), "the vote must not leave before it is durable: {:?}", rd.messages);
    let lw = rd.log_write.as_ref().expect("the vote is a hard state change");
    assert!(lw.write.sync);
    assert_eq!(lw.installs, None);
    assert_eq!(types(&lw.then_send), vec![(MsgRequestVoteResponse, 1)]);
    assert!(!lw.then_send[0].reject, "member 1's log is as up to date as member 2's");
    assert_eq!(lw.then_send[0].term, 2);
    // The stored hard state changes only with the write.
    assert_eq!(stored_hard_state(&c, 2).vote, 0);

    c.net.clear(); // the request to member 3 is lost
    c.execute(2, rd, Write::Persist);
    let hs = stored_hard_state(&c, 2);
    assert_eq!((hs.term, hs.vote), (2, 1));
    assert_eq!(types(&c.net), vec![(MsgRequestVoteResponse, 1)]);
}

#[test]
fn new_leader_sends_its_empty_entry_before_persisting_it() {
    let mut c = no_pre_vote();
    c.peer(1).campaign().expect("campaign");
    c.run(1, Write::Persist);
    c.deliver(to(2));
    c.run(2, Write::Persist);
    c.deliver(to(1));

    let rd = c.ready(1);
    assert!(c.peer(1).is_leader());
    assert_eq!(sorted(&rd.messages), vec![(MsgAppend, 2), (MsgAppend, 3)]);
    for m in &rd.messages {
        assert_eq!(m.entries.len(), 1, "the new leader's empty entry");
        assert!(m.entries[0].data.is_empty());
        assert_eq!(m.entries[0].term, 2);
    }
    let lw = rd.log_write.as_ref().expect("the leader's own copy of the entry");
    assert!(lw.write.sync);
    assert!(lw.then_send.is_empty(), "a leader sends at once: {:?}", lw.then_send);
}

#[test]
fn elect_makes_the_campaigner_leader_everywhere() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for id in 1..=3 {
        let s = c.peer(id).member_state();
        assert_eq!((s.leader, s.term), (1, 2), "member {id}");
        // The new leader's empty entry (index 2) is committed and applied.
        assert_eq!((s.commit_index, s.applied_index), (2, 2), "member {id}");
    }
    assert_eq!(c.peer(1).leader_changes(), 1);
}

#[test]
fn leader_heartbeats_each_tick_without_a_log_write() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).tick();
    let rd = c.ready(1);
    assert_eq!(sorted(&rd.messages), vec![(MsgHeartbeat, 2), (MsgHeartbeat, 3)]);
    assert!(rd.log_write.is_none(), "{:?}", rd.log_write);
    assert!(rd.apply.is_empty() && rd.completions.is_empty());
}

#[test]
fn follower_campaigns_exactly_at_its_election_timeout() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let timeout = c.peer(2).config().election_ticks;
    for tick in 1..timeout {
        c.peer(2).tick();
        assert!(!c.peer(2).has_ready(), "tick {tick}");
        assert!(c.ready(2).messages.is_empty(), "tick {tick}");
    }
    c.peer(2).tick();
    let rd = c.ready(2);
    assert_eq!(sorted(&rd.messages), vec![(MsgRequestPreVote, 1), (MsgRequestPreVote, 3)]);
    assert!(rd.log_write.is_none());
}

#[test]
fn pre_vote_is_ignored_while_a_leader_is_known() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for _ in 0..c.peer(2).config().election_ticks {
        c.peer(2).tick();
    }
    c.run(2, Write::Persist);
    assert_eq!(c.deliver(to(3)), 1);
    // Member 3 heard from its leader within an election timeout.
    let rd = c.ready(3);
    assert!(rd.messages.is_empty() && rd.log_write.is_none(), "{rd:?}");
    assert_eq!(c.peer(3).leader(), Some(1));
    assert_eq!(c.peer(3).term(), 2);
}
