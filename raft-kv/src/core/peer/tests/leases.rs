//! Leases: granted TTLs, expiry in the leader's ticks, the revoke it
//! proposes, and the leased keys deleted when that applies.

use std::time::Duration;

use raft::eraftpb::MessageType::{MsgAppend, MsgHeartbeat};

use super::super::MAX_LEASE_TTL;
use super::*;
use crate::api::{LeaseGrantRequest, LeaseKeepAliveRequest};
use crate::error::InvalidRequest;
use crate::Error;

/// Ticks every member once.
fn tick_all(c: &mut Cluster) {
    for p in c.peers.values_mut() {
        p.tick();
    }
}

/// Grants a lease of `ttl` seconds through leader 1 and returns its id and
/// granted TTL.
fn grant(c: &mut Cluster, ttl: i64) -> (i64, i64) {
    c.peer(1).propose(Op::LeaseGrant(LeaseGrantRequest { ttl, id: 0 }), 1000);
    c.settle();
    match c.take_completion(1, 1000) {
        Some(Ok(Response::LeaseGrant(r))) => (r.id, r.ttl),
        other => panic!("expected a lease grant, got {other:?}"),
    }
}

/// The ticks a lease of `ttl` seconds lasts at `c`'s tick interval.
fn ticks_of(c: &mut Cluster, ttl: i64) -> u64 {
    let tick_ms = c.peer(1).config().tick_interval.as_millis() as u64;
    ttl as u64 * 1000 / tick_ms
}

/// Ticks every member once, asserting that the leader's Ready proposes
/// nothing (heartbeats only), and settles.
fn quiet_tick(c: &mut Cluster, tick: u64) {
    tick_all(c);
    let t = c.run(1, Write::Persist);
    assert!(t.messages.iter().all(|(ty, _)| *ty == MsgHeartbeat), "tick {tick}: {t:?}");
    c.settle();
}

/// Ticks every member once and asserts that the leader's Ready proposes a
/// revoke of `lease` to both followers; settles.
fn revoking_tick(c: &mut Cluster, lease: i64) {
    tick_all(c);
    let rd = c.ready(1);
    let appends = of_type(&rd.messages, MsgAppend);
    assert_eq!(appends.len(), 2, "{:?}", rd.messages);
    for m in appends {
        match &entry_ops(m)[..] {
            [Op::LeaseRevoke(r)] => assert_eq!(r.id, lease),
            other => panic!("expected one revoke, got {other:?}"),
        }
    }
    assert!(rd.log_write.as_ref().is_some_and(|lw| lw.write.sync), "the revoke entry is written");
    c.execute(1, rd, Write::Persist);
    c.settle();
}

#[test]
fn min_lease_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
    let mut c = Cluster::new(1);
    assert_eq!(c.peer(1).min_lease_ttl(), 2, "10 ticks of 100 ms: 1.5 s");
    let c = Cluster::with(1, |cfg| cfg.tick_interval = Duration::from_secs(1));
    assert_eq!(c.peers[&1].min_lease_ttl(), 15);
    let c = Cluster::with(1, |cfg| cfg.tick_interval = Duration::from_millis(10));
    assert_eq!(c.peers[&1].min_lease_ttl(), 1, "never below one second");
}

#[test]
fn grant_below_min_lease_ttl_is_raised_to_it_on_every_member() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let min = c.peer(1).min_lease_ttl();
    let (id, ttl) = grant(&mut c, 1);
    assert!(id > 0);
    assert_eq!(ttl, min);
    for m in 1..=3 {
        assert_eq!(c.peer(m).leases(), [id], "member {m}");
        assert_eq!(c.peer(m).lease_time_to_live(id, false).granted_ttl, min, "member {m}");
    }
}

#[test]
fn expired_lease_is_revoked_by_the_leader_and_its_key_deleted() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let (id, ttl) = grant(&mut c, 1);
    c.peer(1).propose(Op::Put(PutRequest::new("leased", "v").with_lease(id)), 1);
    c.settle();
    assert!(matches!(c.take_completion(1, 1), Some(Ok(Response::Put(_)))));
    assert_eq!(c.get(2, "leased").as_deref(), Some(&b"v"[..]));

    // The grant applied at the leader's tick 0: it lasts `ticks` ticks.
    let ticks = ticks_of(&mut c, ttl);
    assert_eq!(ticks, 20);
    for tick in 1..ticks {
        quiet_tick(&mut c, tick);
    }
    assert_eq!(c.peer(1).lease_time_to_live(id, true).keys, [Bytes::from_static(b"leased")]);
    revoking_tick(&mut c, id);
    for m in 1..=3 {
        assert_eq!(c.get(m, "leased"), None, "member {m}");
        assert!(c.peer(m).leases().is_empty(), "member {m}");
        assert_eq!(c.peer(m).lease_time_to_live(id, false).ttl, -1);
    }
    // Revoked once: later ticks propose nothing.
    quiet_tick(&mut c, ticks + 1);
}

/// Asserts that `lease`, renewed at the leader's tick `renewed`, stays
/// quiet until tick `renewed + ticks`, is revoked then, and is gone.
fn expires_after_renewal(c: &mut Cluster, lease: i64, renewed: u64, ticks: u64) {
    for tick in renewed + 1..renewed + ticks {
        quiet_tick(c, tick);
    }
    revoking_tick(c, lease);
    assert!(c.peer(3).leases().is_empty());
}

#[test]
fn keep_alive_restarts_the_lease_clock() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let (id, ttl) = grant(&mut c, 1);
    let ticks = ticks_of(&mut c, ttl);
    for tick in 1..=15 {
        quiet_tick(&mut c, tick);
    }
    c.peer(2).propose(Op::LeaseKeepAlive(LeaseKeepAliveRequest { id }), 7);
    c.settle();
    assert!(matches!(c.take_completion(2, 7), Some(Ok(Response::LeaseKeepAlive(k))) if k.ttl == ttl));
    // Renewed at the leader's tick 15: it now expires at tick 15 + ticks.
    expires_after_renewal(&mut c, id, 15, ticks);
}

#[test]
fn grant_beyond_the_max_ttl_is_refused_at_once() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(Op::LeaseGrant(LeaseGrantRequest { ttl: MAX_LEASE_TTL + 1, id: 0 }), 3);
    let rd = c.ready(1);
    assert!(matches!(rd.completions[..], [(3, Err(Error::Invalid(InvalidRequest::LeaseTtlTooLarge)))]), "{rd:?}");
    assert!(rd.messages.is_empty() && rd.log_write.is_none());
}

#[test]
fn put_with_an_unknown_lease_fails_when_it_applies() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.peer(1).propose(Op::Put(PutRequest::new("k", "v").with_lease(42)), 4);
    let rd = c.ready(1);
    assert!(rd.completions.is_empty(), "leases are checked on apply, not on proposal");
    assert_eq!(of_type(&rd.messages, MsgAppend).len(), 2);
    c.execute(1, rd, Write::Persist);
    let traces = c.settle();
    let done: Vec<&Trace> = traces.iter().filter(|t| !t.completions.is_empty()).collect();
    assert!(matches!(done[..], [t] if t.apply_ops > 0 && matches!(t.completions[0], (4, Err(Error::LeaseNotFound)))));
    assert_eq!(c.get(1, "k"), None);
}

#[test]
fn keep_alive_on_the_leader_renews_in_place_without_a_log_entry() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let (id, ttl) = grant(&mut c, 1);
    let ticks = ticks_of(&mut c, ttl);
    for tick in 1..=15 {
        quiet_tick(&mut c, tick);
    }
    c.peer(1).propose(Op::LeaseKeepAlive(LeaseKeepAliveRequest { id }), 8);
    let rd = c.ready(1);
    assert!(
        matches!(&rd.completions[..], [(8, Ok(Response::LeaseKeepAlive(k)))] if k.ttl == ttl && k.id == id),
        "{rd:?}"
    );
    assert!(rd.messages.is_empty() && rd.log_write.is_none() && rd.apply.is_empty(), "{rd:?}");
    // The leader's clock restarted at tick 15, as through the log.
    expires_after_renewal(&mut c, id, 15, ticks);
}
