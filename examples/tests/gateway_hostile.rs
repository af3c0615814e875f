//! etcd's JSON gateway end to end, hostile input: bad requests get etcd's
//! errors, and streaming request bodies that never end hold no threads.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// ---- helpers ---------------------------------------------------------------

/// A gateway call over [`http`] that must fail: HTTP status and JSON body.
fn post_err(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let (code, text) = http(addr, "POST", path, body).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} gave {code} {text:?}: {e}"));
    (code, v)
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
    // A negative limit is no limit, as etcd 3.5's mvcc reads it.
    let (status, v) = http(&addr, "POST", "/v3/kv/range", r#"{"key":"YQ==","limit":"-1"}"#).expect("range");
    assert_eq!(status, 200, "negative limit: {v}");
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
