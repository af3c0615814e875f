//! `make adversarial`: hostile input against a real 3-member cluster on
//! loopback, as an attacker on the network would send it — forged peer
//! frames in a member's name, forged and idle peer connections, an HPACK
//! bomb, extreme lease TTLs and oversized requests. Afterwards every member
//! is up and healthy, no term moved, RSS grew by less than a stated bound,
//! a put completes at once, and every member still holds every key written
//! before the attacks, with its value and revision.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use raft::eraftpb::{Entry, MessageType, Snapshot};
use raft_kv::RaftMessage;
use serde_json::{json, Value};
use transport_tcp::frame::encode_message;
use transport_tcp::handshake::{Handshake, Lane, Verdict};

/// How much any member's RSS may grow over the whole run.
const RSS_BOUND_KIB: u64 = 200 * 1024;

fn status(addr: &str) -> Value {
    let (code, body) = http(addr, "POST", "/v3/maintenance/status", "{}").expect("status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status json")
}

fn id_of(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).expect("id")
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn forged(kind: MessageType, from: u64, to: u64, term: u64) -> RaftMessage {
    let mut m = RaftMessage { from, to, term, ..Default::default() };
    m.set_msg_type(kind);
    m
}

/// Sends `msgs` to `peer_addr` over a raft lane opened in member `from`'s
/// name (the handshake needs only ids any client response header shows).
fn send_forged(peer_addr: &str, cluster: u64, from: u64, to: u64, msgs: &[RaftMessage]) {
    let mut s = TcpStream::connect(peer_addr).expect("connect peer port");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(&Handshake::new(Lane::Raft, cluster, from, to).encode()).expect("handshake");
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).expect("verdict");
    assert_eq!(Verdict::from_reply(reply).expect("verdict"), Verdict::Accepted);
    let mut buf = Vec::new();
    for m in msgs {
        encode_message(m, 8 << 20, &mut buf).expect("encode");
    }
    s.write_all(&buf).expect("frames");
}

/// One ~1 MB HTTP/2 header block that expands to ~1 GB if decoded without
/// a bound: a table-size update to 64 KiB, one 50 KB literal added to the
/// table, then 20 000 one-byte references to it.
fn hpack_bomb(addr: &str) {
    let mut block = vec![0x3f, 0xe1, 0xff, 0x03]; // size update: 65535
    block.extend([0x40, 0x01, b'x', 0x7f]); // literal, indexed; name "x"
    let value_len: usize = 50_000;
    let mut n = value_len - 127;
    while n >= 128 {
        block.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    block.push(n as u8);
    block.extend(std::iter::repeat_n(b'a', value_len));
    block.extend(std::iter::repeat_n(0xbe, 20_000)); // indexed field 62
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    for (i, chunk) in block.chunks(16_384).enumerate() {
        let last = (i + 1) * 16_384 >= block.len();
        let (kind, flags) = if i == 0 { (1u8, 0x1u8) } else { (9u8, 0u8) }; // HEADERS (END_STREAM) / CONTINUATION
        let flags = flags | if last { 0x4 } else { 0 };
        let len = chunk.len() as u32;
        out.extend([(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 1]);
        out.extend(chunk);
    }
    let mut s = TcpStream::connect(addr).expect("connect client port");
    s.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let _ = s.write_all(&out);
    let _ = s.read(&mut [0u8; 256]);
}

#[test]
fn hostile_input_leaves_every_member_up_and_serving() {
    let c = Cluster::start(3);
    let l = c.leader();
    let f = (l + 1) % 3;
    let leader_addr = c.members[l].client_addr();
    // What is stored before the attacks, with the revision of each write:
    // afterwards every member must still hold exactly this.
    let mut before: Vec<(String, String, i64)> = Vec::new();
    for (key, value) in [("/adv/before".to_string(), "1".to_string())]
        .into_iter()
        .chain((0..20).map(|i| (format!("/adv/k{i:02}"), format!("value {i} ").repeat(i + 1))))
    {
        let rev = put(&c.members[before.len() % 3].client_addr(), &key, &value);
        before.push((key, value, rev));
    }
    let st = status(&c.members[f].client_addr());
    let (cluster, follower) = (id_of(&st["header"]["cluster_id"]), id_of(&st["header"]["member_id"]));
    let leader = id_of(&st["leader"]);
    let term = id_of(&st["raftTerm"]);
    let rss: Vec<u64> = c.members.iter().map(|m| rss_kib(m.pid())).collect();
    let peer_addr = c.members[f].peer_url.trim_start_matches("http://").to_string();

    // 1. Forged peer frames in the leader's name to a follower.
    let mut hb = forged(MessageType::MsgHeartbeat, leader, follower, term);
    hb.commit = u64::MAX;
    let mut snap = forged(MessageType::MsgSnapshot, leader, follower, term);
    snap.set_snapshot(Snapshot { data: vec![0xde, 0xad].into(), ..Default::default() });
    let mut gap = forged(MessageType::MsgAppend, leader, follower, term);
    gap.index = 1;
    gap.entries.push(Entry { index: 9, term, ..Default::default() });
    let votes = forged(MessageType::MsgRequestVote, leader, follower, u64::MAX);
    send_forged(&peer_addr, cluster, leader, follower, &[hb, snap, gap, votes]);

    // 2. Forged senders and idle connections on the peer port.
    let mut held = Vec::new();
    for i in 0..200 {
        if let Ok(mut s) = TcpStream::connect(&peer_addr) {
            let _ = s.write_all(&Handshake::new(Lane::Raft, cluster, 1_000_000 + i, follower).encode());
            held.push(s);
        }
        if let Ok(s) = TcpStream::connect(&peer_addr) {
            held.push(s);
        }
    }

    // 3. An HPACK bomb to every member's client port.
    for m in &c.members {
        hpack_bomb(&m.client_addr());
    }

    // 4. Extreme numbers and oversized requests through the gateway.
    let (code, body) = http(&leader_addr, "POST", "/v3/lease/grant", r#"{"TTL":"18446744073709552"}"#).expect("grant");
    assert!(code >= 400 && body.contains("too large lease TTL"), "{code} {body}");
    let big = format!(r#"{{"key":"{}","value":"{}"}}"#, b64("/adv/big"), b64(&"v".repeat(2 << 20)));
    let (code, body) = http(&leader_addr, "POST", "/v3/kv/put", &big).expect("big put");
    assert!(code >= 400, "an oversized put was accepted: {code} {body}");
    let (code, _) =
        http(&leader_addr, "POST", "/v3/kv/range", r#"{"key":"AA==","limit":"-1","revision":"9223372036854775807"}"#)
            .expect("range");
    assert!(code >= 400, "a future revision was served");
    drop(held);

    // Every member up and healthy, the term unchanged, RSS bounded, and a
    // put completes at once.
    for (i, m) in c.members.iter().enumerate() {
        c.wait_healthy(m, Duration::from_secs(10));
        let st = status(&m.client_addr());
        assert_eq!(id_of(&st["raftTerm"]), term, "member {i} changed term");
        let grown = rss_kib(m.pid()).saturating_sub(rss[i]);
        eprintln!("member {i}: RSS {} -> {} KiB, term {term} unchanged", rss[i], rss[i] + grown);
        assert!(grown < RSS_BOUND_KIB, "member {i} grew by {grown} KiB");
    }
    let started = Instant::now();
    put(&leader_addr, "/adv/after", "1");
    assert!(started.elapsed() < Duration::from_secs(5), "a put took {:?}", started.elapsed());

    // Nothing stored is lost: every member serves every key written before
    // the attacks with its value and revision, and nothing the attacks sent
    // (the oversized put) was stored.
    for (i, m) in c.members.iter().enumerate() {
        let got = post_ok(
            &m.client_addr(),
            "/v3/kv/range",
            &json!({"key": b64("/adv/"), "range_end": b64("/adv0")}).to_string(),
        );
        let kvs: Vec<(String, String, i64)> = got["kvs"]
            .as_array()
            .unwrap_or_else(|| panic!("member {i}: no kvs in {got}"))
            .iter()
            .map(|kv| {
                (
                    unb64(kv["key"].as_str().expect("key")),
                    unb64(kv["value"].as_str().unwrap_or("")),
                    num(&kv["mod_revision"]),
                )
            })
            .filter(|(k, _, _)| k != "/adv/after")
            .collect();
        let mut want = before.clone();
        want.sort();
        assert_eq!(kvs, want, "member {i} does not hold what was stored before the attacks");
    }
}
