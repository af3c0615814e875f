//! Watch history read off the peer's thread: windows of history go out as
//! jobs in a Ready, come back with `Peer::history_read`, and the watcher
//! joins the live events with no gap and no duplicate, however many writes
//! apply while a window is being read.

use super::*;
use crate::core::watch::{WatchMessage, WatchRequest, Watcher};

/// Every revision `w` has received so far, in order.
fn revisions(w: &mut Watcher) -> Vec<i64> {
    let mut out = Vec::new();
    while let Some(msg) = w.try_recv() {
        match msg {
            WatchMessage::Events { revision, .. } => out.push(revision),
            WatchMessage::Canceled { reason, .. } => panic!("cancelled: {reason}"),
            _ => {}
        }
    }
    out
}

/// A single member (its own quorum) with a small watch buffer.
fn single(buffer: usize) -> Cluster {
    let mut c = Cluster::with(1, |cfg| cfg.watch_buffer = buffer);
    c.elect(1);
    c
}

#[test]
fn history_is_read_in_windows_and_hands_over_to_live_events() {
    let mut c = single(8);
    for i in 0..20 {
        c.put(1, &format!("k{}", i % 3), &i.to_string(), i).expect("put");
    }
    let first = 2; // the first put's revision
    let current = c.peer(1).mvcc().revision();
    c.hold_history = true;
    let mut w = c.peer(1).watch(WatchRequest::prefix("k").start_revision(first)).expect("watch");
    // The first window is asked for at once, and nothing is read on the
    // peer's thread.
    let mut rd = c.ready(1);
    assert_eq!(rd.histories.len(), 1, "{rd:?}");
    let job = rd.histories.pop().expect("window");
    c.execute(1, rd, Write::Persist);
    assert!(revisions(&mut w).is_empty());

    // Writes applied while the window is read pass the watcher by...
    for i in 20..25 {
        c.put(1, "k0", &i.to_string(), 100 + i).expect("put");
    }
    assert!(revisions(&mut w).is_empty(), "live events reached an unsynced watcher");
    // ...and the window holds at most the buffer's room of revisions.
    c.peer(1).history_read(job.run());
    let got = revisions(&mut w);
    assert_eq!(got, (first..first + 8).collect::<Vec<_>>());

    // The following windows (asked for on ticks, once the consumer has
    // drained), then live: every revision exactly once.
    let now = c.peer(1).mvcc().revision();
    assert!(now > current);
    let mut all = got;
    for _ in 0..50 {
        if all.last() == Some(&now) {
            break;
        }
        c.peer(1).tick();
        let _ = c.settle();
        for job in c.histories.remove(&1).unwrap_or_default() {
            c.peer(1).history_read(job.run());
        }
        all.extend(revisions(&mut w));
    }
    assert_eq!(all, (first..=now).collect::<Vec<_>>(), "history then live, no gap or duplicate");
    c.hold_history = false;
    c.put(1, "k1", "live", 999).expect("put");
    assert_eq!(revisions(&mut w), vec![now + 1], "synced: the next write arrives live");
}

#[test]
fn a_refused_window_is_asked_for_again() {
    let mut c = single(8);
    for i in 0..5 {
        c.put(1, "k", &i.to_string(), i).expect("put");
    }
    c.hold_history = true;
    let mut w = c.peer(1).watch(WatchRequest::key("k").start_revision(2)).expect("watch");
    let mut rd = c.ready(1);
    let job = rd.histories.pop().expect("window");
    c.execute(1, rd, Write::Persist);
    // The readers were saturated: nothing delivered, asked for again on a tick.
    c.peer(1).history_read(job.refuse());
    assert!(revisions(&mut w).is_empty());
    c.peer(1).tick();
    let mut rd = c.ready(1);
    let job = rd.histories.pop().expect("window asked for again");
    c.execute(1, rd, Write::Persist);
    c.peer(1).history_read(job.run());
    assert_eq!(revisions(&mut w), vec![2, 3, 4, 5, 6]);
}

#[test]
fn a_window_of_compacted_history_cancels_the_watcher_with_the_compact_revision() {
    let mut c = single(8);
    for i in 0..20 {
        c.put(1, "k", &i.to_string(), i).expect("put");
    }
    c.hold_history = true;
    let mut w = c.peer(1).watch(WatchRequest::key("k").start_revision(3)).expect("watch");
    let mut rd = c.ready(1);
    let first = rd.histories.pop().expect("window");
    c.execute(1, rd, Write::Persist);
    // Compacted while the first window is read: that window's snapshot
    // predates the compaction and is delivered whole...
    c.peer(1).propose(Op::Compact(crate::api::CompactionRequest { revision: 15, physical: false }), 50);
    let _ = c.settle();
    c.peer(1).history_read(first.run());
    assert_eq!(revisions(&mut w), (3..11).collect::<Vec<_>>());
    // ...but the next one, taken after it, cancels as etcd does.
    c.peer(1).tick();
    let mut rd = c.ready(1);
    let next = rd.histories.pop().expect("next window");
    c.execute(1, rd, Write::Persist);
    c.peer(1).history_read(next.run());
    match w.try_recv() {
        Some(WatchMessage::Canceled { compact_revision, .. }) => assert_eq!(compact_revision, 15),
        other => panic!("expected a cancel, got {other:?}"),
    }
}
