//! Watches and leases across a 3-member cluster on RocksDB and transport-mem.

mod common;

use std::time::{Duration, Instant};

use common::{retry, Cluster, PATIENCE};
use raft_kv::{
    DeleteRangeRequest, Error, Event, PutRequest, RangeRequest, TxnRequest, WatchMessage, WatchRequest, Watcher,
};

/// (revision, key, value or "<deleted>") of each event.
type Seen = Vec<(i64, String, String)>;

fn describe(ev: &Event) -> (i64, String, String) {
    let kv = ev.kv.clone().unwrap_or_default();
    let value = if ev.is_delete() { "<deleted>".to_string() } else { String::from_utf8_lossy(&kv.value).into_owned() };
    (ev.revision(), String::from_utf8_lossy(&kv.key).into_owned(), value)
}

/// Collects events until one at `until` (or later) arrives.
fn collect_until(w: &mut Watcher, until: i64) -> Seen {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Seen::new();
    while seen.last().is_none_or(|(rev, _, _)| *rev < until) {
        assert!(Instant::now() < deadline, "watch stalled at {seen:?}");
        match w.recv_timeout(Duration::from_millis(100)) {
            Some(WatchMessage::Events { revision, events }) => {
                assert!(events.iter().all(|e| e.revision() == revision), "one revision per message");
                seen.extend(events.iter().map(describe));
            }
            Some(WatchMessage::Canceled { reason, .. }) => panic!("watch canceled: {reason}"),
            _ => {}
        }
    }
    seen
}

fn transfer(c: &Cluster, to: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let leader = c.leader();
        if leader == to {
            return;
        }
        c.node(leader).transfer_leader(to).expect("transfer");
        std::thread::sleep(Duration::from_millis(100));
        assert!(Instant::now() < deadline, "leadership did not move to {to}");
    }
}

#[test]
fn watch_from_past_revision_across_leader_change_on_any_member() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let follower = c.ids.iter().copied().find(|id| *id != leader).expect("follower");
    let n = c.node(leader).clone();
    retry(|| n.put("/w/a", "1")); // rev 2
    retry(|| n.put("/other", "x")); // rev 3, not watched
    retry(|| n.put("/w/b", "2")); // rev 4

    let mut on_follower = c.node(follower).watch(WatchRequest::prefix("/w/").start_revision(2)).expect("watch");
    let mut on_leader = c.node(leader).watch(WatchRequest::prefix("/w/").start_revision(2)).expect("watch");

    retry(|| n.delete_range(DeleteRangeRequest::key("/w/a"))); // rev 5
    transfer(&c, follower);
    let n2 = c.node(follower).clone();
    retry(|| n2.put("/w/c", "3")); // rev 6
    let txn = TxnRequest::new().and_then(PutRequest::new("/w/d", "4")).and_then(PutRequest::new("/w/e", "5"));
    retry(|| n2.txn(txn.clone())); // rev 7, two events

    let expected: Seen = vec![
        (2, "/w/a".into(), "1".into()),
        (4, "/w/b".into(), "2".into()),
        (5, "/w/a".into(), "<deleted>".into()),
        (6, "/w/c".into(), "3".into()),
        (7, "/w/d".into(), "4".into()),
        (7, "/w/e".into(), "5".into()),
    ];
    assert_eq!(collect_until(&mut on_follower, 7), expected);
    assert_eq!(collect_until(&mut on_leader, 7), expected, "a follower's watch equals the leader's");
    // Nothing more, no duplicates.
    assert!(on_follower.recv_timeout(Duration::from_millis(200)).is_none());

    c.node(follower).watch_progress(on_follower.id()).expect("progress");
    match on_follower.recv_timeout(PATIENCE) {
        Some(WatchMessage::Progress { revision }) => assert_eq!(revision, 7),
        other => panic!("expected progress, got {other:?}"),
    }
    c.node(follower).cancel_watch(on_follower.id()).expect("cancel");
    assert!(matches!(on_follower.recv_timeout(PATIENCE), Some(WatchMessage::Canceled { .. })));
}

#[test]
fn watch_with_prev_kv_and_filters() {
    let c = Cluster::start(3);
    let n = c.node(c.leader()).clone();
    let mut w = n.watch(WatchRequest { no_put: true, ..WatchRequest::key("k").with_prev_kv() }).expect("watch");
    retry(|| n.put("k", "v1"));
    retry(|| n.delete_range(DeleteRangeRequest::key("k")));
    match w.recv_timeout(PATIENCE) {
        Some(WatchMessage::Events { events, .. }) => {
            assert_eq!(events.len(), 1);
            assert!(events[0].is_delete(), "puts are filtered out");
            assert_eq!(events[0].prev_kv.as_ref().map(|kv| kv.value.clone()), Some("v1".into()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn watch_below_compact_revision_fails_with_it() {
    let c = Cluster::start(3);
    let n = c.node(c.leader()).clone();
    for i in 0..5 {
        retry(|| n.put("k", format!("{i}")));
    }
    retry(|| n.compact(4));
    c.converge(); // every member has applied the compaction
    for id in c.running() {
        let err = c.node(id).watch(WatchRequest::key("k").start_revision(2)).expect_err("compacted");
        assert_eq!(err, Error::Compacted { requested: 2, compact_revision: 4 });
        let mut ok = c.node(id).watch(WatchRequest::key("k").start_revision(4)).expect("at compact revision");
        assert_eq!(collect_until(&mut ok, 6).len(), 3);
    }
}

#[test]
fn lease_expiry_deletes_keys_on_all_members_at_one_revision() {
    let c = Cluster::start(3);
    let n = c.node(c.leader()).clone();
    let lease = retry(|| n.lease_grant(1, 0));
    assert!(lease.id > 0 && lease.ttl >= 1);
    retry(|| n.put_request(PutRequest::new("/l/a", "1").with_lease(lease.id)));
    retry(|| n.put_request(PutRequest::new("/l/b", "2").with_lease(lease.id)));
    let last_put = retry(|| n.put("/l/free", "3")).revision();
    let ttl = n.lease_time_to_live(lease.id, true).expect("ttl");
    assert_eq!(ttl.keys.len(), 2);
    let mut watchers: Vec<Watcher> = c
        .running()
        .iter()
        .map(|id| c.node(*id).watch(WatchRequest::prefix("/l/").start_revision(last_put + 1)).expect("watch"))
        .collect();
    let mut delete_revs = Vec::new();
    for w in &mut watchers {
        let seen = match w.recv_timeout(PATIENCE) {
            Some(WatchMessage::Events { revision, events }) => {
                (revision, events.iter().map(describe).collect::<Seen>())
            }
            other => panic!("expected the expiry's deletes, got {other:?}"),
        };
        assert_eq!(seen.1.len(), 2, "both keys deleted in one revision: {seen:?}");
        assert!(seen.1.iter().all(|(_, _, v)| v == "<deleted>"));
        delete_revs.push(seen.0);
    }
    assert!(delete_revs.windows(2).all(|w| w[0] == w[1]), "same revision on every member: {delete_revs:?}");
    c.converge();
    for id in c.running() {
        let r = c.node(id).range(RangeRequest::prefix("/l/")).expect("range");
        assert_eq!(r.kvs.len(), 1, "only the key without a lease is left on member {id}");
        assert_eq!(c.node(id).lease_time_to_live(lease.id, false).expect("ttl").ttl, -1);
    }
    let err = n.put_request(PutRequest::new("/l/late", "x").with_lease(lease.id)).expect_err("expired lease");
    assert_eq!(err, Error::LeaseNotFound);
}

#[test]
fn leader_change_does_not_expire_a_lease_early() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let n = c.node(leader).clone();
    let start = Instant::now();
    let lease = retry(|| n.lease_grant(6, 0));
    retry(|| n.put_request(PutRequest::new("held", "x").with_lease(lease.id)));
    std::thread::sleep(Duration::from_secs(3).saturating_sub(start.elapsed()));
    let other = c.ids.iter().copied().find(|id| *id != leader).expect("follower");
    transfer(&c, other);
    // The new leader restarted the lease's clock: past the original 6 s
    // the key must still be there.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(start.elapsed()));
    assert!(c.node(other).get("held").expect("get").is_some(), "lease expired early after a leader change");
    // Keep-alive works through any member; revoke deletes the key.
    let ka = retry(|| c.node(leader).lease_keep_alive(lease.id));
    assert_eq!(ka.ttl, 6);
    retry(|| c.node(leader).lease_revoke(lease.id));
    assert!(c.node(other).get("held").expect("get").is_none());
    assert_eq!(c.node(leader).lease_revoke(lease.id).expect_err("gone"), Error::LeaseNotFound);
}

#[test]
fn leases_survive_a_full_restart() {
    let mut c = Cluster::start(3);
    let n = c.node(c.leader()).clone();
    let lease = retry(|| n.lease_grant(600, 42));
    assert_eq!(lease.id, 42);
    retry(|| n.put_request(PutRequest::new("kept", "x").with_lease(42)));
    for id in c.ids.clone() {
        c.stop(id);
    }
    for id in c.ids.clone() {
        c.restart(id);
    }
    let leader = c.leader();
    let ttl = retry(|| c.node(leader).lease_time_to_live(42, true));
    assert_eq!(ttl.granted_ttl, 600);
    assert_eq!(ttl.keys, vec![bytes::Bytes::from("kept")]);
    assert_eq!(c.node(leader).leases().expect("leases"), vec![42]);
    retry(|| c.node(leader).lease_revoke(42));
    assert!(c.node(leader).get("kept").expect("get").is_none());
}

/// A watcher whose consumer stops reading falls behind without holding up
/// apply or another watcher, then catches up from history with every
/// revision in order; one whose missed history is compacted meanwhile is
/// cancelled with the compact revision.
#[test]
fn slow_watcher_catches_up_from_history_or_is_cancelled_when_compacted() {
    const BUFFER: usize = 16;
    const PUTS: i64 = 200;
    let c = Cluster::start_with(1, |cfg| {
        let mut cfg = cfg;
        cfg.watch_buffer = BUFFER;
        cfg
    });
    let n = c.node(c.leader()).clone();
    let mut slow = n.watch(WatchRequest::prefix("/s/")).expect("watch");
    let mut doomed = n.watch(WatchRequest::prefix("/s/")).expect("watch");
    let mut live = n.watch(WatchRequest::prefix("/s/")).expect("watch");
    let first = n.status().expect("status").state.revision + 1;
    let mut seen_live = Seen::new();
    for i in 0..PUTS {
        // Puts never wait for the stalled watchers.
        retry(|| n.put(format!("/s/{}", i % 7), i.to_string()));
        // The live watcher keeps up and gets every revision as it happens.
        seen_live.extend(collect_until(&mut live, first + i));
    }
    let last = first + PUTS - 1;
    let revisions: Vec<i64> = seen_live.iter().map(|(r, _, _)| *r).collect();
    assert_eq!(revisions, (first..=last).collect::<Vec<_>>(), "live watcher saw every revision once");

    // The stalled watcher reads everything now: it caught up from history.
    let seen_slow = collect_until(&mut slow, last);
    assert_eq!(seen_slow, seen_live, "the slow watcher got the same events, in order, no gap or duplicate");

    // Compact past what the other stalled watcher has not read: it held at
    // most BUFFER messages, the rest of its history is gone.
    n.compact(last).expect("compact");
    retry(|| n.put("/s/after", "x"));
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    let compact_revision = loop {
        assert!(Instant::now() < deadline, "no cancel after {got:?}");
        match doomed.recv_timeout(Duration::from_millis(100)) {
            Some(WatchMessage::Events { revision, .. }) => got.push(revision),
            Some(WatchMessage::Canceled { compact_revision, .. }) => break compact_revision,
            _ => {}
        }
    };
    assert_eq!(compact_revision, last, "cancelled with the compact revision");
    assert!(got.len() <= BUFFER, "only its buffer was delivered: {got:?}");
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "what it got has no gap: {got:?}");
    assert!(doomed.recv_timeout(Duration::from_millis(200)).is_none(), "nothing after the cancel");
}

/// The async API: a watch is a `futures` stream, and leader changes are
/// observed from the state stream without polling.
#[test]
fn async_watch_stream_and_state_changes() {
    use futures_util::StreamExt;
    let c = Cluster::start(3);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let leader = c.leader();
    let follower = c.ids.iter().copied().find(|id| *id != leader).expect("follower");
    let a = c.node(follower).to_async();
    rt.block_on(async {
        let mut w = a.watch(WatchRequest::key("/async")).await.expect("watch");
        let mut states = a.state_changes();
        let first = states.next().await.expect("current state");
        assert_eq!(first.leader, leader);
        let put = a.put("/async", "1").await.expect("put through a follower");
        match tokio::time::timeout(PATIENCE, w.next()).await {
            Ok(Some(WatchMessage::Events { revision, events })) => {
                assert_eq!(revision, put.revision());
                assert_eq!(&events[0].kv.as_ref().expect("kv").value[..], b"1");
            }
            other => panic!("{other:?}"),
        }
        // Move leadership to the follower; its state stream reports it.
        c.node(leader).to_async().move_leader(follower).await.expect("move leader");
        let became = tokio::time::timeout(PATIENCE, async {
            while let Some(st) = states.next().await {
                if st.leader == follower {
                    return st;
                }
            }
            panic!("state stream ended");
        })
        .await
        .expect("leader change observed");
        assert_eq!(became.role, raft_kv::Role::Leader);
        // Dropping the stream cancels the watch on the member.
        drop(w);
    });
}

/// A watch whose member stops ends with a `Canceled`, so its reader knows
/// to watch again elsewhere.
#[test]
fn watch_ends_when_its_member_stops() {
    let mut c = Cluster::start(1);
    let id = c.leader();
    let mut w = c.node(id).watch(WatchRequest::key("/k")).expect("watch");
    c.stop(id);
    match w.recv_timeout(PATIENCE) {
        Some(WatchMessage::Canceled { reason, .. }) => assert!(reason.contains("stopped"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(w.recv_timeout(Duration::from_millis(50)).is_none(), "nothing after the end");
}
