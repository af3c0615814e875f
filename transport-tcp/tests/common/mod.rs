//! Helpers shared by the integration tests: members on loopback, raw peers,
//! bounded waits.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use raft::eraftpb::MessageType;
use raft_kv::{Config, Node, RaftMessage, RocksEngine};
use tempfile::TempDir;
use transport_tcp::handshake::{Handshake, Lane, Verdict, REPLY_LEN};
use transport_tcp::{TcpConfig, TcpHandle, TcpTransport};

pub const CLUSTER: u64 = 0xC1A5;
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `f` until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Logs to the test output when `RUST_LOG` asks for it.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

pub fn tcp_config(id: u64, listen: SocketAddr) -> TcpConfig {
    TcpConfig::new(id, CLUSTER, listen).backoff(Duration::from_millis(10), Duration::from_millis(200))
}

/// A member of a 3-member test cluster.
pub struct Member {
    pub id: u64,
    pub dir: TempDir,
    pub addr: SocketAddr,
    pub node: Option<Node>,
    pub handle: TcpHandle,
}

pub fn node_config(id: u64) -> Config {
    Config::new(id).peers(vec![1, 2, 3]).tick_interval(Duration::from_millis(50)).snapshot_entries(20, 5)
}

/// Starts member `id` on `dir`, listening on `listen`, knowing `peers`.
pub fn start_node(id: u64, dir: &Path, listen: SocketAddr, peers: &[(u64, SocketAddr)]) -> (Node, TcpHandle) {
    let b = Node::builder(node_config(id)).engine(RocksEngine::open(dir).expect("open engine"));
    let mut cfg = tcp_config(id, listen);
    for (pid, addr) in peers {
        cfg = cfg.peer(*pid, addr.to_string());
    }
    let t = TcpTransport::start(cfg, b.mailbox()).expect("start transport");
    let h = t.handle();
    (b.transport(t).start().expect("start node"), h)
}

/// Three members on loopback; the address book is filled once all listen.
pub fn cluster() -> Vec<Member> {
    init_logs();
    let mut members: Vec<Member> = (1..=3)
        .map(|id| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (node, handle) = start_node(id, dir.path(), "127.0.0.1:0".parse().expect("addr"), &[]);
            Member { id, dir, addr: handle.local_addr(), node: Some(node), handle }
        })
        .collect();
    let addrs: Vec<(u64, SocketAddr)> = members.iter().map(|m| (m.id, m.addr)).collect();
    for m in &mut members {
        for (id, addr) in &addrs {
            m.handle.add_peer(*id, &addr.to_string()).expect("add peer");
        }
    }
    members
}

pub fn node(m: &Member) -> &Node {
    m.node.as_ref().expect("member is running")
}

/// Puts through member `m` like a real client: retries errors after which
/// the write may not have applied (forwarded proposals lost while
/// connections settle), for at most [`WAIT`].
pub fn put(m: &Member, key: impl Into<String>, value: impl Into<Vec<u8>>) -> raft_kv::Result<raft_kv::PutResponse> {
    let (key, value): (String, Vec<u8>) = (key.into(), value.into());
    let deadline = Instant::now() + WAIT;
    loop {
        match node(m).put(key.clone(), value.clone()) {
            Err(e) if e.is_retryable() && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => return other,
        }
    }
}

/// Waits until every running member knows the same leader; returns its id.
pub fn wait_leader(members: &[Member]) -> u64 {
    let mut leader = 0;
    let agreed = eventually(WAIT, || {
        let seen: Vec<u64> =
            members.iter().filter_map(|m| m.node.as_ref()).map(|n| n.status().map_or(0, |s| s.state.leader)).collect();
        leader = seen[0];
        leader != 0 && seen.iter().all(|l| *l == leader)
    });
    assert!(agreed, "no agreed leader");
    leader
}

pub fn heartbeat(from: u64, to: u64, term: u64) -> RaftMessage {
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// Connects to `addr` and runs a handshake by hand; returns the stream and
/// the acceptor's verdict.
pub fn raw_handshake(addr: SocketAddr, hs: Handshake) -> (TcpStream, Verdict) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(&hs.encode()).expect("write handshake");
    let mut reply = [0u8; REPLY_LEN];
    s.read_exact(&mut reply).expect("read reply");
    (s, Verdict::from_reply(reply).expect("verdict"))
}

pub fn raw_accepted(addr: SocketAddr, from: u64, to: u64) -> TcpStream {
    let (s, v) = raw_handshake(addr, Handshake::new(Lane::Raft, CLUSTER, from, to));
    assert_eq!(v, Verdict::Accepted);
    s
}

/// Whether the peer closes `s` within 10 s (reading and discarding data).
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
    false
}
