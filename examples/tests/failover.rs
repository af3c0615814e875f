//! kill -9 of the leader while a client writes: writes resume through the
//! other members; after a restart every member agrees on revision and hash,
//! and every acknowledged write is present.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn put(addr: &str, key: &str, value: &str) -> bool {
    let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value));
    // Like an etcd client: give up on a member after 2 s and try the next
    // (a write forwarded to a leader that just died has an unknown outcome
    // until the member's own request timeout).
    matches!(http_within(addr, "POST", "/v3/kv/put", &body, Duration::from_secs(2)), Ok((200, _)))
}

fn status(addr: &str) -> Option<Value> {
    match http(addr, "POST", "/v3/maintenance/status", "{}") {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

#[test]
fn leader_killed_during_writes_loses_nothing() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let mut acked: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut killed_at = None;
    let mut longest_gap = Duration::ZERO;
    let mut last_ack = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Write through the members in turn; after 50 acknowledged writes kill
    // the leader; stop 100 acknowledged writes after that.
    while acked.len() < 150 {
        assert!(Instant::now() < deadline, "writes did not resume: {} acked", acked.len());
        if acked.len() == 50 && killed_at.is_none() {
            c.kill(leader);
            killed_at = Some(Instant::now());
        }
        let live: Vec<String> = c.members.iter().filter(|m| m.child.is_some()).map(|m| m.client_addr()).collect();
        let addr = &live[next % live.len()];
        if put(addr, &format!("/f/{next:05}"), &next.to_string()) {
            acked.push(next);
            longest_gap = longest_gap.max(last_ack.elapsed());
            last_ack = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        next += 1;
    }
    eprintln!("longest pause between acknowledged writes: {longest_gap:?}");
    assert!(longest_gap < Duration::from_secs(8), "writes resumed only after {longest_gap:?}");

    c.restart(leader);
    c.wait_healthy(&c.members[leader], Duration::from_secs(30));
    // Every member converges on one revision and one HashKV.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let revs: Vec<Option<i64>> = c
            .members
            .iter()
            .map(|m| status(&m.client_addr()).and_then(|s| s["header"]["revision"].as_str()?.parse().ok()))
            .collect();
        if revs.iter().all(|r| r.is_some() && *r == revs[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "revisions differ: {revs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = etcdctl(&c.endpoints(), &["endpoint", "hashkv", "-w", "json"]);
    let hashes: Vec<Value> = serde_json::from_str::<Vec<Value>>(&out).expect("hashkv json");
    let hs: Vec<&Value> = hashes.iter().map(|h| &h["HashKV"]["hash"]).collect();
    assert_eq!(hs.len(), 3);
    assert!(hs.iter().all(|h| *h == hs[0]), "{out}");

    for m in &c.members {
        let body = format!(r#"{{"key":"{}","range_end":"{}"}}"#, b64("/f/"), b64("/f0"));
        let (code, body) = http(&m.client_addr(), "POST", "/v3/kv/range", &body).expect("range");
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let keys: std::collections::HashSet<String> =
            v["kvs"].as_array().expect("kvs").iter().map(|kv| unb64(kv["key"].as_str().expect("key"))).collect();
        for i in &acked {
            assert!(keys.contains(&format!("/f/{i:05}")), "acknowledged write {i} missing on {}", m.name);
        }
    }
}
