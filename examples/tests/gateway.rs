//! The JSON gateway with curl, and bad input through etcdctl and the
//! gateway: etcd-style errors, and the member keeps serving.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn curl(url: &str, body: &str) -> Value {
    let out = run(20, "curl", &["-sS", "-X", "POST", url, "-d", body], &[], None);
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{url} gave {s:?}: {e}"))
}

#[test]
fn json_gateway_with_curl() {
    let c = Cluster::start_with(3, &["--experimental-watch-progress-notify-interval=1s"]);
    let base = c.members[1].client_url.clone();
    let put = curl(&format!("{base}/v3/kv/put"), &format!(r#"{{"key":"{}","value":"{}"}}"#, b64("foo"), b64("bar")));
    assert!(put["header"]["revision"].is_string(), "{put}");
    let got = curl(&format!("{base}/v3/kv/range"), &format!(r#"{{"key":"{}"}}"#, b64("foo")));
    assert_eq!(got["kvs"][0]["value"], b64("bar"));
    assert_eq!(got["count"], "1");

    let txn = format!(
        r#"{{"compare":[{{"target":"VALUE","result":"EQUAL","key":"{k}","value":"{v}"}}],
            "success":[{{"request_put":{{"key":"{k}","value":"{n}"}}}},{{"request_range":{{"key":"{k}"}}}}]}}"#,
        k = b64("foo"),
        v = b64("bar"),
        n = b64("baz")
    );
    let t = curl(&format!("{base}/v3/kv/txn"), &txn);
    assert_eq!(t["succeeded"], true, "{t}");
    assert_eq!(t["responses"][1]["response_range"]["kvs"][0]["value"], b64("baz"), "{t}");

    let lease = curl(&format!("{base}/v3/lease/grant"), r#"{"TTL": 30}"#);
    let id = lease["ID"].as_str().expect("lease id").to_string();
    assert_eq!(lease["TTL"], "30");
    curl(&format!("{base}/v3/kv/put"), &format!(r#"{{"key":"{}","value":"{}","lease":"{id}"}}"#, b64("l"), b64("v")));
    curl(&format!("{base}/v3/lease/revoke"), &format!(r#"{{"ID":"{id}"}}"#));
    let gone = curl(&format!("{base}/v3/kv/range"), &format!(r#"{{"key":"{}"}}"#, b64("l")));
    assert!(gone.get("kvs").is_none(), "{gone}");

    // /v3/watch streams newline-delimited {"result": ...} objects.
    let wurl = format!("{base}/v3/watch");
    let wbody = format!(r#"{{"create_request":{{"key":"{}","start_revision":"1"}}}}"#, b64("foo"));
    let watcher = std::thread::spawn(move || {
        let out = run(10, "curl", &["-sS", "-N", "--max-time", "3", "-X", "POST", &wurl, "-d", &wbody], &[], None);
        String::from_utf8_lossy(&out.stdout).to_string()
    });
    std::thread::sleep(Duration::from_secs(1));
    curl(&format!("{}/v3/kv/deleterange", c.members[2].client_url), &format!(r#"{{"key":"{}"}}"#, b64("foo")));
    let lines: Vec<Value> =
        watcher.join().expect("watch").lines().map(|l| serde_json::from_str(l).expect("watch line")).collect();
    assert_eq!(lines[0]["result"]["created"], true, "{lines:?}");
    let events: Vec<&Value> = lines.iter().filter_map(|l| l["result"]["events"].as_array()).flatten().collect();
    assert_eq!(events.len(), 3, "put, txn put, delete: {lines:?}");
    assert_eq!(events[2]["type"], "DELETE");

    // A quiet watch that asked for progress notifications gets them.
    let body = format!(r#"{{"create_request":{{"key":"{}","progress_notify":true}}}}"#, b64("quiet"));
    let out = run(
        10,
        "curl",
        &["-sS", "-N", "--max-time", "3", "-X", "POST", &format!("{base}/v3/watch"), "-d", &body],
        &[],
        None,
    );
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("watch line")).collect();
    let progress = lines.iter().filter(|l| l["result"]["created"].is_null() && l["result"]["events"].is_null()).count();
    assert!(progress >= 1, "no progress notification: {lines:?}");
    assert!(lines.iter().all(|l| l["result"]["header"]["revision"].is_string()), "{lines:?}");

    let st = curl(&format!("{base}/v3/maintenance/status"), "{}");
    assert!(st["leader"].is_string() && st["raftTerm"].is_string(), "{st}");
    for path in ["/livez", "/readyz"] {
        let (code, _) = http(&c.members[0].client_addr(), "GET", path, "").expect(path);
        assert_eq!(code, 200, "{path}");
    }
    let (code, health) = http(&c.members[0].client_addr(), "GET", "/health", "").expect("health");
    assert_eq!((code, health.trim()), (200, r#"{"health":"true","reason":""}"#));
    let (code, metrics) = http(&c.members[1].client_addr(), "GET", "/metrics", "").expect("metrics");
    assert_eq!(code, 200);
    for name in [
        "raft_kv_raft_term",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_failed_total",
        "raft_kv_proposal_apply_duration_seconds_bucket",
        "raft_kv_requests_total{method=\"Put\"}",
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

    let addr = c.members[0].client_addr();
    let (code, body) = http(&addr, "POST", "/v3/kv/put", r#"{"key":"","value":"dg=="}"#).expect("http");
    assert_eq!(code, 400);
    assert!(body.contains("etcdserver: key is not provided"), "{body}");
    let (code, body) = http(&addr, "POST", "/v3/kv/range", r#"{"key":"YQ==","limit":"-1"}"#).expect("http");
    assert_eq!(code, 400, "{body}");
    let huge = format!(r#"{{"key":"{}","value":"{}"}}"#, b64("big"), b64(&big));
    let (code, body) = http(&addr, "POST", "/v3/kv/put", &huge).expect("http");
    assert_eq!(code, 400);
    assert!(body.contains("etcdserver: request is too large"), "{body}");
    let (code, _) = http(&addr, "POST", "/v3/kv/range", "{not json").expect("http");
    assert_eq!(code, 400);
    let (code, _) = http(&addr, "POST", "/v3/kv/range", r#"{"key":"%%%"}"#).expect("http");
    assert_eq!(code, 400);

    // Still serving.
    assert_eq!(etcdctl(&all, &["put", "after", "ok"]).trim(), "OK");
    assert_eq!(etcdctl(&all, &["get", "after", "--print-value-only"]).trim(), "ok");
}
