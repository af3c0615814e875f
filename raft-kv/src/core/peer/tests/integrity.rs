//! Corrupt reads stop the member: a read that meets a checksum mismatch is
//! refused, and the peer's next Ready fails with the corruption, whichever
//! thread met it (see `crate::core::integrity`) — also when raft-rs itself
//! read the corrupt log entry and panicked on it.

use super::reads::with_k;
use super::*;
use crate::Error;

#[test]
fn a_refused_read_off_the_peer_thread_fails_the_next_ready() {
    let mut c = with_k();
    // Pick 1 << 24: an MVCC version (the only key's newest).
    assert!(c.engine(2).corrupt_read(1 << 24));
    c.peer(2).read(RangeRequest::key("k").serializable(), 9);
    let mut rd = c.ready(2);
    let job = rd.ranges.pop().expect("a range job");
    assert!(!c.peer(2).has_ready() || c.peer(2).ready().is_ok(), "nothing failed before the read ran");
    let (_, res) = job.run();
    assert!(matches!(res, Err(Error::Corruption(_))), "the wrong bytes are refused: {res:?}");
    assert!(c.peer(2).has_ready(), "the failure wakes the peer");
    assert!(matches!(c.peer(2).ready(), Err(Error::Corruption(_))));
    assert!(matches!(c.peer(2).ready(), Err(Error::Corruption(_))), "and every Ready after it");
}

#[test]
fn a_member_that_installed_a_snapshot_still_stops_on_a_corrupt_read() {
    // Compacting after 4 entries: a member cut off for 8 puts catches up
    // by a snapshot, which reopens its state machine.
    let mut c = Cluster::with(3, |cfg| {
        cfg.snapshot_entries = 4;
        cfg.log_keep_entries = 1;
    });
    c.elect(1);
    c.isolated.insert(3);
    for i in 0..8 {
        c.put(1, &format!("k{i}"), "v", 100 + i).expect("put");
    }
    c.isolated.clear();
    for _ in 0..10 {
        c.peer(1).tick();
        c.settle();
    }
    assert!(c.peer(3).status().first_index > 1, "member 3 caught up by a snapshot");
    assert_eq!(c.get(3, "k7").as_deref(), Some(&b"v"[..]), "member 3 caught up");
    assert!(c.engine(3).corrupt_read(1 << 24));
    let res = c.peer(3).mvcc().range(&RangeRequest::prefix("k"));
    assert!(matches!(res, Err(Error::Corruption(_))), "{res:?}");
    assert!(matches!(c.peer(3).ready(), Err(Error::Corruption(_))), "the reopened store reports to the peer");
}

#[test]
fn a_corrupt_log_entry_raft_reads_is_an_error_not_a_panic() {
    let mut c = Cluster::with(3, |cfg| cfg.log_cache_entries = 1);
    c.elect(1);
    c.isolated.insert(3);
    for i in 0..4 {
        c.put(1, "k", &format!("v{i}"), 100 + i).expect("put");
    }
    let st = c.peer(1).status();
    // Corrupt the leader's second-newest entry (pick < 1 << 24: a log
    // entry; its position among the stored entries).
    assert!(c.engine(1).corrupt_read(st.last_index - 1 - st.first_index));
    c.isolated.clear();
    // Member 3 rejects the next append; the leader reads the entries it
    // missed from its engine (they left the one-entry cache), and raft-rs
    // panics on the storage error. The peer turns that into the error.
    let mut failed = None;
    for _ in 0..20 {
        c.peer(1).tick();
        let ids = [1, 2, 3];
        for id in ids {
            if c.peer(id).has_ready() {
                match c.peer(id).ready() {
                    Ok(rd) => {
                        c.execute(id, rd, Write::Persist);
                    }
                    Err(e) => {
                        assert_eq!(id, 1, "only the leader reads the corrupt entry: {e}");
                        failed = Some(e);
                    }
                }
            }
        }
        if failed.is_some() {
            break;
        }
        let live: Vec<Message> = std::mem::take(&mut c.net);
        for m in live {
            let to = m.to;
            if let Err(e) = c.peer(to).step(m) {
                assert!(matches!(e, Error::Corruption(_)), "step: {e}");
                failed = Some(e);
            }
        }
        if failed.is_some() {
            break;
        }
    }
    assert!(matches!(failed, Some(Error::Corruption(_))), "the leader stops on the corrupt entry: {failed:?}");
    assert!(matches!(c.peer(1).ready(), Err(Error::Corruption(_))));
}
