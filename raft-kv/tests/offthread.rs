//! Reads off the node thread, on real RocksDB: a range over a large store
//! runs on a reader while the node thread goes on acknowledging writes, and
//! a watch from a past revision reads its history in windows and then
//! joins the live events with no gap and no duplicate.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{retry, Cluster, PATIENCE};
use raft_kv::{PutRequest, RangeRequest, Response, TxnRequest, WatchMessage, WatchRequest};

/// Writes `n` keys `/big/NNNNNNN` in transactions of `per_txn` puts.
fn load(c: &Cluster, n: usize, per_txn: usize) {
    let node = c.node(c.leader());
    for chunk in (0..n).collect::<Vec<_>>().chunks(per_txn) {
        let txn = chunk
            .iter()
            .fold(TxnRequest::new(), |t, i| t.and_then(PutRequest::new(format!("/big/{i:07}"), format!("value-{i}"))));
        retry(|| node.txn(txn.clone()));
    }
}

#[test]
fn a_large_range_runs_off_the_node_thread_while_puts_are_acknowledged() {
    const KEYS: usize = 200_000;
    let c = Cluster::start_with(1, |mut cfg| {
        cfg.max_txn_ops = 2_000;
        cfg
    });
    load(&c, KEYS, 2_000);
    let node = c.node(c.leader()).clone();
    let served_at = node.status().expect("status").state.revision;

    // A full serializable range (every value) and a full count, in flight
    // together on the readers.
    let (tx, done) = mpsc::channel();
    let finished = Arc::new(AtomicBool::new(false));
    for count_only in [false, true] {
        let (tx, finished) = (tx.clone(), Arc::clone(&finished));
        let mut req = RangeRequest::prefix("/big/").serializable();
        req.count_only = count_only;
        node.range_with(
            req,
            Box::new(move |r| {
                finished.store(true, Ordering::SeqCst);
                let _ = tx.send((count_only, r));
            }),
        );
    }
    // Puts sent after the ranges are acknowledged while they are read: the
    // node thread is not the one reading.
    let mut acked_meanwhile = 0;
    let mut put_revisions = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !finished.load(Ordering::SeqCst) && Instant::now() < deadline {
        let r = retry(|| node.put("/live/k", "v"));
        put_revisions.push(r.header.map_or(0, |h| h.revision));
        if !finished.load(Ordering::SeqCst) {
            acked_meanwhile += 1;
        }
    }
    assert!(acked_meanwhile > 0, "no put was acknowledged while the ranges were read");
    for _ in 0..2 {
        let (count_only, r) = done.recv_timeout(PATIENCE).expect("range answered");
        let Ok(Response::Range(r)) = r else { panic!("range failed: {r:?}") };
        assert_eq!(r.count, KEYS as i64);
        assert_eq!(r.kvs.len(), if count_only { 0 } else { KEYS });
        // Each range reads the snapshot taken when it was served: none of
        // the puts acknowledged meanwhile is in it.
        assert_eq!(r.header.map(|h| h.revision), Some(served_at));
        if !count_only {
            assert!(r.kvs.windows(2).all(|w| w[0].key < w[1].key), "in key order");
            assert_eq!(&r.kvs[KEYS - 1].value[..], format!("value-{}", KEYS - 1).as_bytes());
        }
    }
    assert!(put_revisions.windows(2).all(|w| w[0] < w[1]));
    assert!(put_revisions.first().is_some_and(|r| *r > served_at));
}

#[test]
fn a_watch_from_a_past_revision_catches_up_in_windows_then_takes_live_events() {
    const BUFFER: usize = 32;
    const PAST: i64 = 2_000;
    const LIVE: i64 = 300;
    let c = Cluster::start_with(3, |mut cfg| {
        cfg.watch_buffer = BUFFER;
        cfg
    });
    let leader = c.leader();
    let node = c.node(leader).clone();
    let first = node.status().expect("status").state.revision + 1;
    for i in 0..PAST {
        retry(|| node.put(format!("/w/{}", i % 13), i.to_string()));
    }
    c.converge();
    // Watch on a follower from the first revision: ~60 windows of history,
    // while live writes keep coming.
    let follower = c.running().into_iter().find(|id| *id != leader).expect("a follower");
    let mut w = c.node(follower).watch(WatchRequest::prefix("/w/").start_revision(first)).expect("watch");
    let writer = {
        let node = node.clone();
        std::thread::spawn(move || {
            for i in PAST..PAST + LIVE {
                retry(|| node.put(format!("/w/{}", i % 13), i.to_string()));
            }
        })
    };
    let last = first + PAST + LIVE - 1;
    let mut seen: Vec<(i64, String)> = Vec::new();
    let deadline = Instant::now() + PATIENCE * 2;
    while seen.last().is_none_or(|(rev, _)| *rev < last) {
        assert!(Instant::now() < deadline, "watch stalled after {:?}", seen.last());
        match w.recv_timeout(Duration::from_millis(100)) {
            Some(WatchMessage::Events { revision, events }) => {
                assert_eq!(events.len(), 1, "one put per revision");
                let value = String::from_utf8_lossy(&events[0].kv.clone().unwrap_or_default().value).into_owned();
                seen.push((revision, value));
            }
            Some(WatchMessage::Canceled { reason, .. }) => panic!("watch cancelled: {reason}"),
            _ => {}
        }
    }
    writer.join().expect("writer");
    let expected: Vec<(i64, String)> = (0..PAST + LIVE).map(|i| (first + i, i.to_string())).collect();
    assert_eq!(seen.len(), expected.len(), "no gap or duplicate");
    assert!(seen == expected, "every revision once, in order, history then live");
    assert!(w.recv_timeout(Duration::from_millis(200)).is_none(), "nothing after the last write");
}

#[test]
fn serializable_reads_see_what_their_member_acknowledged_and_hold_no_store_open_after_a_stop() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let follower = *c.ids.iter().find(|id| **id != leader).expect("a follower");
    // Served without the node thread, from the view the node thread
    // published before acknowledging: a write this member acknowledged is
    // in the very next serializable read here, a point read (served on
    // this thread) and a prefix (served by a reader) alike.
    for (i, id) in [leader, follower].into_iter().cycle().take(60).enumerate() {
        let node = c.node(id);
        let put = retry(|| node.put("/ryw/k", format!("v{i}")));
        let acked = put.header.map_or(0, |h| h.revision);
        for req in [RangeRequest::key("/ryw/k"), RangeRequest::prefix("/ryw/")] {
            let r = node.range(req.serializable()).expect("serializable range");
            assert_eq!(r.kvs.len(), 1, "member {id}, write {i}");
            assert_eq!(&r.kvs[0].value[..], format!("v{i}").as_bytes(), "member {id}, write {i}");
            assert!(r.header.map_or(0, |h| h.revision) >= acked);
        }
    }
    // An invalid request is refused by the view as the node thread would.
    assert!(c.node(follower).range(RangeRequest::key("").serializable()).is_err());
    // A stopped member answers no serializable read and keeps no engine
    // snapshot: its store reopens at once, and serves what it had applied.
    let stopped = c.node(follower).clone();
    c.stop(follower);
    assert!(stopped.range(RangeRequest::key("/ryw/k").serializable()).is_err());
    c.restart(follower);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = c.node(follower).range(RangeRequest::key("/ryw/k").serializable()).expect("range after restart");
        if r.kvs.first().is_some_and(|kv| &kv.value[..] == b"v59") {
            break;
        }
        assert!(Instant::now() < deadline, "restarted member never caught up: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
