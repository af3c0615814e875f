//! etcd's JSON gateway end to end: every route with curl, bad input,
//! `/health` and `/metrics`, a lease kept alive over HTTP, a watch stream
//! across a leader change, and streaming request bodies that never end.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

// ---- helpers ---------------------------------------------------------------

/// Every gateway route under `/v3`: the 43 routes etcd 3.5's grpc-gateway
/// serves, plus `/maintenance/hashkv`. [`routes_in_source`] reads the
/// server's route table, so a route added there fails this test until it is
/// listed (and exercised) here.
const ROUTES: [&str; 44] = [
    "/kv/range",
    "/kv/put",
    "/kv/deleterange",
    "/kv/txn",
    "/kv/compaction",
    "/watch",
    "/lease/grant",
    "/lease/revoke",
    "/kv/lease/revoke",
    "/lease/keepalive",
    "/lease/timetolive",
    "/kv/lease/timetolive",
    "/lease/leases",
    "/kv/lease/leases",
    "/cluster/member/add",
    "/cluster/member/remove",
    "/cluster/member/update",
    "/cluster/member/list",
    "/cluster/member/promote",
    "/maintenance/alarm",
    "/maintenance/status",
    "/maintenance/defragment",
    "/maintenance/hash",
    "/maintenance/hashkv",
    "/maintenance/snapshot",
    "/maintenance/transfer-leadership",
    "/maintenance/downgrade",
    "/auth/enable",
    "/auth/disable",
    "/auth/status",
    "/auth/authenticate",
    "/auth/user/add",
    "/auth/user/get",
    "/auth/user/list",
    "/auth/user/delete",
    "/auth/user/changepw",
    "/auth/user/grant",
    "/auth/user/revoke",
    "/auth/role/add",
    "/auth/role/get",
    "/auth/role/list",
    "/auth/role/delete",
    "/auth/role/grant",
    "/auth/role/revoke",
];

/// The routes `json_routes()` registers under each prefix, read from the
/// route table in the server's gateway.rs (one `("/path", handler)` per line).
fn routes_in_source() -> Vec<String> {
    let src = include_str!("../src/bin/raft-kv-server/gateway.rs");
    let table = src.split_once("fn json_routes").expect("json_routes() in gateway.rs").1;
    let table = table.split_once("];").expect("the end of the route table").0;
    table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(\""))
        .filter_map(|l| l.split_once('"'))
        .map(|(path, _)| format!("/{}", path.trim_start_matches('/')))
        .collect()
}

/// curl against the members' gateways, remembering which `/v3` routes were
/// called. No answer may be "unimplemented" (HTTP 501 or gRPC code 12).
struct Gateway {
    /// Each member's `http://host:port`.
    bases: Vec<String>,
    /// `/v3` routes called so far (without the prefix).
    called: BTreeSet<String>,
}

impl Gateway {
    fn new(c: &Cluster) -> Gateway {
        Gateway { bases: c.members.iter().map(|m| m.client_url.clone()).collect(), called: BTreeSet::new() }
    }

    /// POSTs `body` to `path` on member `m` with curl (plus `extra` flags);
    /// returns the HTTP status and the response body.
    fn curl(&mut self, m: usize, path: &str, body: &str, extra: &[&str]) -> (u16, String) {
        if let Some(route) = path.strip_prefix("/v3/") {
            self.called.insert(format!("/{route}"));
        }
        let url = format!("{}{path}", self.bases[m]);
        let mut args = vec!["-sS", "-X", "POST", "--data-binary", "@-", "-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        args.push(&url);
        // A stream cut by --max-time ends curl with status 28; the status
        // line and what arrived are still there.
        let out = run(60, "curl", &args, &[], Some(body));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code: u16 =
            code.parse().unwrap_or_else(|_| panic!("curl {url}: {text:?} {}", String::from_utf8_lossy(&out.stderr)));
        assert_ne!(code, 501, "{path} is not implemented: {body}");
        (code, body.to_string())
    }

    /// A unary route on member `m`: HTTP status and JSON body.
    fn post_on(&mut self, m: usize, path: &str, body: &str) -> (u16, Value) {
        let (code, text) = self.curl(m, path, body, &[]);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} gave {text:?}: {e}"));
        assert_ne!(v["code"], 12, "{path} is not implemented: {v}");
        (code, v)
    }

    /// A unary route on member `m` that must succeed.
    fn ok_on(&mut self, m: usize, path: &str, body: &str) -> Value {
        let (code, v) = self.post_on(m, path, body);
        assert_eq!(code, 200, "{path} {body}: {v}");
        assert!(v["header"]["cluster_id"].is_string(), "{path}: no header in {v}");
        v
    }

    /// A unary route on the first member that must succeed.
    fn ok(&mut self, path: &str, body: &str) -> Value {
        self.ok_on(0, path, body)
    }

    /// A route that must refuse `body` with etcd's error: grpc-gateway's
    /// body (`error` and `message` both the message) and HTTP status.
    fn refuses(&mut self, path: &str, body: &str, http: u16, code: i32, message: &str) {
        let (status, v) = self.post_on(0, path, body);
        assert_eq!(
            (status, &v["code"], &v["error"], &v["message"]),
            (http, &json!(code), &json!(message), &json!(message)),
            "{path} {body}: {v}"
        );
    }

    /// A streaming route: the lines that arrive within `secs` seconds (or
    /// until the response ends), each a `{"result": ...}` object.
    fn stream(&mut self, path: &str, body: &str, secs: u64) -> Vec<Value> {
        let secs = secs.to_string();
        let (code, text) = self.curl(0, path, body, &["-N", "--max-time", &secs]);
        assert_eq!(code, 200, "{path}: {text}");
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path} line {l:?}: {e}")))
            .collect();
        assert!(lines.iter().all(|l| l["result"].is_object()), "{path}: {lines:?}");
        lines
    }
}

/// A JSON string field as a number (int64 fields are strings in JSON).
fn num(v: &Value) -> i64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{v} is not an int64 string"))
}

/// Member ids in a member list response.
fn member_ids(v: &Value) -> Vec<String> {
    v["members"].as_array().expect("members").iter().map(|m| m["ID"].as_str().expect("ID").to_string()).collect()
}

/// The first JSON line of a streaming route's response body.
fn first_line(body: &str) -> Value {
    let line = body.lines().next().unwrap_or_else(|| panic!("empty stream: {body:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// A gateway call over [`http`] that must succeed.
fn post_ok(addr: &str, path: &str, body: &str) -> Value {
    let (code, text) = http(addr, "POST", path, body).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(code, 200, "{path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} gave {text:?}: {e}"))
}

/// A gateway call over [`http`] that must fail: HTTP status and JSON body.
fn post_err(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let (code, text) = http(addr, "POST", path, body).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} gave {code} {text:?}: {e}"));
    (code, v)
}

/// A put through the gateway of member `addr`; the revision it created.
fn put(addr: &str, key: &str, value: &str) -> i64 {
    let v = post_ok(addr, "/v3/kv/put", &json!({ "key": b64(key), "value": b64(value) }).to_string());
    num(&v["header"]["revision"])
}

/// The number of threads of process `pid`.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: in /proc/<pid>/status")
}

/// One HTTP/1.1 streaming exchange on its own connection: the request body
/// is sent chunk by chunk as the test goes (`Transfer-Encoding: chunked`),
/// and the response's chunked body is read line by line as it arrives.
struct HttpStream {
    sock: TcpStream,
    /// Received and not yet decoded.
    raw: Vec<u8>,
    /// Decoded response body not yet returned as lines.
    body: Vec<u8>,
    /// The response status, once its head has arrived.
    status: Option<u16>,
    /// The response body has ended (last chunk, or the connection closed).
    ended: bool,
}

impl HttpStream {
    /// Sends the head of `POST path`; the body follows with [`Self::send`].
    fn open(addr: &str, path: &str) -> HttpStream {
        let mut sock =
            TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5)).expect("connect");
        sock.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
        write!(
            sock,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .expect("send request head");
        HttpStream { sock, raw: Vec::new(), body: Vec::new(), status: None, ended: false }
    }

    /// Sends one JSON request as a chunk of the request body.
    fn send(&mut self, request: &str) {
        write!(self.sock, "{:x}\r\n{request}\r\n", request.len()).expect("send chunk");
    }

    /// Ends the request body.
    fn finish(&mut self) {
        self.sock.write_all(b"0\r\n\r\n").expect("send last chunk");
    }

    /// The next line of the response body as JSON; `None` when the response
    /// has ended or nothing more arrives before `deadline`.
    fn next(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(i) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line);
                if line.trim().is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("stream line {line:?}: {e}")));
            }
            if self.decode() {
                continue;
            }
            if self.ended || !self.receive(deadline) {
                return None;
            }
        }
    }

    /// Reads what the server sent, waiting until `deadline` at most; false
    /// if nothing arrived.
    fn receive(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.sock.set_read_timeout(Some(left)).expect("read timeout");
        let mut buf = [0u8; 16 * 1024];
        match self.sock.read(&mut buf) {
            // Closed, reset or timed out.
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Moves what can be decoded from `raw` into `body` (the response head
    /// first, then whole chunks); true if anything was decoded.
    fn decode(&mut self) -> bool {
        let mut progress = false;
        if self.status.is_none() {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else { return false };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
            self.status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
            assert!(head.contains("transfer-encoding: chunked"), "not a streamed response: {head}");
            self.raw.drain(..end + 4);
            progress = true;
        }
        while !self.ended {
            let Some(eol) = find(&self.raw, b"\r\n") else { break };
            let size = std::str::from_utf8(&self.raw[..eol])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
                .unwrap_or_else(|| panic!("bad chunk size line {:?}", String::from_utf8_lossy(&self.raw[..eol])));
            if self.raw.len() < eol + 2 + size + 2 {
                break;
            }
            self.body.extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
            self.ended = size == 0;
            progress = true;
        }
        progress
    }

    /// The response status, waiting for the response head until `deadline`.
    fn status(&mut self, deadline: Instant) -> Option<u16> {
        while self.status.is_none() && !self.decode() {
            if !self.receive(deadline) {
                break;
            }
        }
        self.status
    }
}

/// `n` characters that do not compress (a fixed pseudo-random sequence).
fn noise(n: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---- every route -----------------------------------------------------------

#[test]
fn every_gateway_route_answers_like_etcd() {
    // The route list here is the server's route table.
    let in_source = routes_in_source();
    let listed: BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    assert_eq!(listed.len(), ROUTES.len(), "a route is listed twice");
    assert_eq!(in_source.len(), ROUTES.len(), "routes in gateway.rs: {in_source:?}");
    assert_eq!(in_source.into_iter().collect::<BTreeSet<_>>(), listed);

    let c = Cluster::start(3);
    let mut g = Gateway::new(&c);

    // ---- KV
    let rev =
        num(&g.ok("/v3/kv/put", &json!({"key": b64("foo"), "value": b64("bar")}).to_string())["header"]["revision"]);
    let got = g.ok("/v3/kv/range", &json!({"key": b64("foo")}).to_string());
    assert_eq!((&got["kvs"][0]["value"], &got["count"]), (&json!(b64("bar")), &json!("1")), "{got}");
    assert_eq!(num(&got["kvs"][0]["mod_revision"]), rev);
    let txn = json!({
        "compare": [{"target": "VALUE", "result": "EQUAL", "key": b64("foo"), "value": b64("bar")}],
        "success": [{"request_put": {"key": b64("foo"), "value": b64("baz")}}, {"request_range": {"key": b64("foo")}}],
        "failure": [{"request_range": {"key": b64("foo")}}],
    });
    let t = g.ok("/v3/kv/txn", &txn.to_string());
    assert_eq!(t["succeeded"], true, "{t}");
    assert_eq!(t["responses"][1]["response_range"]["kvs"][0]["value"], b64("baz"), "{t}");
    // The same compare fails now: the failure branch runs (`succeeded`
    // false is a default, left out).
    let t = g.ok("/v3/kv/txn", &txn.to_string());
    assert!(t["succeeded"].is_null(), "{t}");
    assert_eq!(t["responses"][0]["response_range"]["kvs"][0]["value"], b64("baz"), "{t}");
    let del = g.ok("/v3/kv/deleterange", &json!({"key": b64("foo"), "prev_kv": true}).to_string());
    assert_eq!((&del["deleted"], &del["prev_kvs"][0]["value"]), (&json!("1"), &json!(b64("baz"))), "{del}");

    // A watch from a past revision replays put, txn put and delete.
    let lines = g.stream(
        "/v3/watch",
        &json!({"create_request": {"key": b64("foo"), "start_revision": rev.to_string()}}).to_string(),
        3,
    );
    assert_eq!(lines[0]["result"]["created"], true, "{lines:?}");
    let events: Vec<&Value> = lines.iter().filter_map(|l| l["result"]["events"].as_array()).flatten().collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap_or("PUT")).collect();
    assert_eq!(kinds, ["PUT", "PUT", "DELETE"], "{lines:?}");
    let revs: Vec<i64> = events.iter().map(|e| num(&e["kv"]["mod_revision"])).collect();
    assert_eq!(revs, [rev, rev + 1, rev + 2], "{lines:?}");

    // ---- Lease (and the /v3/kv/lease/* aliases)
    let lease = g.ok("/v3/lease/grant", r#"{"TTL": 60}"#);
    let id = lease["ID"].as_str().expect("lease ID").to_string();
    assert_eq!(lease["TTL"], "60", "{lease}");
    let fixed = g.ok("/v3/lease/grant", r#"{"TTL": 60, "ID": "4242"}"#);
    assert_eq!(fixed["ID"], "4242", "{fixed}");
    g.refuses("/v3/lease/grant", r#"{"TTL": 60, "ID": "4242"}"#, 400, 9, "etcdserver: lease already exists");
    g.ok("/v3/kv/put", &json!({"key": b64("leased"), "value": b64("v"), "lease": id}).to_string());
    let ttl = g.ok("/v3/lease/timetolive", &json!({"ID": id, "keys": true}).to_string());
    assert_eq!((&ttl["ID"], &ttl["grantedTTL"], &ttl["keys"]), (&json!(id), &json!("60"), &json!([b64("leased")])));
    assert!((1..=60).contains(&num(&ttl["TTL"])), "{ttl}");
    let ttl = g.ok("/v3/kv/lease/timetolive", &json!({"ID": id}).to_string());
    assert_eq!(ttl["grantedTTL"], "60", "{ttl}");
    assert!(ttl["keys"].is_null(), "keys only when asked: {ttl}");
    let unknown = g.ok("/v3/lease/timetolive", r#"{"ID": "777"}"#);
    assert_eq!(unknown["TTL"], "-1", "etcd answers an unknown lease with TTL -1: {unknown}");
    for path in ["/v3/lease/leases", "/v3/kv/lease/leases"] {
        let leases = g.ok(path, "{}");
        let ids: BTreeSet<&str> =
            leases["leases"].as_array().expect("leases").iter().filter_map(|l| l["ID"].as_str()).collect();
        assert_eq!(ids, BTreeSet::from([id.as_str(), "4242"]), "{path}: {leases}");
    }
    let ka = g.stream("/v3/lease/keepalive", &json!({"ID": id}).to_string(), 10);
    assert_eq!(ka.len(), 1, "one renewal per request: {ka:?}");
    assert_eq!((&ka[0]["result"]["ID"], &ka[0]["result"]["TTL"]), (&json!(id), &json!("60")), "{ka:?}");
    g.ok("/v3/lease/revoke", &json!({"ID": id}).to_string());
    let gone = g.ok("/v3/kv/range", &json!({"key": b64("leased")}).to_string());
    assert!(gone["kvs"].is_null(), "revoking deletes the lease's keys: {gone}");
    g.ok("/v3/kv/lease/revoke", r#"{"ID": "4242"}"#);
    g.refuses("/v3/lease/revoke", r#"{"ID": "4242"}"#, 404, 5, "etcdserver: requested lease not found");
    assert!(g.ok("/v3/lease/leases", "{}")["leases"].is_null());

    // ---- Cluster
    let list = g.ok("/v3/cluster/member/list", "{}");
    let names: BTreeSet<&str> =
        list["members"].as_array().expect("members").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, BTreeSet::from(["m1", "m2", "m3"]), "{list}");
    let voters = member_ids(&list);
    let learner_url = format!("http://127.0.0.1:{}", free_port());
    let added = g.ok("/v3/cluster/member/add", &json!({"peerURLs": [learner_url], "isLearner": true}).to_string());
    assert_eq!((&added["member"]["peerURLs"], &added["member"]["isLearner"]), (&json!([learner_url]), &json!(true)));
    let learner = added["member"]["ID"].as_str().expect("new member ID").to_string();
    assert_eq!(added["members"].as_array().map(Vec::len), Some(4), "{added}");
    g.refuses(
        "/v3/cluster/member/add",
        &json!({"peerURLs": [learner_url]}).to_string(),
        400,
        9,
        "etcdserver: Peer URLs already exists",
    );
    let moved_url = format!("http://127.0.0.1:{}", free_port());
    let updated = g.ok("/v3/cluster/member/update", &json!({"ID": learner, "peerURLs": [moved_url]}).to_string());
    let entry = updated["members"].as_array().expect("members").iter().find(|m| m["ID"] == learner.as_str()).cloned();
    assert_eq!(entry.map(|m| m["peerURLs"].clone()), Some(json!([moved_url])), "{updated}");
    // Another member's peer URL is refused, as on add.
    let taken = updated["members"].as_array().expect("members").iter().find(|m| m["ID"] != learner.as_str()).cloned();
    let taken_url = taken.expect("another member")["peerURLs"][0].clone();
    g.refuses(
        "/v3/cluster/member/update",
        &json!({"ID": learner, "peerURLs": [taken_url]}).to_string(),
        400,
        9,
        "etcdserver: Peer URLs already exists",
    );
    // The learner never started: it cannot be in sync.
    g.refuses(
        "/v3/cluster/member/promote",
        &json!({"ID": learner}).to_string(),
        400,
        9,
        "etcdserver: can only promote a learner member which is in sync with leader",
    );
    g.refuses(
        "/v3/cluster/member/promote",
        &json!({"ID": voters[0]}).to_string(),
        400,
        9,
        "etcdserver: can only promote a learner member",
    );
    let removed = g.ok("/v3/cluster/member/remove", &json!({"ID": learner}).to_string());
    assert_eq!(member_ids(&removed), voters, "{removed}");
    g.refuses("/v3/cluster/member/remove", &json!({"ID": learner}).to_string(), 404, 5, "etcdserver: member not found");

    // ---- Maintenance
    let alarms = g.ok("/v3/maintenance/alarm", r#"{"action": "GET"}"#);
    assert!(alarms["alarms"].is_null(), "no alarms: {alarms}");
    let st = g.ok("/v3/maintenance/status", "{}");
    assert_eq!(st["version"], "3.5.0", "{st}");
    assert!(voters.contains(&st["leader"].as_str().expect("leader").to_string()), "{st}");
    assert!(num(&st["raftIndex"]) > 0 && num(&st["raftTerm"]) > 0 && num(&st["dbSize"]) > 0, "{st}");
    g.ok("/v3/maintenance/defragment", "{}");
    // Every member hashes the same history the same (members may still be
    // applying the last writes: bounded retry).
    let at = num(&g.ok("/v3/kv/put", &json!({"key": b64("h"), "value": b64("1")}).to_string())["header"]["revision"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hashes: Vec<(u16, Value)> = (0..3)
            .map(|m| g.post_on(m, "/v3/maintenance/hashkv", &json!({"revision": at.to_string()}).to_string()))
            .collect();
        let all_ok = hashes.iter().all(|(code, v)| *code == 200 && v["hash_revision"] == at.to_string().as_str());
        if all_ok && hashes.iter().all(|(_, v)| v["hash"] == hashes[0].1["hash"]) {
            assert!(hashes[0].1["hash"].is_u64(), "{:?}", hashes[0]);
            break;
        }
        assert!(Instant::now() < deadline, "members' hashes at {at} differ: {hashes:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // etcd 3.5's gateway binds Hash's path to HashKV (the last one wins).
    let h = g.ok("/v3/maintenance/hash", "{}");
    assert!(h["hash"].is_u64() && h["hash_revision"].is_string(), "{h}");
    g.refuses(
        "/v3/maintenance/downgrade",
        r#"{"action": "VALIDATE", "version": "three.five"}"#,
        400,
        3,
        "etcdserver: wrong downgrade target version format",
    );
    // As etcd 3.5: one minor version down validates, anything else does not.
    let v = g.ok("/v3/maintenance/downgrade", r#"{"action": "VALIDATE", "version": "3.4"}"#);
    assert_eq!(v["version"], "3.5.0", "{v}");
    g.refuses(
        "/v3/maintenance/downgrade",
        r#"{"action": "VALIDATE", "version": "3.3"}"#,
        400,
        3,
        "etcdserver: invalid downgrade target version",
    );
    g.refuses(
        "/v3/maintenance/downgrade",
        r#"{"action": "CANCEL", "version": "3.4"}"#,
        400,
        9,
        "etcdserver: no inflight downgrade job",
    );

    // Compaction: history before the compacted revision is gone.
    let now = num(&g.ok("/v3/kv/put", &json!({"key": b64("c"), "value": b64("2")}).to_string())["header"]["revision"]);
    g.ok("/v3/kv/compaction", &json!({"revision": now.to_string(), "physical": true}).to_string());
    let compacted = "etcdserver: mvcc: required revision has been compacted";
    g.refuses("/v3/kv/range", &json!({"key": b64("c"), "revision": "1"}).to_string(), 400, 11, compacted);
    g.refuses("/v3/kv/compaction", &json!({"revision": (now - 1).to_string()}).to_string(), 400, 11, compacted);

    // A snapshot streams etcd's file format: pages of 512 bytes and a
    // SHA-256; each chunk says how much is still to come. Some data that
    // does not compress first, so it takes several chunks.
    let big = noise(200 << 10);
    g.ok("/v3/kv/put", &json!({"key": b64("big"), "value": b64(&big)}).to_string());
    let chunks = g.stream("/v3/maintenance/snapshot", "{}", 30);
    let mut file = Vec::new();
    let mut remaining = Vec::new();
    for l in &chunks {
        let r = &l["result"];
        let blob = base64::engine::general_purpose::STANDARD.decode(r["blob"].as_str().expect("blob")).expect("base64");
        file.extend_from_slice(&blob);
        // 0 is the default, left out of the JSON.
        let left = r["remaining_bytes"].as_str().map_or(0, |s| s.parse::<usize>().expect("remaining_bytes"));
        remaining.push((file.len(), left));
        assert_eq!(r["version"], "3.5.0", "{r}");
    }
    assert!(chunks.len() > 1, "a snapshot of more than 200 KiB in one chunk");
    assert!(remaining.iter().all(|(sent, left)| sent + left == file.len()), "(sent, remaining_bytes): {remaining:?}");
    assert_eq!(remaining.last().map(|r| r.1), Some(0), "{remaining:?}");
    assert!(file.len() > big.len() && file.len() % 512 == 32, "snapshot of {} bytes", file.len());

    // Move leadership to another voter (asked of any member).
    let leader = g.ok("/v3/maintenance/status", "{}")["leader"].as_str().expect("leader").to_string();
    let target = voters.iter().find(|v| **v != leader).expect("another voter").clone();
    g.refuses(
        "/v3/maintenance/transfer-leadership",
        r#"{"targetID": "12345"}"#,
        400,
        9,
        "etcdserver: bad leader transferee",
    );
    g.ok("/v3/maintenance/transfer-leadership", &json!({"targetID": target}).to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    while g.ok("/v3/maintenance/status", "{}")["leader"] != target.as_str() {
        assert!(Instant::now() < deadline, "leadership did not move to {target}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // ---- Auth: not enabled; etcd's errors (FailedPrecondition → 400).
    g.refuses("/v3/auth/enable", "{}", 400, 9, "etcdserver: root user does not exist");
    g.ok("/v3/auth/disable", "{}");
    let auth = g.ok("/v3/auth/status", "{}");
    assert!(auth["enabled"].is_null() || auth["enabled"] == false, "{auth}");
    let not_enabled = "etcdserver: authentication is not enabled";
    g.refuses("/v3/auth/authenticate", r#"{"name": "root", "password": "pw"}"#, 400, 9, not_enabled);
    g.refuses("/v3/auth/user/add", r#"{"name": "u", "password": "pw"}"#, 400, 9, not_enabled);
    g.refuses("/v3/auth/user/get", r#"{"name": "u"}"#, 400, 9, "etcdserver: user name not found");
    assert!(g.ok("/v3/auth/user/list", "{}")["users"].is_null());
    g.refuses("/v3/auth/user/delete", r#"{"name": "u"}"#, 400, 9, not_enabled);
    g.refuses("/v3/auth/user/changepw", r#"{"name": "u", "password": "new"}"#, 400, 9, not_enabled);
    g.refuses("/v3/auth/user/grant", r#"{"user": "u", "role": "r"}"#, 400, 9, not_enabled);
    g.refuses("/v3/auth/user/revoke", r#"{"name": "u", "role": "r"}"#, 400, 9, not_enabled);
    g.refuses("/v3/auth/role/add", r#"{"name": "r"}"#, 400, 9, not_enabled);
    g.refuses("/v3/auth/role/get", r#"{"role": "r"}"#, 400, 9, "etcdserver: role name not found");
    assert!(g.ok("/v3/auth/role/list", "{}")["roles"].is_null());
    g.refuses("/v3/auth/role/delete", r#"{"role": "r"}"#, 400, 9, not_enabled);
    let perm = json!({"name": "r", "perm": {"permType": "READWRITE", "key": b64("a"), "range_end": b64("b")}});
    g.refuses("/v3/auth/role/grant", &perm.to_string(), 400, 9, not_enabled);
    g.refuses("/v3/auth/role/revoke", &json!({"role": "r", "key": b64("a")}).to_string(), 400, 9, not_enabled);

    // ---- The /v3beta and /v3alpha aliases.
    let alias_rev =
        num(&g.ok("/v3beta/kv/put", &json!({"key": b64("alias"), "value": b64("beta")}).to_string())["header"]
            ["revision"]);
    let got = g.ok("/v3alpha/kv/range", &json!({"key": b64("alias")}).to_string());
    assert_eq!(got["kvs"][0]["value"], b64("beta"), "{got}");
    assert_eq!(g.ok("/v3alpha/maintenance/status", "{}")["version"], "3.5.0");
    assert_eq!(member_ids(&g.ok("/v3beta/cluster/member/list", "{}")), voters);
    let l = g.ok("/v3alpha/lease/grant", r#"{"TTL": 30}"#);
    g.ok("/v3beta/kv/lease/revoke", &json!({"ID": l["ID"]}).to_string());
    let lines = g.stream(
        "/v3beta/watch",
        &json!({"create_request": {"key": b64("alias"), "start_revision": alias_rev.to_string()}}).to_string(),
        2,
    );
    assert_eq!(lines.iter().filter_map(|l| l["result"]["events"].as_array()).flatten().count(), 1, "{lines:?}");
    let (code, v) = g.post_on(0, "/v3alpha/kv/nothing", "{}");
    assert_eq!((code, &v["code"]), (404, &json!(5)), "{v}");

    // Every route was called, with an assertion on its answer.
    let missed: Vec<&str> = ROUTES.iter().copied().filter(|r| !g.called.contains(*r)).collect();
    assert!(missed.is_empty(), "routes not exercised: {missed:?}");
    assert_eq!(g.called.len(), ROUTES.len(), "{:?}", g.called);
}

// ---- health, metrics, progress notifications --------------------------------

#[test]
fn health_metrics_and_watch_progress_over_http() {
    let c = Cluster::start_with(3, &["--experimental-watch-progress-notify-interval=1s"]);
    let mut g = Gateway::new(&c);
    // A quiet watch that asked for progress notifications gets them.
    let body = json!({"create_request": {"key": b64("quiet"), "progress_notify": true}}).to_string();
    let lines = g.stream("/v3/watch", &body, 3);
    assert_eq!(lines[0]["result"]["created"], true, "{lines:?}");
    let progress = lines.iter().filter(|l| l["result"]["created"].is_null() && l["result"]["events"].is_null()).count();
    assert!(progress >= 1, "no progress notification: {lines:?}");
    assert!(lines.iter().all(|l| l["result"]["header"]["revision"].is_string()), "{lines:?}");

    for path in ["/livez", "/readyz"] {
        let (code, _) = http(&c.members[0].client_addr(), "GET", path, "").expect(path);
        assert_eq!(code, 200, "{path}");
    }
    let (code, health) = http(&c.members[0].client_addr(), "GET", "/health", "").expect("health");
    assert_eq!((code, health.trim()), (200, r#"{"health":"true","reason":""}"#));
    let (code, version) = http(&c.members[2].client_addr(), "GET", "/version", "").expect("version");
    assert_eq!(code, 200);
    let version: Value = serde_json::from_str(&version).expect("version json");
    assert_eq!(version["etcdserver"], "3.5.0", "{version}");

    put(&c.members[0].client_addr(), "k", "v");
    let (code, metrics) = http(&c.members[0].client_addr(), "GET", "/metrics", "").expect("metrics");
    assert_eq!(code, 200);
    for name in [
        "raft_kv_raft_term",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_failed_total",
        "raft_kv_proposal_apply_duration_seconds_bucket",
        "raft_kv_requests_total{method=\"Put\"}",
        "raft_kv_requests_total{method=\"Watch(HTTP)\"}",
        "etcd_disk_wal_fsync_duration_seconds_bucket",
        "etcd_disk_backend_commit_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // Writes happened, so the member has fsynced.
    let fsyncs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("etcd_disk_wal_fsync_duration_seconds_count "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("fsync count");
    assert!(fsyncs > 0, "no fsync recorded");
}

// ---- bad input ---------------------------------------------------------------

#[test]
fn bad_input_gets_etcd_errors_and_the_member_keeps_serving() {
    // One limit as a flag, the other through its environment variable.
    let c = Cluster::start_with_env(3, &["--max-request-bytes", "65536"], &[("RAFT_KV_MAX_TXN_OPS", "16")]);
    let all = c.endpoints();
    let err = |args: &[&str], stdin: Option<&str>| -> String {
        let out = etcdctl_raw(&all, args, stdin);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let big = "x".repeat(70_000);
    assert!(err(&["put", "big", &big], None).contains("etcdserver: request is too large"));
    assert!(err(&["get", "foo", "--rev=1000000"], None).contains("required revision is a future revision"));
    assert!(err(&["get", "b", "a"], None).contains("etcdserver: range end is before the key"));
    assert!(err(&["lease", "revoke", "1234"], None).contains("requested lease not found"));
    assert!(err(&["put", "k", "v", "--lease=1234"], None).contains("requested lease not found"));
    let ops: String = (0..20).map(|i| format!("put k{i} v\n")).collect();
    assert!(err(&["txn"], Some(&format!("\n{ops}\n\n"))).contains("too many operations in txn request"));

    // The same through the gateway: grpc-gateway's status and body.
    let addr = c.members[0].client_addr();
    let expect = |path: &str, body: &str, http: u16, code: i32, message: Option<&str>| {
        let (status, v) = post_err(&addr, path, body);
        assert_eq!((status, &v["code"]), (http, &json!(code)), "{path} {body}: {v}");
        assert!(v["message"].is_string() && v["error"] == v["message"], "{v}");
        if let Some(m) = message {
            assert_eq!(v["message"], m, "{path} {body}");
        }
    };
    expect("/v3/kv/put", r#"{"key":"","value":"dg=="}"#, 400, 3, Some("etcdserver: key is not provided"));
    expect("/v3/kv/range", r#"{"key":"YQ==","limit":"-1"}"#, 400, 3, None);
    let huge = json!({"key": b64("big"), "value": b64(&big)}).to_string();
    expect("/v3/kv/put", &huge, 400, 3, Some("etcdserver: request is too large"));
    expect(
        "/v3/kv/range",
        r#"{"key":"Zm9v","revision":"1000000"}"#,
        400,
        11,
        Some("etcdserver: mvcc: required revision is a future revision"),
    );
    expect("/v3/lease/revoke", r#"{"ID":"1234"}"#, 404, 5, Some("etcdserver: requested lease not found"));

    // Malformed JSON, bad base64, a wrong type: InvalidArgument, HTTP 400.
    expect("/v3/kv/range", "{not json", 400, 3, None);
    expect("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy""#, 400, 3, None);
    expect("/v3/kv/range", r#"{"key":"%%%"}"#, 400, 3, None);
    expect("/v3/kv/range", r#"{"key":5}"#, 400, 3, None);
    expect("/v3/kv/range", r#"{"key":"Zm9v","limit":"ten"}"#, 400, 3, None);
    expect("/v3/lease/grant", r#"{"TTL":[]}"#, 400, 3, None);
    expect("/v3/kv/range", "[]", 400, 3, None);

    // Unknown routes: 404 with grpc-gateway's body, under any prefix or none.
    for path in ["/v3/kv/nothing", "/v3beta/nothing", "/v4/kv/range", "/nothing"] {
        let (status, v) = post_err(&addr, path, "{}");
        assert_eq!((status, &v["code"], &v["message"]), (404, &json!(5), &json!("Not Found")), "{path}: {v}");
    }
    let (status, text) = http(&addr, "GET", "/v3/nothing", "").expect("http");
    assert_eq!(status, 404, "{text}");

    // Still serving, through the gateway and gRPC.
    assert_eq!(etcdctl(&all, &["put", "after", "ok"]).trim(), "OK");
    assert_eq!(etcdctl(&all, &["get", "after", "--print-value-only"]).trim(), "ok");
    let got = post_ok(&addr, "/v3/kv/range", &json!({"key": b64("after")}).to_string());
    assert_eq!(got["kvs"][0]["value"], b64("ok"), "{got}");
}

// ---- lease keep-alive over HTTP ----------------------------------------------

#[test]
fn lease_kept_alive_over_http_outlives_its_ttl_then_expires() {
    let c = Cluster::start(3);
    let addrs: Vec<String> = c.members.iter().map(Member::client_addr).collect();
    let lease = post_ok(&addrs[0], "/v3/lease/grant", r#"{"TTL": 3}"#);
    let id = lease["ID"].as_str().expect("lease ID").to_string();
    // The server grants at least its minimum TTL (etcd: 1.5 election
    // timeouts).
    let ttl = num(&lease["TTL"]);
    assert!(ttl >= 3, "granted {lease}");
    post_ok(&addrs[1], "/v3/kv/put", &json!({"key": b64("kept"), "value": b64("alive"), "lease": id}).to_string());

    // Renew every third of the TTL for three TTLs, one POST per renewal, on
    // each member in turn; the key stays.
    let renew_every = Duration::from_millis(ttl as u64 * 1000 / 3);
    let until = Instant::now() + Duration::from_secs(3 * ttl as u64);
    let mut renewals = 0;
    while Instant::now() < until {
        let addr = &addrs[renewals % addrs.len()];
        let (code, body) =
            http(addr, "POST", "/v3/lease/keepalive", &json!({"ID": id}).to_string()).expect("keepalive");
        assert_eq!(code, 200, "{body}");
        let r = first_line(&body);
        assert_eq!((&r["result"]["ID"], &r["result"]["TTL"]), (&json!(id), &json!(ttl.to_string())), "{r}");
        let got = post_ok(addr, "/v3/kv/range", &json!({"key": b64("kept")}).to_string());
        assert_eq!(got["kvs"][0]["value"], b64("alive"), "the key expired while its lease was renewed: {got}");
        renewals += 1;
        std::thread::sleep(renew_every);
    }
    assert!(renewals >= 3, "{renewals} renewals");
    let left = post_ok(&addrs[2], "/v3/lease/timetolive", &json!({"ID": id}).to_string());
    assert!(num(&left["TTL"]) > 0, "{left}");

    // No more renewals: the lease expires and takes the key with it.
    let deadline = Instant::now() + Duration::from_secs(ttl as u64 + 20);
    loop {
        let got = post_ok(&addrs[0], "/v3/kv/range", &json!({"key": b64("kept")}).to_string());
        if got["kvs"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "the lease did not expire");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ttl = post_ok(&addrs[1], "/v3/lease/timetolive", &json!({"ID": id}).to_string());
    assert_eq!(ttl["TTL"], "-1", "{ttl}");
    // Renewing an expired lease answers TTL 0 (left out), as etcd does.
    let (code, body) =
        http(&addrs[2], "POST", "/v3/lease/keepalive", &json!({"ID": id}).to_string()).expect("keepalive");
    assert_eq!(code, 200, "{body}");
    let r = first_line(&body);
    assert!(r["result"]["TTL"].is_null() && r["result"]["ID"] == id.as_str(), "{r}");
}

// ---- a watch stream across a leader change ------------------------------------

/// One put of the writer in [`watch_over_http_survives_a_leader_change`].
struct Written {
    revision: i64,
    key: String,
    value: String,
}

#[test]
fn watch_over_http_survives_a_leader_change() {
    let c = Cluster::start(3);
    let addrs: Vec<String> = c.members.iter().map(Member::client_addr).collect();
    // Watch on the leader, which stays up and becomes a follower.
    let watched = c.leader();
    let mut watch = HttpStream::open(&addrs[watched], "/v3/watch");
    watch.send(&json!({"create_request": {"key": b64("w/"), "range_end": b64("w0")}}).to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    assert_eq!(watch.status(deadline), Some(200));
    let created = watch.next(deadline).expect("watch created");
    assert_eq!(created["result"]["created"], true, "{created}");

    // A writer puts through every member until told to stop; an attempt
    // that fails (the leader is changing) is retried with a new value.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, done, addrs) = (stop.clone(), done.clone(), addrs.clone());
        std::thread::spawn(move || {
            let mut written = Vec::new();
            let mut failed = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let i = written.len();
                let key = format!("w/{i:04}");
                let value = format!("{i}.{failed}");
                let body = json!({"key": b64(&key), "value": b64(&value)}).to_string();
                match http(&addrs[i % addrs.len()], "POST", "/v3/kv/put", &body) {
                    Ok((200, resp)) => {
                        let v: Value = serde_json::from_str(&resp).expect("put json");
                        written.push(Written { revision: num(&v["header"]["revision"]), key, value });
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (written, failed)
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the writer is stuck at {} puts", done.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    wait_for(20);
    let status = |m: usize| post_ok(&addrs[m], "/v3/maintenance/status", "{}");
    let target = (watched + 1) % addrs.len();
    let target_id = status(target)["header"]["member_id"].as_str().expect("member_id").to_string();
    post_ok(
        &addrs[(watched + 2) % 3],
        "/v3/maintenance/transfer-leadership",
        &json!({"targetID": target_id}).to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(watched)["leader"] != target_id.as_str() {
        assert!(Instant::now() < deadline, "leadership did not move to {target_id}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after_change = done.load(Ordering::SeqCst);
    wait_for(after_change + 20);
    stop.store(true, Ordering::SeqCst);
    let (written, failed) = writer.join().expect("writer");
    assert!(written.len() >= after_change + 20);

    // Every put arrives on the watch opened before the change, in revision
    // order, without gaps or duplicates.
    let last = written.last().expect("puts").revision;
    let mut events: Vec<(i64, String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.last().is_none_or(|e| e.0 < last) {
        let line = watch.next(deadline).unwrap_or_else(|| panic!("watch stalled after {} events", events.len()));
        let r = &line["result"];
        assert!(r["canceled"].is_null(), "watch canceled: {line}");
        for e in r["events"].as_array().into_iter().flatten() {
            let kv = &e["kv"];
            events.push((
                num(&kv["mod_revision"]),
                unb64(kv["key"].as_str().expect("key")),
                unb64(kv["value"].as_str().expect("value")),
            ));
        }
    }
    let revs: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert!(revs.windows(2).all(|w| w[1] == w[0] + 1), "gaps or duplicates: {revs:?}");
    assert_eq!(revs.first(), Some(&written[0].revision), "{revs:?}");
    for w in &written {
        assert!(
            events.iter().any(|e| (e.0, &e.1, &e.2) == (w.revision, &w.key, &w.value)),
            "put {} = {} at {} did not arrive",
            w.key,
            w.value,
            w.revision
        );
    }
    // Only an attempt that failed to answer may have written unannounced.
    assert!(events.len() - written.len() <= failed, "{} events for {} puts", events.len(), written.len());
    watch.finish();
}

// ---- streaming bodies that never end -------------------------------------------

#[test]
fn unfinished_streaming_bodies_hold_no_threads() {
    let c = Cluster::start(3);
    let m = &c.members[0];
    let addr = m.client_addr();
    let lease = post_ok(&addr, "/v3/lease/grant", r#"{"TTL": 120}"#)["ID"].as_str().expect("ID").to_string();
    let before = threads(m.pid());

    // Each connection sends one request and never ends its body; every
    // fourth is a keep-alive stream, the others watches.
    let mut conns: Vec<HttpStream> = Vec::new();
    let mut counts = Vec::new();
    for _batch in 0..2 {
        let start = conns.len();
        for i in start..start + 100 {
            let (path, request) = if i % 4 == 3 {
                ("/v3/lease/keepalive", json!({"ID": lease}))
            } else {
                ("/v3/watch", json!({"create_request": {"key": b64(&format!("held/{i}"))}}))
            };
            let mut s = HttpStream::open(&addr, path);
            s.send(&request.to_string());
            conns.push(s);
        }
        // Each was answered: the server read the request that arrived.
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, s) in conns.iter_mut().enumerate().skip(start) {
            let first = s.next(deadline).unwrap_or_else(|| panic!("connection {i} got no answer"));
            if i % 4 == 3 {
                assert_eq!(first["result"]["TTL"], "120", "{first}");
            } else {
                assert_eq!(first["result"]["created"], true, "{first}");
            }
        }
        counts.push(threads(m.pid()));
    }
    // A task per stream, not a thread: the count stays where it was (a
    // little slack for runtime helpers), far below the connections held.
    assert!(
        counts.iter().all(|&n| n < 64 && n <= before + 8),
        "threads: {before} before, {counts:?} with 100 and 200 open streams"
    );
    assert!(counts[1] <= counts[0] + 2, "threads grow with streams: {counts:?}");

    // The member still serves, and the held watches are live.
    let rev = put(&c.members[1].client_addr(), "held/0", "v");
    let got = post_ok(&addr, "/v3/kv/range", &json!({"key": b64("held/0")}).to_string());
    assert_eq!(got["kvs"][0]["value"], b64("v"), "{got}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let ev = conns[0].next(deadline).expect("event on a held watch");
    assert_eq!(num(&ev["result"]["events"][0]["kv"]["mod_revision"]), rev, "{ev}");

    drop(conns);
    put(&addr, "after", "closed");
    let got = post_ok(&c.members[2].client_addr(), "/v3/kv/range", &json!({"key": b64("after")}).to_string());
    assert_eq!(got["count"], "1", "{got}");
    let after = threads(m.pid());
    assert!(after < 64 && after <= before + 8, "threads: {before} before, {after} after closing");
}
