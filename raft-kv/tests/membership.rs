//! Membership changes on real RocksDB over transport-mem.

mod common;

use std::time::{Duration, Instant};

use common::{retry, Cluster, PATIENCE};
use raft_kv::{Config, Error, Member, RangeRequest};

fn write_keys(c: &Cluster, prefix: &str, n: usize) {
    let leader = c.leader();
    for i in 0..n {
        retry(|| c.node(leader).put(format!("{prefix}{i:04}"), format!("v{i}")));
    }
}

fn count(c: &Cluster, id: u64, prefix: &str) -> i64 {
    c.node(id).range(RangeRequest::prefix(prefix.to_string()).serializable()).expect("range").count
}

#[test]
fn learner_catches_up_by_snapshot_is_promoted_and_the_cluster_survives_losing_any_voter() {
    let mut c = Cluster::start_with(3, |cfg| Config { snapshot_chunk_bytes: 4096, ..cfg.snapshot_entries(200, 20) });
    write_keys(&c, "pre/", 600);
    let leader = c.leader();
    let added = c
        .node(leader)
        .member_add(Member { id: 4, name: "four".into(), is_learner: true, ..Default::default() })
        .expect("add learner");
    assert!(added.members.iter().any(|m| m.id == 4 && m.is_learner));
    c.start_joiner(4);
    // Promotion waits until the learner has caught up.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let leader = c.leader();
        match c.node(leader).member_promote(4) {
            Ok(r) => {
                assert!(r.members.iter().any(|m| m.id == 4 && !m.is_learner));
                break;
            }
            Err(Error::LearnerNotReady) | Err(Error::NotLeader { .. }) | Err(Error::Timeout) => {}
            Err(e) => panic!("promote: {e}"),
        }
        assert!(Instant::now() < deadline, "learner never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rev = c.converge();
    let s4 = c.node(4).status().expect("status");
    assert!(s4.first_index > 100, "the new member installed a snapshot: {s4:?}");
    assert_eq!(s4.voters.len(), 4);
    assert_eq!(count(&c, 4, "pre/"), 600);
    assert_eq!(c.node(4).hash(rev).expect("hash"), c.node(leader).hash(rev).expect("hash"));

    for victim in 1..=4u64 {
        c.stop(victim);
        write_keys(&c, &format!("without-{victim}/"), 20);
        c.restart(victim);
        c.converge();
        assert_eq!(count(&c, victim, &format!("without-{victim}/")), 20, "member {victim} caught up");
    }
    let members = c.node(1).member_list().expect("list");
    assert_eq!(
        members.iter().map(|m| (m.id, m.is_learner)).collect::<Vec<_>>(),
        vec![(1, false), (2, false), (3, false), (4, false)]
    );
    assert_eq!(members[3].name, "four");
}

#[test]
fn removing_the_leader_hands_over_and_writes_continue() {
    let mut c = Cluster::start(3);
    write_keys(&c, "a/", 10);
    let old = c.leader();
    let r = retry(|| c.node(old).member_remove(old));
    assert_eq!(r.members.len(), 2);
    let rest: Vec<u64> = c.ids.iter().copied().filter(|id| *id != old).collect();
    let new = c.leader_among(&rest);
    assert_ne!(new, old);
    for i in 0..10 {
        retry(|| c.node(rest[i % 2]).put(format!("b/{i}"), "x"));
    }
    c.stop(old);
    // A restart keeps the new configuration.
    for id in rest.clone() {
        c.stop(id);
        c.restart(id);
    }
    let leader = c.leader_among(&rest);
    assert_eq!(c.node(leader).member_list().expect("list").len(), 2);
    assert_eq!(c.node(leader).status().expect("status").voters.len(), 2);
    assert_eq!(count(&c, leader, "b/"), 10);
    assert_eq!(c.node(leader).member_remove(old).expect_err("already removed"), Error::MemberNotFound);
}

#[test]
fn move_leader_and_bad_membership_requests() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let target = c.ids.iter().copied().find(|id| *id != leader).expect("follower");
    c.node(leader).move_leader(target).expect("move leader");
    assert_eq!(c.leader(), target);
    let n = c.node(target).clone();
    assert_eq!(n.member_add(Member { id: 2, ..Default::default() }).expect_err("dup"), Error::MemberExists);
    assert_eq!(n.member_promote(9).expect_err("unknown"), Error::MemberNotFound);
    assert!(matches!(n.member_promote(1), Err(Error::MemberNotLearner)), "not a learner");
    let updated = retry(|| n.member_update(1, vec!["http://10.0.0.1:2380".into()]));
    assert_eq!(updated.member.expect("member").peer_ur_ls, vec!["http://10.0.0.1:2380".to_string()]);
    assert_eq!(
        n.member_update(2, vec!["http://10.0.0.1:2380".into()]).expect_err("another member's URL"),
        Error::MemberExists
    );
    for id in c.ids.clone() {
        c.stop(id);
        c.restart(id);
    }
    let leader = c.leader();
    let m1 = c.node(leader).member_list().expect("list").into_iter().find(|m| m.id == 1).expect("member 1");
    assert_eq!(m1.peer_ur_ls, vec!["http://10.0.0.1:2380".to_string()], "membership survives a restart");
}
