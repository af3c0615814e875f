//! Reads: serializable ones are served from local state in the next Ready;
//! linearizable ones wait for a ReadIndex round and for apply to reach the
//! read index. Either way "served" means handed out as a range job over an
//! engine snapshot of the applied state, to read off the peer's thread.

use raft::eraftpb::MessageType::{MsgHeartbeat, MsgHeartbeatResponse, MsgReadIndex, MsgReadIndexResp};

use std::sync::Arc;

use super::*;
use crate::Error;

/// The values of a range response, as strings.
fn values(res: &Result<Response>) -> Vec<String> {
    match res {
        Ok(Response::Range(r)) => r.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.value).into_owned()).collect(),
        other => panic!("expected a range response, got {other:?}"),
    }
}

/// Runs the range jobs of `rd` (as a reader would) and returns their
/// completions; asserts nothing else was completed.
fn served(rd: &mut TestReady) -> Vec<(u32, Result<Response>)> {
    assert!(rd.completions.is_empty(), "a read completed on the peer's thread: {rd:?}");
    std::mem::take(&mut rd.ranges).into_iter().map(|job| job.run()).collect()
}

/// A cluster led by member 1 with `k` = `v1` applied everywhere.
pub(super) fn with_k() -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.put(1, "k", "v1", 100).expect("put");
    c
}

#[test]
fn serializable_read_completes_in_the_very_next_ready() {
    let mut c = with_k();
    c.peer(2).read(RangeRequest::key("k").serializable(), 9);
    assert!(c.peer(2).has_ready());
    let mut rd = c.ready(2);
    assert!(rd.messages.is_empty() && rd.log_write.is_none(), "no ReadIndex round: {rd:?}");
    let done = served(&mut rd);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, 9);
    assert_eq!(values(&done[0].1), ["v1"]);
}

#[test]
fn a_range_job_reads_the_snapshot_taken_when_it_was_served() {
    let mut c = with_k();
    let before = c.peer(2).mvcc().revision();
    c.peer(2).read(RangeRequest::key("k").serializable(), 9);
    let mut rd = c.ready(2);
    let job = rd.ranges.pop().expect("a range job");
    // Writes applied after the job was handed out are not in its answer,
    // however late it runs.
    c.execute(2, rd, Write::Persist);
    c.put(1, "k", "v2", 101).expect("put");
    assert_eq!(c.get(2, "k").as_deref(), Some(&b"v2"[..]));
    let (token, res) = job.run();
    assert_eq!(token, 9);
    assert_eq!(values(&res), ["v1"]);
    match res {
        Ok(Response::Range(r)) => assert_eq!(r.header.map(|h| h.revision), Some(before)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn serializable_read_on_a_lagging_follower_is_served_stale() {
    let mut c = with_k();
    c.isolated.insert(3);
    c.put(1, "k", "v2", 101).expect("put");
    c.peer(3).read(RangeRequest::key("k").serializable(), 9);
    let mut rd = c.ready(3);
    assert_eq!(values(&served(&mut rd)[0].1), ["v1"], "local state, without asking the leader");
}

#[test]
fn linearizable_read_on_the_leader_waits_for_a_heartbeat_quorum() {
    let mut c = with_k();
    c.peer(1).read(RangeRequest::key("k"), 9);
    let rd = c.ready(1);
    assert!(rd.completions.is_empty() && rd.ranges.is_empty(), "served before leadership was confirmed");
    assert_eq!(sorted(&rd.messages), vec![(MsgHeartbeat, 2), (MsgHeartbeat, 3)]);
    assert!(rd.messages.iter().all(|m| !m.context.is_empty()), "the ReadIndex context rides the heartbeats");
    c.execute(1, rd, Write::Persist);
    // Member 2 confirms; with the leader that is a quorum.
    c.deliver(to(2));
    let t = c.run(2, Write::Persist);
    assert_eq!(t.messages, vec![(MsgHeartbeatResponse, 1)]);
    c.deliver(to(1));
    // The read index comes back in this step; the read is served at the
    // start of the next one.
    let t = c.run(1, Write::Persist);
    assert!(t.completions.is_empty(), "{t:?}");
    assert!(c.peer(1).has_ready());
    let mut rd = c.ready(1);
    assert!(rd.messages.is_empty() && rd.log_write.is_none());
    let done = served(&mut rd);
    assert_eq!(done.len(), 1, "{rd:?}");
    assert_eq!(values(&done[0].1), ["v1"]);
}

#[test]
fn the_reads_served_in_one_step_share_one_engine_snapshot() {
    let mut c = with_k();
    for token in 1..=3 {
        c.peer(1).read(RangeRequest::key("k"), token);
    }
    let rd = c.ready(1);
    c.execute(1, rd, Write::Persist);
    c.deliver(to(2));
    c.run(2, Write::Persist);
    c.deliver(to(1));
    c.run(1, Write::Persist);
    let rd = c.ready(1);
    assert_eq!(rd.ranges.len(), 3, "{rd:?}");
    // One view (and so one snapshot and one read of its revisions) for the
    // whole batch, not one per read.
    assert!(rd.ranges.iter().all(|job| Arc::ptr_eq(&job.view, &rd.ranges[0].view)), "a view per read");
}

/// [`with_k`], then `k` = `v2` committed on members 1 and 2 while
/// everything to member 3 is held back; and the read index that gives.
fn with_member_3_behind() -> (Cluster, u64) {
    let mut c = with_k();
    c.peer(1).propose(put("k", "v2"), 101);
    c.run(1, Write::Persist);
    c.deliver(to(2));
    c.run(2, Write::Persist);
    c.deliver(to(1));
    c.run(1, Write::Persist);
    let read_index = c.peer(1).member_state().commit_index;
    (c, read_index)
}

/// Member 3's ReadIndex goes to the leader, which confirms its leadership
/// with member 2 only and answers member 3.
fn confirm_read_index_of_3(c: &mut Cluster) {
    c.deliver(to_of(1, MsgReadIndex));
    c.run(1, Write::Persist);
    c.deliver(to_of(2, MsgHeartbeat));
    c.run(2, Write::Persist);
    c.deliver(to(1));
    let t = c.run(1, Write::Persist);
    assert_eq!(t.messages, vec![(MsgReadIndexResp, 3)]);
    assert_eq!(c.deliver(to_of(3, MsgReadIndexResp)), 1);
}

#[test]
fn linearizable_read_is_served_only_once_applied_reaches_the_read_index() {
    let (mut c, read_index) = with_member_3_behind();
    assert_eq!(c.peer(3).member_state().applied_index, read_index - 1);

    // Member 3 asks the leader for a read index.
    c.peer(3).read(RangeRequest::key("k"), 9);
    let rd = c.ready(3);
    assert_eq!(types(&rd.messages), vec![(MsgReadIndex, 1)]);
    assert!(rd.completions.is_empty());
    c.execute(3, rd, Write::Persist);
    confirm_read_index_of_3(&mut c);

    // Member 3 knows the read index but lacks the entry: nothing to serve.
    let t = c.run(3, Write::Persist);
    assert!(t.completions.is_empty() && t.apply_ops == 0, "{t:?}");
    assert!(c.peer(3).member_state().applied_index < read_index);

    // The held appends arrive: the entry is written (not yet applied: it
    // is not durable here)...
    assert!(c.deliver(to(3)) > 0);
    let t = c.run(3, Write::Persist);
    assert_eq!(t.log_write, Some((true, None)));
    assert!(t.completions.is_empty() && t.apply_ops == 0, "{t:?}");
    // ...then applied, which does not serve the read in the same Ready
    // (reads are served at the start of a step, once the batch is written)...
    let t = c.run(3, Write::Persist);
    assert!(t.apply_ops > 0 && t.completions.is_empty(), "{t:?}");
    assert_eq!(c.peer(3).member_state().applied_index, read_index);
    // ...and the next Ready serves it, seeing `v2`.
    assert!(c.peer(3).has_ready());
    let mut rd = c.ready(3);
    assert!(rd.apply.is_empty() && rd.messages.is_empty() && rd.log_write.is_none());
    let done = served(&mut rd);
    assert_eq!(done.len(), 1, "{rd:?}");
    assert_eq!(done[0].0, 9);
    assert_eq!(values(&done[0].1), ["v2"]);
}

#[test]
fn linearizable_reads_queued_meanwhile_share_one_read_index_round() {
    let mut c = with_k();
    c.peer(1).read(RangeRequest::key("k"), 1);
    let t = c.run(1, Write::Persist);
    assert_eq!(t.messages.len(), 2);
    c.peer(1).read(RangeRequest::key("k"), 2);
    c.peer(1).read(RangeRequest::key("k"), 3);
    // A round is in flight: the new reads wait for the next one.
    assert!(c.ready(1).messages.is_empty());
    let traces = c.settle();
    let mut tokens: Vec<u32> = traces.iter().flat_map(|t| t.completions.iter().map(|(tok, _)| *tok)).collect();
    tokens.sort();
    assert_eq!(tokens, [1, 2, 3]);
}

#[test]
fn linearizable_read_without_a_leader_fails() {
    let mut c = Cluster::new(3);
    c.peer(1).read(RangeRequest::key("k"), 8);
    let rd = c.ready(1);
    assert!(matches!(rd.completions[..], [(8, Err(Error::NoLeader))]), "{rd:?}");
    assert!(rd.messages.is_empty());
}

/// A barrier is a linearizable read without the read: it takes the same
/// ReadIndex round and completes on the peer's thread — with the applied
/// index, no range job — only once apply reaches the read index.
#[test]
fn a_barrier_completes_with_the_applied_index_once_apply_reaches_the_read_index() {
    let (mut c, read_index) = with_member_3_behind();

    c.peer(3).read_barrier(9);
    let rd = c.ready(3);
    assert_eq!(types(&rd.messages), vec![(MsgReadIndex, 1)]);
    assert!(rd.completions.is_empty() && rd.ranges.is_empty());
    c.execute(3, rd, Write::Persist);
    confirm_read_index_of_3(&mut c);
    // The read index is known, the entry is not applied: no completion.
    let t = c.run(3, Write::Persist);
    assert!(t.completions.is_empty(), "{t:?}");
    assert!(c.deliver(to(3)) > 0);
    c.run(3, Write::Persist);
    let t = c.run(3, Write::Persist);
    assert!(t.completions.is_empty(), "completed in the step that applied: {t:?}");
    assert_eq!(c.peer(3).member_state().applied_index, read_index);
    let rd = c.ready(3);
    assert!(rd.ranges.is_empty(), "a barrier hands out no range job: {rd:?}");
    match &rd.completions[..] {
        [(9, Ok(Response::ReadIndex(at)))] => assert_eq!(*at, read_index),
        other => panic!("expected the barrier's completion, got {other:?}"),
    }
}

/// With no leader a barrier fails as a linearizable read does.
#[test]
fn a_barrier_without_a_leader_fails() {
    let mut c = Cluster::new(3);
    c.peer(2).read_barrier(7);
    let rd = c.ready(2);
    assert!(matches!(&rd.completions[..], [(7, Err(Error::NoLeader))]), "{rd:?}");
}

/// The completed tokens of `traces`, sorted.
fn completed_tokens(traces: &[Trace]) -> Vec<u32> {
    let mut tokens: Vec<u32> = traces.iter().flat_map(|t| t.completions.iter().map(|(tok, _)| *tok)).collect();
    tokens.sort();
    tokens
}

/// Members 2 and 3 acknowledge the leader's heartbeat round; the leader's
/// step that takes their answers.
fn acknowledge_round(c: &mut Cluster) -> Trace {
    c.deliver(to_of(2, MsgHeartbeat));
    c.deliver(to_of(3, MsgHeartbeat));
    c.run(2, Write::Persist);
    c.run(3, Write::Persist);
    c.deliver(to(1));
    c.run(1, Write::Persist)
}

/// The followers' ReadIndex requests and the leader's own reads that reach
/// the leader before a step share one heartbeat round: raft-rs alone would
/// start one per request.
#[test]
fn followers_read_index_requests_join_the_leaders_round() {
    let mut c = with_k();
    c.peer(2).read(RangeRequest::key("k"), 2);
    c.peer(3).read(RangeRequest::key("k"), 3);
    c.run(2, Write::Persist);
    c.run(3, Write::Persist);
    assert_eq!(c.deliver(to_of(1, MsgReadIndex)), 2);
    c.peer(1).read(RangeRequest::key("k"), 1);
    let t = c.run(1, Write::Persist);
    assert_eq!(t.messages, vec![(MsgHeartbeat, 2), (MsgHeartbeat, 3)], "one round for the three reads");
    let t = acknowledge_round(&mut c);
    let mut answers = t.messages.clone();
    answers.sort_by_key(|(_, to)| *to);
    assert_eq!(answers, vec![(MsgReadIndexResp, 2), (MsgReadIndexResp, 3)]);
    assert_eq!(completed_tokens(&c.settle()), [1, 2, 3]);
    for (id, token) in [(1, 1), (2, 2), (3, 3)] {
        assert_eq!(values(&c.take_completion(id, token).expect("served")), ["v1"]);
    }
}

/// A follower's request that arrives while the leader's round is in flight
/// waits for the next round: the round in flight may have confirmed
/// leadership before the request existed.
#[test]
fn a_forwarded_read_index_request_waits_for_the_next_round() {
    let mut c = with_k();
    c.peer(1).read(RangeRequest::key("k"), 1);
    let t = c.run(1, Write::Persist);
    assert_eq!(t.messages.len(), 2, "the leader's round: {t:?}");
    c.peer(2).read(RangeRequest::key("k"), 2);
    c.run(2, Write::Persist);
    assert_eq!(c.deliver(to_of(1, MsgReadIndex)), 1);
    let t = c.run(1, Write::Persist);
    assert!(t.messages.is_empty(), "no second round while one is in flight: {t:?}");
    // The first round's acknowledgements answer the leader's read only.
    let t = acknowledge_round(&mut c);
    assert!(!t.messages.contains(&(MsgReadIndexResp, 2)), "answered by a round older than the request: {t:?}");
    // The next step serves the leader's read and starts the follower's
    // round.
    let t = c.run(1, Write::Persist);
    assert_eq!(t.messages, vec![(MsgHeartbeat, 2), (MsgHeartbeat, 3)], "{t:?}");
    assert_eq!(completed_tokens(std::slice::from_ref(&t)), [1]);
    assert_eq!(completed_tokens(&c.settle()), [2]);
}

/// raft-rs reads a ReadIndex message's one context entry unchecked: a
/// request or an answer without it is refused before it reaches raft, and
/// a leader holds a bounded number of requests for its next round.
#[test]
fn malformed_and_excess_read_index_requests_are_refused() {
    let mut c = with_k();
    let mut bare = Message::default();
    bare.set_msg_type(MsgReadIndex);
    bare.from = 2;
    bare.to = 1;
    assert!(matches!(c.peer(1).step(bare.clone()), Err(Error::BadPeerMessage(_))));
    bare.set_msg_type(MsgReadIndexResp);
    bare.to = 2;
    bare.from = 1;
    bare.term = c.peer(2).term();
    assert!(matches!(c.peer(2).step(bare), Err(Error::BadPeerMessage(_))));

    let request = |n: u64| {
        let mut m = Message::default();
        m.set_msg_type(MsgReadIndex);
        m.from = 2;
        m.to = 1;
        let e = raft::eraftpb::Entry { data: n.to_be_bytes().to_vec().into(), ..Default::default() };
        m.set_entries(vec![e].into());
        m
    };
    for n in 0..super::super::MAX_FORWARDED_READS as u64 {
        c.peer(1).step(request(n)).expect("held");
    }
    assert!(matches!(c.peer(1).step(request(u64::MAX)), Err(Error::BadPeerMessage(_))));
    // The held ones are answered by one round.
    let t = c.run(1, Write::Persist);
    assert_eq!(t.messages, vec![(MsgHeartbeat, 2), (MsgHeartbeat, 3)]);
    c.deliver(to_of(2, MsgHeartbeat));
    c.run(2, Write::Persist);
    c.deliver(to_of(1, MsgHeartbeatResponse));
    let t = c.run(1, Write::Persist);
    assert_eq!(t.messages.len(), super::super::MAX_FORWARDED_READS, "{:?}", &t.messages[..2]);
    assert!(t.messages.iter().all(|m| *m == (MsgReadIndexResp, 2)));
}
