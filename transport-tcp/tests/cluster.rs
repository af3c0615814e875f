//! Three raft-kv members over real loopback sockets.

mod common;

use std::io::Write;

use common::*;
use raft_kv::RangeRequest;
use transport_tcp::frame::{encode_message, FRAME_VERSION};
use transport_tcp::handshake::{Handshake, Lane, Verdict};

#[test]
fn three_members_elect_a_leader_and_replicate() {
    let members = cluster();
    let leader = wait_leader(&members);
    assert!((1..=3).contains(&leader));
    for (i, m) in members.iter().enumerate() {
        put(m, format!("k{i}"), format!("v{i}")).expect("put");
    }
    for m in &members {
        let r = node(m).range(RangeRequest::prefix("k")).expect("range");
        assert_eq!(r.kvs.len(), 3, "member {}", m.id);
        assert_eq!(r.kvs[2].value, "v2");
    }
    for m in &members {
        let t = m.handle.metrics();
        assert!(t.messages_sent > 0 && t.messages_received > 0 && t.connects >= 1, "{t:?}");
        assert_eq!((t.handshakes_rejected, t.frames_rejected), (0, 0));
        let per = m.handle.peer_metrics();
        assert_eq!(per.keys().copied().filter(|id| *id != m.id).count(), 2, "{per:?}");
    }
}

#[test]
fn bad_bytes_close_only_their_connection() {
    let members = cluster();
    wait_leader(&members);
    let target = &members[0];
    let before = target.handle.metrics();

    // Not a handshake at all.
    let mut garbage = std::net::TcpStream::connect(target.addr).expect("connect");
    garbage.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    garbage.write_all(&[0xAB; 64]).expect("write");
    assert!(closed_by_peer(&mut garbage));

    // A frame header announcing more than the 64 MiB limit.
    let mut oversized = raw_accepted(target.addr, 9, target.id);
    let mut header = (65u32 << 20).to_be_bytes().to_vec();
    header.push(FRAME_VERSION);
    oversized.write_all(&header).expect("write");
    assert!(closed_by_peer(&mut oversized));

    // A frame whose body is not a raft message.
    let mut malformed = raw_accepted(target.addr, 9, target.id);
    malformed.write_all(&[0, 0, 0, 4, FRAME_VERSION, 0xFF, 0xFF, 0xFF, 0xFF]).expect("write");
    assert!(closed_by_peer(&mut malformed));

    // A well-formed message that does not come from the handshake's sender.
    let mut spoofed = raw_accepted(target.addr, 9, target.id);
    let mut frame = Vec::new();
    encode_message(&heartbeat(2, target.id, 1), 1 << 20, &mut frame).expect("encode");
    spoofed.write_all(&frame).expect("write");
    assert!(closed_by_peer(&mut spoofed));

    let after = target.handle.metrics();
    assert_eq!(after.handshakes_rejected - before.handshakes_rejected, 1);
    assert_eq!(after.frames_rejected - before.frames_rejected, 3);
    // The member and its real peer connections keep working.
    put(target, "after", "garbage").expect("put after bad input");
    for m in &members {
        assert!(node(m).get("after").expect("get").is_some());
    }
}

#[test]
fn wrong_cluster_or_receiver_is_refused_by_a_member() {
    let members = cluster();
    wait_leader(&members);
    let target = &members[1];
    let received = target.handle.metrics().messages_received;
    let (mut s, v) = raw_handshake(target.addr, Handshake::new(Lane::Raft, CLUSTER + 1, 9, target.id));
    assert_eq!(v, Verdict::WrongCluster);
    assert!(closed_by_peer(&mut s));
    let (mut s, v) = raw_handshake(target.addr, Handshake::new(Lane::Raft, CLUSTER, 9, target.id + 10));
    assert_eq!(v, Verdict::WrongReceiver);
    assert!(closed_by_peer(&mut s));
    assert_eq!(target.handle.metrics().handshakes_rejected, 2);
    assert!(target.handle.peer_metrics().get(&9).is_none_or(|m| m.messages_received == 0));
    assert!(target.handle.metrics().messages_received >= received);
}

#[test]
fn a_member_that_was_down_reconnects_and_catches_up() {
    let mut members = cluster();
    wait_leader(&members);
    put(&members[0], "before", "1").expect("put");

    // Member 3 goes away; the node thread drops its transport on shutdown.
    let down = members[2].node.take().expect("running");
    down.shutdown();
    assert!(members[2].handle.is_shutdown());
    let up = &members[..2];
    wait_leader(up);
    // Enough writes to compact the log: member 3 will need a snapshot.
    for i in 0..60 {
        put(&members[i % 2], format!("while-down-{i:03}"), vec![b'x'; 1024]).expect("put while 3 is down");
    }
    assert!(eventually(WAIT, || {
        up.iter().any(|m| {
            let p = m.handle.peer_metrics().get(&3).copied().unwrap_or_default();
            p.messages_dropped > 0 && p.connect_failures > 0
        })
    }));

    // It comes back on the same data dir and port.
    let peers = [(1, members[0].addr), (2, members[1].addr)];
    let (node3, handle3) = start_node(3, members[2].dir.path(), members[2].addr, &peers);
    members[2].node = Some(node3);
    members[2].handle = handle3;
    assert!(eventually(WAIT, || {
        node(&members[2]).range(RangeRequest::prefix("while-down-").serializable()).is_ok_and(|r| r.kvs.len() == 60)
    }));
    assert!(members[..2].iter().any(|m| m.handle.peer_metrics()[&3].reconnects >= 1));
    put(&members[2], "after", "back").expect("put through the returned member");
}
