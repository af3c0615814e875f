//! Transports on their own (no running node behind the mailbox) and raw
//! peers played by the test.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use raft::eraftpb::MessageType;
use raft_kv::{Config, Node, NodeBuilder, RaftMessage, Transport};
use transport_tcp::frame::FrameDecoder;
use transport_tcp::handshake::{Handshake, Lane, Verdict, HANDSHAKE_LEN};
use transport_tcp::{TcpConfig, TcpTransport, TransportError};

/// A builder that is never started: its mailbox accepts deliveries.
fn idle_builder(id: u64) -> NodeBuilder<()> {
    Node::builder(Config::new(id))
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn snapshot_message(from: u64, to: u64, bytes: usize) -> RaftMessage {
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = from;
    m.to = to;
    m.term = 1;
    m.mut_snapshot().mut_metadata().index = 7;
    m.mut_snapshot().data = vec![0x5A; bytes].into();
    m
}

#[test]
fn a_transport_of_another_cluster_is_refused() {
    let (ba, bb) = (idle_builder(1), idle_builder(2));
    let b = TcpTransport::start(tcp_config(2, local()), bb.mailbox()).expect("start b");
    let other = TcpConfig::new(1, CLUSTER + 1, local()).backoff(Duration::from_millis(10), Duration::from_millis(50));
    let mut a = TcpTransport::start(other.peer(2, b.local_addr().to_string()), ba.mailbox()).expect("start a");
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 2, 1)]);
        a.metrics().connect_failures >= 2 && b.metrics().handshakes_rejected >= 2
    }));
    assert_eq!(b.metrics().messages_received, 0);
    assert_eq!(a.metrics().messages_sent, 0);
    assert!(a.metrics().messages_dropped >= 2);
    assert_eq!(a.peer_metrics()[&2].connects, 0);
}

#[test]
fn a_stale_address_reaching_another_member_is_refused_then_updated() {
    let (ba, bb, bc) = (idle_builder(1), idle_builder(2), idle_builder(3));
    let b = TcpTransport::start(tcp_config(2, local()), bb.mailbox()).expect("start b");
    let c = TcpTransport::start(tcp_config(3, local()), bc.mailbox()).expect("start c");
    // Member 1 believes member 3 lives at member 2's address.
    let mut a =
        TcpTransport::start(tcp_config(1, local()).peer(3, b.local_addr().to_string()), ba.mailbox()).expect("start a");
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 3, 1)]);
        b.metrics().handshakes_rejected >= 1
    }));
    assert_eq!(b.metrics().messages_received, 0);
    // The address book is fixed at runtime, through a handle.
    let handle = a.handle();
    handle.update_peer(3, &format!("http://{}/", c.local_addr())).expect("update");
    assert_eq!(handle.peers()[&3], c.local_addr().to_string());
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 3, 1)]);
        c.metrics().messages_received >= 1
    }));
    assert_eq!(b.metrics().messages_received, 0);
    assert!(handle.remove_peer(3));
    assert!(!handle.remove_peer(3));
    // A send to a removed peer is dropped and counted. (Heartbeats still
    // queued for the removed peer's writer may be counted as dropped too,
    // concurrently, so the count grows by at least one.)
    let dropped = a.metrics().messages_dropped;
    a.send(vec![heartbeat(1, 3, 1)]);
    assert!(a.metrics().messages_dropped > dropped);
    assert!(matches!(handle.add_peer(4, "no port"), Err(TransportError::InvalidAddress(_))));
}

/// Member 1's transport with member 2 at `listener` (played by the test),
/// and the builder whose mailbox it delivers into.
fn member_1_dialing(listener: &TcpListener) -> (TcpTransport, NodeBuilder<()>) {
    let b = idle_builder(1);
    let cfg = tcp_config(1, local()).peer(2, listener.local_addr().expect("addr").to_string());
    (TcpTransport::start(cfg, b.mailbox()).expect("start member 1"), b)
}

/// Accepts one connection as member 2 and answers its handshake.
fn accept_lane(listener: &TcpListener) -> (TcpStream, Handshake) {
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut hs = [0u8; HANDSHAKE_LEN];
    s.read_exact(&mut hs).expect("handshake");
    let hs = Handshake::decode(&hs).expect("decode");
    assert_eq!(hs.check(CLUSTER, 2), Verdict::Accepted);
    s.write_all(&Verdict::Accepted.reply()).expect("reply");
    (s, hs)
}

#[test]
fn heartbeats_flow_while_a_large_snapshot_is_in_flight() {
    const BIG: usize = 24 << 20;
    let listener = TcpListener::bind(local()).expect("bind");
    let (mut a, _ba) = member_1_dialing(&listener);
    a.send(vec![snapshot_message(1, 2, BIG), heartbeat(1, 2, 1)]);
    let (first, hs1) = accept_lane(&listener);
    let (second, hs2) = accept_lane(&listener);
    let (mut raft, mut snap) = if hs1.lane == Lane::Raft { (first, second) } else { (second, first) };
    assert_ne!(hs1.lane, hs2.lane);

    // The snapshot connection is not read at all; heartbeats still arrive.
    let mut dec = FrameDecoder::new(64 << 20);
    let mut heartbeats = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + WAIT;
    while heartbeats < 50 && Instant::now() < deadline {
        a.send(vec![heartbeat(1, 2, 1)]);
        let n = raft.read(&mut buf).expect("read raft lane");
        assert!(n > 0, "raft lane closed");
        dec.extend(&buf[..n]);
        while let Some(m) = dec.next_message().expect("frame") {
            assert_eq!(m.get_msg_type(), MessageType::MsgHeartbeat);
            heartbeats += 1;
        }
    }
    assert!(heartbeats >= 50, "only {heartbeats} heartbeats arrived");

    // Now the snapshot is read: it arrives whole.
    let mut dec = FrameDecoder::new(64 << 20);
    let got = loop {
        let n = snap.read(&mut buf).expect("read snapshot lane");
        assert!(n > 0, "snapshot lane closed early");
        dec.extend(&buf[..n]);
        if let Some(m) = dec.next_message().expect("frame") {
            break m;
        }
    };
    assert_eq!(got.get_msg_type(), MessageType::MsgSnapshot);
    assert_eq!(got.get_snapshot().data.len(), BIG);
    assert!(eventually(WAIT, || a.metrics().messages_sent >= 51));
}

/// An append of one entry of `payload` bytes, told apart by `index`.
fn append(from: u64, to: u64, index: u64, payload: usize) -> RaftMessage {
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = from;
    m.to = to;
    m.term = 1;
    m.index = index;
    m.mut_entries().push(raft::eraftpb::Entry {
        index: index + 1,
        term: 1,
        data: vec![3; payload].into(),
        ..Default::default()
    });
    m
}

/// Senders write to an idle raft lane themselves (link.rs); a peer that
/// stops reading fills the socket, the writer finishes the frame a sender
/// started and drains the queue behind it. Every message arrives whole and
/// in order, and the lane goes back to direct writes once it is read.
#[test]
fn a_raft_lane_to_a_slow_reader_keeps_every_message_in_order() {
    const PAYLOAD: usize = 32 << 10;
    let listener = TcpListener::bind(local()).expect("bind");
    let (mut a, _ba) = member_1_dialing(&listener);
    // The first message dials (it goes through the queue: no connection yet).
    a.send(vec![append(1, 2, 0, 10)]);
    let (mut raft, hs) = accept_lane(&listener);
    assert_eq!(hs.lane, Lane::Raft);
    let mut dec = FrameDecoder::new(64 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = 0u64;
    let mut read_until = |raft: &mut TcpStream, n: u64| {
        while next < n {
            while let Some(m) = dec.next_message().expect("frame") {
                assert_eq!(m.index, next, "out of order");
                assert!(m.index == 0 || m.get_entries()[0].data.len() == PAYLOAD);
                next += 1;
            }
            if next == n {
                break;
            }
            let got = raft.read(&mut buf).expect("read raft lane");
            assert!(got > 0, "raft lane closed after {next} messages");
            dec.extend(&buf[..got]);
        }
    };
    read_until(&mut raft, 1);
    // 1,000 × 32 KiB, sent while the peer first reads nothing, then reads
    // slowly: the socket fills and drains while messages keep coming.
    let sender = std::thread::spawn(move || {
        for i in 1..=1_000 {
            a.send(vec![append(1, 2, i, PAYLOAD)]);
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        a
    });
    std::thread::sleep(Duration::from_millis(50));
    for n in (2..=1_001).step_by(5) {
        read_until(&mut raft, n);
        std::thread::sleep(Duration::from_micros(300));
    }
    read_until(&mut raft, 1_001);
    let mut a = sender.join().expect("sender");
    // Read as they come: back to one message at a time.
    for i in 1_001..=1_100 {
        a.send(vec![append(1, 2, i, PAYLOAD)]);
        read_until(&mut raft, i + 1);
    }
    assert_eq!(a.metrics().messages_dropped, 0);
    assert_eq!(a.metrics().messages_sent, 1_101);
}

#[test]
fn a_large_message_is_delivered_between_transports() {
    let (ba, bb) = (idle_builder(1), idle_builder(2));
    let b = TcpTransport::start(tcp_config(2, local()), bb.mailbox()).expect("start b");
    let mut a =
        TcpTransport::start(tcp_config(1, local()).peer(2, b.local_addr().to_string()), ba.mailbox()).expect("start a");
    a.send(vec![snapshot_message(1, 2, 8 << 20)]);
    for _ in 0..10 {
        a.send(vec![heartbeat(1, 2, 1)]);
    }
    assert!(eventually(WAIT, || b.metrics().messages_received == 11));
    assert!(b.metrics().bytes_received > 8 << 20);
    assert_eq!(b.peer_metrics()[&1].messages_received, 11);
}

#[test]
fn a_message_over_the_frame_limit_is_dropped_by_the_sender() {
    let (ba, bb) = (idle_builder(1), idle_builder(2));
    let b = TcpTransport::start(tcp_config(2, local()), bb.mailbox()).expect("start b");
    let cfg = tcp_config(1, local()).max_frame_bytes(1 << 20).peer(2, b.local_addr().to_string());
    let mut a = TcpTransport::start(cfg, ba.mailbox()).expect("start a");
    a.send(vec![snapshot_message(1, 2, 2 << 20)]);
    a.send(vec![heartbeat(1, 2, 1)]);
    assert!(eventually(WAIT, || a.metrics().messages_dropped == 1 && b.metrics().messages_received == 1));
    assert_eq!(b.metrics().frames_rejected, 0);
}

#[test]
fn a_full_queue_drops_instead_of_blocking() {
    let ba = idle_builder(1);
    // A peer that accepts connections but never answers the handshake.
    let silent = TcpListener::bind(local()).expect("bind");
    let mut cfg = tcp_config(1, local()).peer(2, silent.local_addr().expect("addr").to_string());
    cfg.queue_capacity = 8;
    cfg.handshake_timeout = Duration::from_secs(5);
    let mut a = TcpTransport::start(cfg, ba.mailbox()).expect("start a");
    let started = Instant::now();
    for _ in 0..1_000 {
        a.send(vec![heartbeat(1, 2, 1)]);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "send blocked");
    assert!(a.metrics().messages_dropped >= 1_000 - 8 - 1);
}

#[test]
fn shutdown_is_bounded_and_final() {
    let ba = idle_builder(1);
    let silent = TcpListener::bind(local()).expect("bind");
    let mut a = TcpTransport::start(
        tcp_config(1, local()).peer(2, silent.local_addr().expect("addr").to_string()),
        ba.mailbox(),
    )
    .expect("start a");
    a.send(vec![heartbeat(1, 2, 1)]); // the writer is now stuck in a handshake
    let handle = a.handle();
    let started = Instant::now();
    drop(a);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(handle.is_shutdown());
    assert!(matches!(handle.add_peer(3, "127.0.0.1:1"), Err(TransportError::Shutdown)));
    handle.shutdown(); // idempotent
                       // The listener is gone.
    assert!(TcpStream::connect(handle.local_addr()).is_err());
}

#[test]
fn bad_configurations_are_refused() {
    let b = idle_builder(1);
    let cfg = TcpConfig::new(0, CLUSTER, local());
    assert!(matches!(TcpTransport::start(cfg, b.mailbox()), Err(TransportError::InvalidConfig(_))));
    let taken = TcpListener::bind(local()).expect("bind");
    let cfg = TcpConfig::new(1, CLUSTER, taken.local_addr().expect("addr"));
    assert!(matches!(TcpTransport::start(cfg, b.mailbox()), Err(TransportError::Bind { .. })));
}

/// Connections that forge sender ids outside the address book hold at most
/// `UNKNOWN_SENDER_SLOTS` (16) slots, idle connections from one address at
/// most `HANDSHAKES_PER_ADDRESS` (16) handshakes, and a member in the
/// address book still gets through.
#[test]
fn forged_and_idle_connections_cannot_take_every_slot() {
    let (ba, bb) = (idle_builder(1), idle_builder(2));
    let mut cfg = tcp_config(2, local()).peer(1, "127.0.0.1:1");
    cfg.max_inbound_connections = 48;
    cfg.handshake_timeout = Duration::from_secs(1);
    let b = TcpTransport::start(cfg, bb.mailbox()).expect("start b");
    // 40 handshakes with forged, unknown senders, left open and idle.
    let mut forged = Vec::new();
    let mut accepted = 0;
    for i in 0..40 {
        let mut s = TcpStream::connect(b.local_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(&Handshake::new(Lane::Raft, CLUSTER, 1_000 + i, 2).encode()).expect("handshake");
        let mut reply = [0u8; 2];
        s.read_exact(&mut reply).expect("reply");
        match Verdict::from_reply(reply).expect("verdict") {
            Verdict::Accepted => accepted += 1,
            Verdict::Busy => {}
            other => panic!("unexpected verdict {other:?}"),
        }
        forged.push(s);
    }
    assert_eq!(accepted, 16, "unknown senders beyond their slots are told Busy");
    // Idle connections that never handshake: past 16 from one address, the
    // acceptor closes them at once.
    let idle: Vec<TcpStream> = (0..24).map(|_| TcpStream::connect(b.local_addr()).expect("connect")).collect();
    let closed_at_once = idle
        .iter()
        .filter(|s| {
            let mut s = s.try_clone().expect("clone");
            s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
            matches!(s.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(closed_at_once >= 8, "only {closed_at_once} of 24 idle connections were closed at once");
    // The member in the address book gets through (once the idle
    // handshakes time out, at the latest).
    let mut a =
        TcpTransport::start(tcp_config(1, local()).peer(2, b.local_addr().to_string()), ba.mailbox()).expect("start a");
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 2, 1)]);
        b.metrics().messages_received >= 1
    }));
    drop((forged, idle));
}
