//! Alarms: a member past its quota refuses writes that take space and
//! raises NOSPACE through the log; every member then refuses them at apply,
//! until an alarm disarm applies; the alarm survives a reopen.

use super::*;
use crate::api::{AlarmAction, AlarmMember, AlarmRequest, AlarmType, DeleteRangeRequest};
use crate::Error;

fn alarm(action: AlarmAction, member_id: u64) -> Op {
    Op::Alarm(AlarmRequest { action: action as i32, member_id, alarm: AlarmType::Nospace as i32 })
}

fn nospace(member_id: u64) -> Vec<AlarmMember> {
    vec![AlarmMember { member_id, alarm: AlarmType::Nospace as i32 }]
}

#[test]
fn quota_raises_nospace_everywhere_until_disarmed() {
    let mut c = Cluster::with(3, |cfg| cfg.quota_backend_bytes = 8_000);
    c.elect(1);
    let big = "x".repeat(5_000);
    assert!(matches!(c.put(1, "big", &big, 1), Ok(Response::Put(_))), "under the quota when proposed");

    // The leader measures its engine on the next tick: now it is over.
    c.peer(1).tick();
    c.settle();
    assert_eq!(c.put(1, "more", "v", 2), Err(Error::NoSpace), "refused at once");
    for id in 1..=3 {
        assert_eq!(c.peer(id).alarms(AlarmType::None), nospace(1), "member {id} applied the alarm");
    }
    // Member 2 has not measured itself, so its put enters the log, and the
    // alarm refuses it at apply (on every member alike).
    assert_eq!(c.put(2, "more", "v", 3), Err(Error::NoSpace));
    assert_eq!(c.get(3, "more"), None);
    // Deletes go on.
    c.peer(2).propose(Op::DeleteRange(DeleteRangeRequest::key("big")), 4);
    c.settle();
    assert!(matches!(c.take_completion(2, 4), Some(Ok(Response::DeleteRange(_)))));

    // The alarm is state: a member reopened on its engine still has it.
    let reopened: TestPeer = Peer::open(config(3, &[1, 2, 3]), c.engine(3).clone()).expect("reopen");
    assert_eq!(reopened.alarms(AlarmType::Nospace), nospace(1));

    // Disarmed through any member, puts apply again...
    c.peer(3).propose(alarm(AlarmAction::Deactivate, 1), 5);
    c.settle();
    assert!(matches!(c.take_completion(3, 5), Some(Ok(Response::Alarm(a))) if a.alarms == nospace(1)));
    for id in 1..=3 {
        assert!(c.peer(id).alarms(AlarmType::None).is_empty(), "member {id}");
    }
    assert!(matches!(c.put(2, "after", "v", 6), Ok(Response::Put(_))));
    // ...except on the member still over its quota, which raises it again
    // (one alarm proposal per tick at most).
    c.peer(1).tick();
    c.settle();
    assert_eq!(c.put(1, "again", "v", 7), Err(Error::NoSpace));
    assert_eq!(c.peer(2).alarms(AlarmType::None), nospace(1));
}

#[test]
fn without_a_quota_nothing_is_measured_or_refused() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let big = "x".repeat(50_000);
    for i in 0..3 {
        c.peer(1).tick();
        assert!(matches!(c.put(1, &format!("k{i}"), &big, i), Ok(Response::Put(_))));
    }
    assert!(c.peer(1).alarms(AlarmType::None).is_empty());
}

#[test]
fn alarms_travel_with_a_snapshot() {
    let mut c = Cluster::with(3, |cfg| {
        cfg.snapshot_entries = 4;
        cfg.log_keep_entries = 1;
        cfg.snapshot_chunk_bytes = 64;
    });
    c.elect(1);
    c.isolated.insert(3);
    c.peer(1).propose(alarm(AlarmAction::Activate, 2), 1);
    c.settle();
    assert!(matches!(c.take_completion(1, 1), Some(Ok(Response::Alarm(a))) if a.alarms == nospace(2)));
    // Enough entries (deletes still apply) for the leader to compact past
    // what member 3 has.
    for i in 0..8 {
        c.peer(1).propose(Op::DeleteRange(DeleteRangeRequest::key(format!("k{i}"))), 10 + i);
        c.settle();
    }
    assert!(c.peer(1).status().first_index > c.peer(3).status().last_index + 1);
    assert!(c.peer(3).alarms(AlarmType::None).is_empty());

    c.isolated.remove(&3);
    for _ in 0..5 {
        c.peer(1).tick();
        c.settle();
    }
    assert_eq!(c.peer(3).status().state.applied_index, c.peer(1).status().state.applied_index, "installed");
    assert_eq!(c.peer(3).alarms(AlarmType::None), nospace(2), "the installed state carries the alarm");
    assert_eq!(c.put(3, "k", "v", 30), Err(Error::NoSpace));
}
