//! etcd's JSON gateway end to end, streaming: `/health` and `/metrics`
//! beside watch progress notifications, a lease kept alive over HTTP, and
//! a watch stream across a leader change.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// ---- helpers ---------------------------------------------------------------

/// The first JSON line of a streaming route's response body.
fn first_line(body: &str) -> Value {
    let line = body.lines().next().unwrap_or_else(|| panic!("empty stream: {body:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
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
    assert_eq!(version["etcdserver"], "3.5.17", "{version}");

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
